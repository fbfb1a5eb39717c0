"""The ``fglab`` command: a thin dispatch to plain functions. Nothing imports this package.

Each module in ``COMMAND_MODULES`` adds its subcommands with ``register(subparsers)`` and sets
``func`` on its parser; ``main`` parses and calls it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import sys

from fglab.io import error_filename, os_error_reason
from fglab.training.fit_check import JobTooLarge

COMMAND_MODULES = (
    "fglab.cli.datasets", "fglab.cli.reproduce", "fglab.cli.index", "fglab.cli.search",
    "fglab.cli.train", "fglab.cli.features",
)
#: Commands whose product is the feature store: a store that cannot be written is their error
#: (for every other command the store is a speed-up, and such a failure a warning).
STORE_COMMANDS = ("features",)


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
        with _store_writes(args.command):
            return int(args.func(args) or 0)
    except OSError as error:  # FileNotFoundError among them
        print(f"fglab: error: {os_error_line(error)}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, JobTooLarge) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"fglab: error: {message}", file=sys.stderr)
        return 2


def _store_writes(command: str) -> contextlib.AbstractContextManager:
    if command not in STORE_COMMANDS:
        return contextlib.nullcontext()
    from fglab.features.store import writes_required

    return writes_required()


def os_error_line(error: OSError) -> str:
    """One line: ``FILE: reason`` where the error names a file, else its message's first
    line; a hint for a permission problem and for a full disk."""
    filename = error_filename(error)
    if filename is not None:
        line = f"{filename}: {os_error_reason(error)}"
    else:
        lines = str(error).strip().splitlines()
        line = lines[0] if lines else type(error).__name__
    if isinstance(error, PermissionError):
        line += " (check the folder's permissions)"
    elif error.errno == errno.ENOSPC:
        line += " (the disk is full: free space and run it again; nothing already written was "
        line += "changed)"
    return line


if __name__ == "__main__":
    sys.exit(main())
