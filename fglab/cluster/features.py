"""The embedder of :func:`fglab.features.featurize.featurize` on Ray Data workers.

Jobs (``{"key", "value"}``: a content digest and an image path or a text) go out in blocks;
``workers`` actors of one CPU each hold one model of the view (:class:`Featurizer`) and send
back ``{"key", "vector", "error"}`` batches, which the calling process writes to its store.
Image files are read where the worker runs: the collection must be at the same path on every
node (a shared file system), as for ``fglab index --ray``, and so must a model folder
(``image:clip``, ``text:clip``), whose weights each worker checks against this process's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fglab.cluster.actors import actor_pool_batches
from fglab.features.featurize import BATCH, Featurizer
from fglab.features.model_folder import current_folder, uses_model_folder


def ray_engine(view: str, jobs: list[dict], workers: int,
               progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Batches of featurized jobs, as they finish (any order)."""
    if not jobs:
        return
    size = max(1, min(BATCH, -(-len(jobs) // workers)))  # a few jobs still reach every worker
    blocks = -(-len(jobs) // size)
    args: tuple = (view,)
    if uses_model_folder(view):  # each worker loads the same folder, its weights checked
        folder = current_folder(view)
        args = (view, 0, str(folder.path), folder.sha256)
    for batch in actor_pool_batches(jobs, Featurizer, args, size, workers, blocks):
        if progress:
            progress(len(batch["key"]))
        yield batch
