"""Atomic file writes: a reader sees the old file or the new one, never half of one.

An OSError from a write names the file the caller asked for, never the temporary stand-in
(and a write that names no file, like NumPy's ``5000 requested and 4592 written``, gets one):
the command line prints ``PATH: problem`` from it (:func:`naming`).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over
    ``path`` (``os.replace`` is atomic on POSIX within one file system)."""
    path = Path(path)
    make_folder(path.parent)
    with naming(path, every=True):  # not the random name it tried
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with naming(path, stand_in=tmp):
            write(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def make_folder(path: Path) -> None:
    """``mkdir -p path``; a file in the way is a NotADirectoryError naming that file (not
    ``File exists``, which reads as if the folder were there)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:
        raise NotADirectoryError(
            errno.ENOTDIR, "is a file, not a folder", error.filename or str(path)
        ) from error


def os_error_reason(error: OSError) -> str:
    """What went wrong, without the file name: ``strerror``, else the first line of the
    message (or the class name)."""
    text = str(error.strerror or "").strip() or str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def error_filename(error: OSError) -> str | None:
    """The file an OSError names, as text (None where it names none)."""
    name = error.filename
    if name is None:
        return None
    return os.fsdecode(name) if isinstance(name, str | bytes | os.PathLike) else str(name)


def renamed(error: OSError, filename: str) -> OSError:
    """``error`` naming ``filename``: same errno (hence the same class, e.g. PermissionError)
    and reason."""
    return OSError(error.errno, os_error_reason(error), filename)


@contextmanager
def naming(path: Path, stand_in: Path | None = None, every: bool = False) -> Iterator[None]:
    """Re-raise an OSError of the block naming ``path`` where it names no file (or ``every``
    time), or names ``stand_in`` (a temporary file or folder written in ``path``'s place) or
    a file in it (then the same file under ``path``)."""
    try:
        yield
    except OSError as error:
        name = error_filename(error)
        if name is None or every:
            raise renamed(error, str(path)) from error
        if stand_in is not None and (name == str(stand_in) or name.startswith(f"{stand_in}/")):
            raise renamed(error, str(path) + name[len(str(stand_in)):]) from error
        raise


def replace_folders(
    root: Path,
    writers: dict[str, Callable[[Path], None]],
    remove: list[str],
    commit: Callable[[], None],
) -> None:
    """Replace folders of ``root`` together: each ``writers[name](tmp)`` writes a hidden
    folder beside its place, then all are swapped in (the folders in ``remove`` set aside) and
    ``commit()`` writes what lists them. A failure anywhere (a full disk, a read-only folder)
    puts the old folders back: what was there before stays whole."""
    root = Path(root)
    make_folder(root)
    pid = os.getpid()
    new = {name: root / f".{name}.new-{pid}" for name in writers}
    old: dict[str, Path] = {}
    placed: list[str] = []
    try:
        for name, write in writers.items():
            shutil.rmtree(new[name], ignore_errors=True)
            with naming(root / name, stand_in=new[name]):
                write(new[name])
        for name in [*writers, *remove]:
            if (root / name).exists():
                old[name] = root / f".{name}.old-{pid}"
                shutil.rmtree(old[name], ignore_errors=True)
                os.rename(root / name, old[name])
        for name in writers:
            os.rename(new[name], root / name)
            placed.append(name)
        commit()
    except BaseException:
        for name in placed:
            shutil.rmtree(root / name, ignore_errors=True)
        for name, path in old.items():
            os.rename(path, root / name)
        raise
    finally:
        for path in new.values():
            shutil.rmtree(path, ignore_errors=True)
    for path in old.values():
        shutil.rmtree(path, ignore_errors=True)
