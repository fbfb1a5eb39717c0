"""Ray: the optional engine for a collection that outgrows one machine.

:class:`fglab.cluster.backend.RayBackend` implements :class:`fglab.ingest.backend.Backend`
(Ray Data embeds, Ray tasks fill shards, Ray Serve serves them; :func:`connect` joins a
cluster), and :mod:`fglab.cluster.features` fills the feature store on Ray Data. The sharded
index format itself is :mod:`fglab.index.shards`. Nothing here imports Ray at module level: it
is an optional extra (``pip install -e ".[cluster]"``), imported only when ``--ray`` is given.
"""
