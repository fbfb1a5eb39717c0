"""Ingest: a collection's rows (:mod:`~fglab.ingest.reader`) embedded by a backend
(:mod:`~fglab.ingest.backend`, :mod:`~fglab.ingest.embedder`) and written to an index
(:mod:`~fglab.ingest.build`)."""
