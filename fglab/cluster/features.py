"""The embedder of :func:`fglab.features.featurize.featurize` on Ray Data workers.

Jobs (``{"key", "value"}``: a content digest and an image path or a text) go out in blocks;
``workers`` actors of one CPU each hold one model of the view (:class:`Featurizer`) and send
back ``{"key", "vector", "error"}`` batches, which the calling process writes to its store.
Image files are read where the worker runs: the collection must be at the same path on every
node (a shared file system), as for ``fglab index --ray``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fglab.features.featurize import BATCH, Featurizer


def ray_engine(view: str, jobs: list[dict], workers: int,
               progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Batches of featurized jobs, as they finish (any order)."""
    if not jobs:
        return
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False  # fglab shows its own
    batch = max(1, min(BATCH, -(-len(jobs) // workers)))  # a few jobs still reach every worker
    dataset = ray.data.from_items(jobs, override_num_blocks=-(-len(jobs) // batch))
    featurized = dataset.map_batches(
        Featurizer,
        fn_constructor_args=(view,),
        batch_size=batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    for batch in featurized.iter_batches(batch_size=None, batch_format="numpy"):
        if progress:
            progress(len(batch["key"]))
        yield batch
