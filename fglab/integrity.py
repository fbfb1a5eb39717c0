"""File checksums and the refusal of pickles, shared by runs, indexes and checkpoints.

A listing maps each file's path (relative to its folder, ``/``-separated) to its size and
SHA-256. A listing guards against damage, not against whoever hands a folder over (they can
rewrite it too): that is why nothing here is ever loaded with pickle, and why a folder holding
a pickle is refused outright.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Suffixes of files that only pickle (or torch.load, a pickle too) can read.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".pt", ".pth")


class DamagedFileError(ValueError):
    """A listed file that is missing or does not match its size and SHA-256."""


class PickleRefusedError(ValueError):
    """A run or index that holds a pickle file."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(path: Path) -> dict:
    """What a listing records of a file: its size and SHA-256."""
    return {"bytes": Path(path).stat().st_size, "sha256": sha256_file(path)}


def list_files(directory: Path, folders: list[str], checksums: bool = True) -> dict[str, dict]:
    """The listing of every file under ``directory``/``folder`` for each of ``folders``
    (``checksums=False``: the names only, each with an empty record)."""
    directory = Path(directory)
    files = {}
    for folder in folders:
        for path in sorted(p for p in (directory / folder).rglob("*") if p.is_file()):
            files[path.relative_to(directory).as_posix()] = file_entry(path) if checksums else {}
    return files


def check_files(directory: Path, files: dict[str, dict], listing: str, fix: str) -> None:
    """Raise :class:`DamagedFileError` naming the first listed file that is missing or
    differs from ``listing``'s record; ``fix`` says what to do about it."""
    directory = Path(directory)
    for name, expected in files.items():
        path = directory / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise DamagedFileError(f"{directory / listing} lists a path outside it: {name!r}")
        if not path.is_file():
            raise DamagedFileError(f"{path} is missing (listed in {listing}); {fix}")
        if not isinstance(expected, dict) or path.stat().st_size != expected.get("bytes") or (
            sha256_file(path) != expected.get("sha256")
        ):
            raise DamagedFileError(
                f"{path} does not match its SHA-256 in {listing} (damaged or altered); {fix}"
            )


def refuse_pickles(directory: Path, what: str, fix: str) -> None:
    """Raise :class:`PickleRefusedError` if any file under ``directory`` is a pickle."""
    directory = Path(directory)
    for path in sorted(directory.rglob("*")):
        if path.suffix.lower() in PICKLE_SUFFIXES and not path.is_dir():
            raise PickleRefusedError(
                f"{what} {directory} holds a pickle ({path.relative_to(directory)}): pickles are "
                f"refused, since loading one can run any code; {fix}"
            )
