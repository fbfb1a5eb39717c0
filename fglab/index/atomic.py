"""Index directories written atomically: a reader sees the old directory or the new one.

A directory is built under a hidden temporary name beside its target, every file is fsynced,
a ``index.json`` listing each file's size and SHA-256 is written last, and the directory is
then renamed into place (swapped atomically with an existing one where Linux allows). A build
that is killed leaves only the hidden temporary directory, which never passes
:func:`verify_directory` because its listing is missing or does not match; the next write or
load of the target removes it (:func:`remove_stale_builds`).

Small changes are committed in place instead (:func:`commit_listing`): new files are written
under names no listing holds yet, then ``index.json`` is replaced by a new listing that adds
them (a write-then-rename). Listed files are never modified, so a killed commit leaves the
old listing over intact files; unlisted leftovers are ignored and later removed.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fglab.integrity import file_entry, refuse_pickles, sha256_file
from fglab.io import make_folder, naming

logger = logging.getLogger(__name__)

LISTING = "index.json"
#: The folder of an index that holds the trained run it was embedded with.
MODEL_DIR = "model"
FORMAT = "fglab-index"
FORMAT_VERSION = 2
#: Version 1 (one faiss file per modality and ``items.jsonl``) still loads.
READABLE_VERSIONS = (1, 2)


class IncompleteIndexError(ValueError):
    """An index directory that is partial, damaged, or not an index at all."""


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on a clean exit it replaces ``target``.

    The caller writes its files and finally :func:`write_listing`; nothing becomes visible at
    ``target`` before the block ends without an exception.
    """
    target = Path(target).absolute()
    if target.exists() and not target.is_dir():  # else swapped in, the file moved aside
        raise NotADirectoryError(errno.ENOTDIR, "is a file, not a folder", str(target))
    if target.is_dir() and not (target / LISTING).is_file() and any(target.iterdir()):
        raise ValueError(  # an index replaces only an index (or an empty folder), never photos
            f"{target} is a folder that holds no index ({LISTING} is missing); choose another "
            "--out, or remove the folder if it is an index you want to build again"
        )
    make_folder(target.parent)
    remove_stale_builds(target)
    with locked(target.parent):  # no cleaner looks between making the folder and locking it
        with naming(target, every=True):  # not the random name mkdtemp tried
            tmp = Path(tempfile.mkdtemp(prefix=_build_prefix(target), dir=target.parent))
        owner = _lock_nowait(tmp)  # held until the end: a live build is never cleaned up
    try:
        with naming(target, stand_in=tmp):  # errors name the target, not the hidden build
            yield tmp
            if not (tmp / LISTING).is_file():
                raise IncompleteIndexError(
                    f"{tmp}: {LISTING} was not written; index not published"
                )
            _fsync_tree(tmp)
            _publish(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if owner is not None:
            os.close(owner)


def remove_stale_builds(target: Path) -> list[Path]:
    """Remove the hidden build folders of ``target`` that a killed build left beside it.

    Each build holds an ``flock`` on its folder while it runs (the kernel drops it when the
    process dies), and folders are made and locked under the parent's lock, which this holds
    too: a folder whose lock is free belongs to no live build. Best effort: a folder that
    cannot be locked or removed (read-only) is left. Returns the folders removed."""
    target = Path(target).absolute()
    prefix, removed = _build_prefix(target), []
    try:
        with locked(target.parent):
            for entry in target.parent.iterdir():
                if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
                    continue
                fd = _lock_nowait(entry)
                if fd is None:
                    continue  # a live build
                try:
                    shutil.rmtree(entry)
                    removed.append(entry)
                finally:
                    os.close(fd)
    except OSError as error:
        logger.debug("stale builds beside %s not removed: %s", target, error)
    for entry in removed:
        logger.info("removed %s, left by a build that was killed", entry)
    return removed


def _build_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


def _lock_nowait(directory: Path) -> int | None:
    """An open descriptor holding an exclusive ``flock`` on ``directory``, or None if another
    process holds one."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def write_listing(directory: Path, info: dict) -> None:
    """Write ``index.json``: ``info`` plus the size and SHA-256 of every other file."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative != LISTING:
            files[relative] = file_entry(path)
    listing = {"format": FORMAT, "format_version": FORMAT_VERSION, **info, "files": files}
    _write_json(directory / LISTING, listing)


def commit_listing(directory: Path, listing: dict) -> None:
    """Replace ``index.json`` of a published directory with ``listing`` (written to a hidden
    file, fsynced, renamed over it). Every file it names must already be written and fsynced."""
    directory = Path(directory)
    tmp = directory / f".{LISTING}.{os.getpid()}.tmp"
    try:
        with naming(directory / LISTING, stand_in=tmp):
            _write_json(tmp, {"format": FORMAT, "format_version": FORMAT_VERSION, **listing})
            os.replace(tmp, directory / LISTING)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(directory)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (and ``root`` itself)."""
    _fsync_tree(Path(root))


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on a directory (``flock`` on the folder itself): one writer.
    An OSError of the block that names no file (a failed write, e.g. NumPy's ``5000 requested
    and 4592 written``) is re-raised naming the directory."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with naming(directory):
            yield
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())


def verify_directory(directory: Path, check: Callable[[str], bool] | None = None) -> dict:
    """The listing of a complete index directory; :class:`IncompleteIndexError` otherwise.

    Every listed file is checked against its size and SHA-256, or those ``check(name)`` accepts
    (a reader that will not open some files need not hash them)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"index {directory} not found (build it with `fglab index`)")
    listing_path = directory / LISTING
    if not listing_path.is_file():
        raise IncompleteIndexError(
            f"{directory} is not a complete index: {LISTING} is missing (an interrupted build "
            "leaves such a directory; build the index again)"
        )
    try:
        listing = json.loads(listing_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IncompleteIndexError(f"{listing_path} is unreadable: {error}") from error
    if listing.get("format") != FORMAT:
        raise IncompleteIndexError(
            f"{directory} is not a fglab index of format version {FORMAT_VERSION} "
            f"(found {listing.get('format')!r} version {listing.get('format_version')!r})"
        )
    if listing.get("format_version") not in READABLE_VERSIONS:
        raise IncompleteIndexError(
            f"{directory} is a fglab index of format version {listing.get('format_version')!r}; "
            f"this fglab reads versions {READABLE_VERSIONS}: build the index again"
        )
    refuse_pickles(directory, "index", "build the index again with this fglab version")
    for name, expected in listing.get("files", {}).items():
        if check is not None and not check(name):
            continue
        path = directory / name
        if not path.is_file():
            raise IncompleteIndexError(f"{directory}: file {name} listed in {LISTING} is missing")
        if path.stat().st_size != expected["bytes"] or sha256_file(path) != expected["sha256"]:
            raise IncompleteIndexError(
                f"{directory}: file {name} does not match {LISTING} (damaged or partly written)"
            )
    return listing


def _fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        elif path.is_dir():
            _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``; an existing ``target`` ends up at ``tmp`` (then deleted)."""
    if not target.exists():
        os.rename(tmp, target)
    elif _rename_exchange(tmp, target):
        pass
    else:
        # No atomic exchange here: a crash between the two renames leaves the old index
        # under a hidden name beside the target, never a half-written one at it.
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, backup)
        os.rename(tmp, target)
        os.rename(backup, tmp)
    _fsync_dir(target.parent)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False if absent.

    Python has no binding for it, hence ctypes.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result != 0:
        logger.debug("renameat2 failed (errno %d); falling back", ctypes.get_errno())
        return False
    return True
