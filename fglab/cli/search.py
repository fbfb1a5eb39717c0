"""``fglab index``, ``index-add``, ``index-remove``, ``search`` and ``serve``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tqdm import tqdm

from fglab.cluster import cli as cluster
from fglab.index.store import KINDS, EmbeddingIndex, IndexSettings
from fglab.service.limits import ServiceLimits

logger = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


def load_pipeline(run_dir: Path):
    """A trained run (``fglab train``'s output directory)."""
    from fglab.pipeline import RetrievalPipeline

    return RetrievalPipeline.load(Path(run_dir))


def register(subparsers: argparse._SubParsersAction) -> None:
    index = subparsers.add_parser("index", help="embed a collection with a trained run")
    index.add_argument("run", type=Path, help="a trained run directory (from `fglab train`)")
    _collection_arguments(index)
    index.add_argument("--out", type=Path, required=True, help="index directory to write")
    index.add_argument(
        "--kind",
        choices=KINDS,
        default="auto",
        help="flat = exact; ivf/hnsw = approximate by structure in the data; pq = 4-bit "
        "product codes scanned in full, best candidates re-ranked exactly; auto (default) = "
        "flat below 200k items per modality, else pq",
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

    search = subparsers.add_parser("search", help="search an index by text or by image")
    search.add_argument("index", type=Path)
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="find images (or --target text) matching these words")
    query.add_argument("--image", type=Path, help="find texts matching this image file")
    search.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    search.add_argument(
        "--target",
        choices=("image", "text"),
        default=None,
        help="modality to rank (default: the other one)",
    )
    search.add_argument("--json", action="store_true", help="print JSON for scripts")
    _threads_argument(search)
    search.set_defaults(func=search_index)

    serve = subparsers.add_parser("serve", help="serve an index over HTTP with a web page")
    serve.add_argument("index", type=Path)
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--allowed-hosts",
        default="",
        metavar="NAMES",
        help="comma-separated Host names answered besides localhost, 127.0.0.1 and [::1] "
        "(against DNS rebinding; default: those and --host); '*' answers any",
    )
    serve.add_argument(
        "--max-uploads",
        type=int,
        default=ServiceLimits.max_uploads,
        help=f"image searches at once; more get 503 (default {ServiceLimits.max_uploads})",
    )
    _threads_argument(serve)
    cluster.serve_arguments(serve)
    serve.set_defaults(func=serve_index)


def _threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per query for faiss and the image model (default 1: on a busy CPU more "
        "make each query wait for the slowest thread; the server runs queries side by side)",
    )


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


def _embed(
    pipeline,
    args: argparse.Namespace,
    index: EmbeddingIndex | None,
    settings: IndexSettings | None = None,
):
    from fglab.index.build import build_index, collection_size, load_collection

    collection = load_collection(args.dataset, args.data_root)
    splits = ["train", "test"] if args.split == "all" else ["test"]
    with tqdm(total=collection_size(collection, splits), unit="item", desc="embedding") as bar:
        index, skipped = build_index(
            pipeline, collection, splits, settings, progress=bar.update, index=index
        )
    for line in skipped:
        print(f"skipped: {line}")
    return index


def _print_counts(index: EmbeddingIndex, path: Path) -> None:
    counts = ", ".join(f"{index.count(m)} {m}s" for m in ("image", "text"))
    kinds = ", ".join(f"{m}: {index.kinds[m]}" for m in ("image", "text") if m in index.kinds)
    print(f"wrote {path}: {counts} ({kinds})")


def build(args: argparse.Namespace) -> int:
    from fglab.search import MODEL_DIR

    if args.ray is not None or args.shards is not None:
        return cluster.build(args)
    pipeline = load_pipeline(args.run)
    index = _embed(pipeline, args, None, IndexSettings(kind=args.kind))
    index.info["run"] = str(Path(args.run).resolve())
    index.save(args.out, write_extra=lambda tmp: pipeline.save(tmp / MODEL_DIR))
    _print_counts(index, args.out)
    return 0


def add_items(args: argparse.Namespace) -> int:
    from fglab.cluster.shards import is_sharded
    from fglab.search import MODEL_DIR

    if is_sharded(args.index):
        return cluster.add(args)
    if args.ray is not None:
        raise ValueError(f"{args.index} is not sharded: add to it without --ray")
    index = EmbeddingIndex.load(args.index, vectors=False)  # appends: no need to read vectors
    _embed(load_pipeline(args.index / MODEL_DIR), args, index)
    index.save_changes(args.index)
    _print_counts(index, args.index)
    return 0


def remove_items(args: argparse.Namespace) -> int:
    index = EmbeddingIndex.load(args.index, vectors=False)
    index.remove(args.ids)
    index.save_changes(args.index)
    _print_counts(index, args.index)
    return 0


def search_index(args: argparse.Namespace) -> int:
    from fglab.search import Retriever

    retriever = Retriever.open(args.index, load_pipeline=load_pipeline)
    retriever.limit_threads(args.threads)
    if args.text is not None:
        hits = retriever.search_text(args.text, args.k, args.target or "image")
    else:
        hits = retriever.search_image(args.image, args.k, args.target or "text")
    if args.json:
        print(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no results")
    for hit in hits:
        title = hit.title or hit.snippet
        print(f"{hit.rank:>3}  {hit.score:8.4f}  {hit.category or '-':<22} {hit.id}")
        print(f"     {title[:100]}")
    return 0


def serve_index(args: argparse.Namespace) -> int:
    import uvicorn

    from fglab.search import Retriever
    from fglab.service import create_app
    from fglab.service.server import server_config

    hosts = served_hosts(args.host, args.allowed_hosts)
    if args.host not in LOOPBACK:
        logger.warning(
            "serving on %s: reachable from other machines; answering Host %s",
            args.host, ", ".join(hosts) or "loopback names only (see --allowed-hosts)",
        )
    if args.max_uploads < 1:
        raise ValueError(f"--max-uploads must be at least 1, got {args.max_uploads}")
    backend = None
    if args.ray is not None:
        retriever, backend = cluster.open_retriever(args, load_pipeline)
    else:
        retriever = Retriever.open(args.index, load_pipeline=load_pipeline)
    retriever.limit_threads(args.threads)
    service = ServiceLimits(max_uploads=args.max_uploads)
    app = create_app(retriever, hosts=hosts, service=service)
    print(f"serving {args.index} on http://{args.host}:{args.port}/ (Ctrl-C stops)")
    try:
        uvicorn.Server(server_config(app, args.host, args.port, service, log_level="info")).run()
    finally:
        if backend is not None:
            backend.close()
    return 0


def served_hosts(host: str, allowed: str) -> list[str]:
    """Host names to answer besides the loopback ones: ``--allowed-hosts`` plus ``--host``
    when that names one address (not a wildcard like 0.0.0.0)."""
    names = [name.strip() for name in allowed.split(",") if name.strip()]
    if host not in (*LOOPBACK, *WILDCARDS) and host not in names:
        names.append(host)
    return names
