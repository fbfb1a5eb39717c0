"""``fglab index``, ``index-add`` and ``index-remove``: every build goes through
:mod:`fglab.ingest` (reader -> backend -> one index or N shards)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from tqdm import tqdm

from fglab.cli import cluster
from fglab.index.store import KINDS, EmbeddingIndex, IndexSettings


def load_pipeline(run_dir: Path):
    """A trained run (``fglab train``'s output directory)."""
    from fglab.pipeline import RetrievalPipeline

    return RetrievalPipeline.load(Path(run_dir))


def memory_size(text: str) -> int:
    """Bytes from ``8G``, ``500M``, ``1.5GB``, ``2048K`` or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size such as 8G or 500M")
    power = " KMGT".index(match.group(2).upper() or " ")
    return int(float(match.group(1)) * 1024**power)


def register(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser("index", help="embed a collection with a trained run")
    index.add_argument("run", type=Path, help="a trained run directory (from `fglab train`)")
    _collection_arguments(index)
    index.add_argument("--out", type=Path, required=True, help="index directory to write")
    index.add_argument(
        "--kind",
        choices=KINDS,
        default="auto",
        help="flat = exact; ivfpq = 4-bit codes of the nearest inverted lists, the best "
        "candidates re-ranked with full vectors read from disk, tuned to recall@10 0.95; pq = "
        "4-bit codes scanned in full; ivf/hnsw = approximate by structure in the data; auto "
        "(default) = flat below 200k items per modality and within --max-memory, else ivfpq",
    )
    index.add_argument(
        "--max-memory", type=memory_size, default=None, metavar="SIZE",
        help="memory one modality's searched vectors may take (e.g. 8G, 500M): --kind auto "
        "picks ivfpq where exact search would not fit, and refuses what even its codes would "
        "not fit (default: half this machine's memory)",
    )
    cluster.index_arguments(index, shards=True)
    index.set_defaults(func=build)

    add = subparsers.add_parser("index-add", help="add a collection's items to an index")
    add.add_argument("index", type=Path)
    _collection_arguments(add)
    cluster.index_arguments(add, shards=False)
    add.set_defaults(func=add_items)

    remove = subparsers.add_parser("index-remove", help="remove items from an index by id")
    remove.add_argument("index", type=Path)
    remove.add_argument("ids", nargs="+", help="item ids, e.g. img-42 txt-42")
    remove.set_defaults(func=remove_items)


def _collection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        required=True,
        help="a data set name (e.g. eng-wiki) or manifest:PATH (CSV or JSONL)",
    )
    parser.add_argument(
        "--split",
        choices=("test", "all"),
        default="test",
        help="data set items to index (default test; ignored for manifests)",
    )


def _collection(args: argparse.Namespace):
    """The collection ``--dataset`` names (a manifest checked as a stream, with a progress
    bar), its splits to index and a progress bar for embedding it."""
    from fglab.data.collection import load_collection
    from fglab.data.sources import ManifestSource, parse_source
    from fglab.ingest.reader import collection_size

    source = parse_source(args.dataset)
    with tqdm(unit="row", desc="checking", disable=not isinstance(source, ManifestSource)) as bar:
        collection = load_collection(source, args.data_root, streamed=True, progress=bar.update)
    splits = ["train", "test"] if args.split == "all" else ["test"]
    bar = tqdm(total=collection_size(collection, splits), unit="item", desc="embedding")
    return collection, splits, bar


def _print_skipped(skipped: list[str]) -> None:
    from fglab.data.problems import printable

    for line in skipped:  # a collection's ids and paths: never a raw control character
        print(f"skipped: {printable(line, None)}")


def _print_counts(index: EmbeddingIndex, path: Path) -> None:
    counts = ", ".join(f"{index.count(m)} {m}s" for m in ("image", "text"))
    kinds = ", ".join(f"{m}: {index.kinds[m]}" for m in ("image", "text") if m in index.kinds)
    print(f"wrote {path}: {counts} ({kinds})")


def _print_sharded(path: Path, counts: dict, shards: int | None) -> None:
    added = ", ".join(f"{counts.get(m, 0)} {m}s" for m in ("image", "text"))
    where = f" over {shards} shards" if shards else ""
    print(f"wrote {path}: {added}{where}")


def build(args: argparse.Namespace) -> int:
    from fglab.index.locks import writer_lock

    with writer_lock(args.out, new=True):  # a rebuild over an index must not race its index-add
        return _build(args)


def _build(args: argparse.Namespace) -> int:
    from fglab.index.atomic import MODEL_DIR
    from fglab.ingest.build import build_index, build_sharded

    backend = cluster.backend_for(args.ray, args.workers)
    pipeline = load_pipeline(args.run)
    collection, splits, bar = _collection(args)
    settings = IndexSettings(kind=args.kind, max_memory=args.max_memory)
    if args.ray is None and args.shards is None:
        with bar:
            index, skipped = build_index(pipeline, collection, splits, settings,
                                         progress=bar.update, backend=backend)
        _print_skipped(skipped)
        index.info["run"] = str(Path(args.run).resolve())
        index.save(args.out, write_extra=lambda tmp: pipeline.save(tmp / MODEL_DIR))
        _print_counts(index, args.out)
        return 0
    shards = cluster.default_shards(backend, args.shards)
    with bar:
        counts, skipped = build_sharded(backend, pipeline, collection, args.out, shards, splits,
                                        settings, bar.update, run_dir=Path(args.run))
    _print_skipped(skipped)
    _print_sharded(args.out, counts, shards)
    return 0


def add_items(args: argparse.Namespace) -> int:
    from fglab.index.locks import writer_lock

    with writer_lock(args.index):  # before any work: a second writer is refused at once
        return _add_items(args)


def _add_items(args: argparse.Namespace) -> int:
    from fglab.index.atomic import MODEL_DIR
    from fglab.index.shards import is_sharded
    from fglab.ingest.build import add_to_sharded_index, build_index

    if is_sharded(args.index):
        backend = cluster.backend_for(args.ray, args.workers)
        collection, splits, bar = _collection(args)
        with bar:
            counts, skipped = add_to_sharded_index(backend, args.index, collection, splits,
                                                   bar.update)
        _print_skipped(skipped)
        _print_sharded(args.index, counts, None)
        return 0
    if args.ray is not None:
        raise ValueError(f"{args.index} is not sharded: add to it without --ray")
    index = EmbeddingIndex.load(args.index, vectors=False)  # appends: no need to read vectors
    pipeline = load_pipeline(args.index / MODEL_DIR)
    collection, splits, bar = _collection(args)
    with bar:
        index, skipped = build_index(pipeline, collection, splits, progress=bar.update,
                                     index=index)
    _print_skipped(skipped)
    index.save_changes(args.index)
    _print_counts(index, args.index)
    return 0


def remove_items(args: argparse.Namespace) -> int:
    from fglab.index.locks import writer_lock

    with writer_lock(args.index):
        index = EmbeddingIndex.load(args.index, vectors=False)
        index.remove(args.ids)
        index.save_changes(args.index)
    _print_counts(index, args.index)
    return 0
