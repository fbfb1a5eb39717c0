"""One writer per index at a time, refused at once rather than after its work.

``fglab index-add`` embeds before it commits: two of them at once used to both embed, and the
second was refused only at its commit. :func:`writer_lock` is taken before any work, on a lock
file beside the index (not inside it: a full rewrite swaps the whole folder), and a second
writer is told to run again at once. The kernel drops the lock when its process dies.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fglab.io import make_folder


class IndexBusyError(ValueError):
    """Another process is changing the index."""


def lock_file(index_dir: Path) -> Path:
    index_dir = Path(index_dir).absolute()
    return index_dir.with_name(f".{index_dir.name}.writer.lock")


@contextmanager
def writer_lock(index_dir: Path, new: bool = False) -> Iterator[None]:
    """Hold the index's writer lock for the block; :class:`IndexBusyError` if another
    process (or another open of it here) holds it. ``new``: the index may not exist yet (its
    folder's parent is made); otherwise a missing index is a FileNotFoundError."""
    path = lock_file(index_dir)
    if new:
        make_folder(path.parent)
    elif not Path(index_dir).is_dir():
        raise FileNotFoundError(f"index {index_dir} not found (build it with `fglab index`)")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise IndexBusyError(
                f"{index_dir} is being changed by another fglab command (index, index-add or "
                "index-remove); run this one again when it has finished"
            ) from error
        yield
    finally:
        os.close(fd)
