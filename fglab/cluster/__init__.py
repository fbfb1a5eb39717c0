"""Scaling out: sharded index directories, and Ray for embedding and serving them.

A sharded index (:mod:`fglab.cluster.shards`) is an ordinary index directory whose vectors are
split over ``shards/NNN/`` folders; the embedded loader reads it too. The engine behind a
distributed build or server is a :class:`fglab.cluster.backend.Backend`: the in-process one,
or Ray's (:func:`fglab.cluster.backend.connect`). Nothing here imports Ray at module level: it
is an optional extra (``pip install -e ".[cluster]"``), imported only when ``--ray`` is given.
"""
