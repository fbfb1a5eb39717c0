"""The ``fglab`` command: a thin dispatch to plain functions. Nothing imports this package.

Each module in ``COMMAND_MODULES`` adds its subcommands with ``register(subparsers)`` and sets
``func`` on its parser; ``main`` parses and calls it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from fglab.training.fit_check import JobTooLarge

COMMAND_MODULES = (
    "fglab.cli.datasets", "fglab.cli.reproduce", "fglab.cli.index", "fglab.cli.search",
    "fglab.cli.train", "fglab.cli.features",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fglab", description="Text<->image retrieval with fine-grained labels."
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder holding the data sets (default: $FGLAB_DATA, then ../shared/data)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError, JobTooLarge) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"fglab: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
