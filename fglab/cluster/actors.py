"""One Ray Data pattern for the cluster's embedders: rows mapped by a pool of model actors."""

from __future__ import annotations

from collections.abc import Iterator


def actor_pool_batches(
    rows: list[dict], actor: type, args: tuple, batch: int, workers: int, blocks: int
) -> Iterator[dict]:
    """``rows`` in ``blocks`` Ray Data blocks, mapped in batches of ``batch`` by ``workers``
    actors of one CPU each (``actor(*args)``: each holds one model); the NumPy batches as
    they finish, in any order."""
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False  # fglab shows its own
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    yield from actor_pool_map(dataset, actor, args, batch, workers)


def actor_pool_map(dataset, actor: type, args: tuple, batch: int, workers: int) -> Iterator[dict]:
    """A Ray Data ``dataset`` mapped in batches of ``batch`` by ``workers`` actors of one CPU
    each (``actor(*args)``); the NumPy batches as they finish, in any order."""
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    mapped = dataset.map_batches(
        actor,
        fn_constructor_args=args,
        batch_size=batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    yield from mapped.iter_batches(batch_size=None, batch_format="numpy")
