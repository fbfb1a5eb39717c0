"""Noticing that an index directory changed: a commit replaces its listing, a full rewrite
swaps the whole directory. Both change :func:`directory_identity` (a stat and one small file
read), so a server can poll it cheaply (:class:`IndexWatcher`) and a reader can tell a
directory replaced under it from a damaged one."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from fglab.index.atomic import LISTING

logger = logging.getLogger(__name__)


def directory_identity(path: Path) -> tuple[int, str] | None:
    """The directory's inode and its listing's SHA-256 (None if either is missing). Every
    publish writes a different listing (it counts generations and lists every file's SHA-256),
    so equal before and after a read means that read saw one published state (inodes and
    modification times alone repeat: a freed inode is reused within milliseconds)."""
    try:
        folder = os.stat(path)
        listing = (Path(path) / LISTING).read_bytes()
    except OSError:
        return None
    return folder.st_ino, hashlib.sha256(listing).hexdigest()


class IndexWatcher:
    """Calls ``on_change()`` in a background thread when the directory at ``path`` changes,
    checking every ``interval_s`` seconds. A failing ``on_change`` (an index caught half
    rewritten, a damaged file) is logged and tried again at the next check."""

    def __init__(self, path: Path, on_change: Callable[[], None], interval_s: float = 2.0):
        if interval_s <= 0:
            raise ValueError(f"the check interval must be positive, got {interval_s}")
        self.path = Path(path)
        self.on_change = on_change
        self.interval_s = interval_s
        self.seen = directory_identity(self.path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fglab-index-watch", daemon=True)

    def start(self) -> IndexWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def check(self) -> bool:
        """Call ``on_change`` if the directory changed since the last successful call; whether
        it was called and succeeded."""
        current = directory_identity(self.path)
        if current is None or current == self.seen:
            return False
        try:
            self.on_change()
        except (OSError, ValueError, RuntimeError) as error:
            logger.warning("%s changed but could not be loaded (%s); still serving the "
                           "previous state, trying again", self.path, error)
            return False
        self.seen = current
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()
