"""``fglab search`` and ``fglab serve``: a built index queried from the shell or over HTTP."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from fglab.cli import cluster
from fglab.cli import index as index_commands
from fglab.data.problems import printable
from fglab.service.limits import ServiceLimits

logger = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


def load_pipeline(run_dir: Path):
    """The trained run an index holds (looked up at call time: one loader for every command)."""
    return index_commands.load_pipeline(run_dir)


def register(subparsers: argparse._SubParsersAction) -> None:
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
    _nprobe_argument(search)
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
    serve.add_argument(
        "--reload-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="check the index for index-add / index-remove / a rebuild this often and serve "
        "the new state (default 2; 0 never checks; not with --ray)",
    )
    _threads_argument(serve)
    _nprobe_argument(serve)
    cluster.serve_arguments(serve)
    serve.set_defaults(func=serve_index)


def _nprobe_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nprobe", type=int, default=None,
        help="ivfpq indexes: inverted lists scanned per query (default: the value tuned at "
        "build time to recall@10 >= 0.95, in index.json); more is slower and finds more",
    )


def _threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per query for faiss and the image model (default 1: on a busy CPU more "
        "make each query wait for the slowest thread; the server runs queries side by side)",
    )


def search_index(args: argparse.Namespace) -> int:
    from fglab.retriever import Retriever

    retriever = Retriever.open(args.index, load_pipeline=load_pipeline)
    retriever.limit_threads(args.threads)
    if args.nprobe is not None:
        retriever.set_nprobe(args.nprobe)
    if args.text is not None:
        hits = retriever.search_text(args.text, args.k, args.target or "image")
    else:
        hits = retriever.search_image(args.image, args.k, args.target or "text")
    note = retriever.query_note(args.text) if args.text is not None else None
    if args.json:
        print(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return 0
    if note:
        print(f"note: {note}")
    if not hits:
        print("no results")
    for hit in hits:  # a collection's titles and categories: never a raw control character
        category = printable(hit.category or "-", 22)
        print(f"{hit.rank:>3}  {hit.score:8.4f}  {category:<22} {hit.id}")
        print(f"     {printable(hit.title or hit.snippet, 100)}")
    return 0


def serve_index(args: argparse.Namespace) -> int:
    import uvicorn

    from fglab.retriever import Retriever
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
        retriever, backend = cluster.open_retriever(args.index, args.ray, args.replicas,
                                                     load_pipeline)
    else:
        retriever = Retriever.open(args.index, load_pipeline=load_pipeline)
    retriever.limit_threads(args.threads)
    if args.nprobe is not None:
        retriever.set_nprobe(args.nprobe)
    if args.reload_interval < 0:
        raise ValueError(f"--reload-interval must be 0 or more, got {args.reload_interval}")
    if backend is None and args.reload_interval > 0:
        retriever.watch(args.reload_interval)
    retriever.warm_up()
    service = ServiceLimits(max_uploads=args.max_uploads)
    app = create_app(retriever, hosts=hosts, service=service)
    print(f"serving {args.index} on http://{args.host}:{args.port}/ (Ctrl-C stops)")
    try:
        uvicorn.Server(server_config(app, args.host, args.port, service, log_level="info")).run()
    finally:
        retriever.stop_watching()
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
