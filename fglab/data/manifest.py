"""A user's own collection: a CSV or JSONL manifest, one item per row.

Columns (CSV header or JSONL keys): ``id``, ``text`` or ``text_path``, ``image_path``, an
optional ``label`` (a category name) and an optional ``split`` (``train`` or ``test``, for
training on the manifest). Paths are relative to the manifest's folder and must stay
inside it; a row may have text, an image, or both. A text may have at most
:data:`MAX_TEXT_BYTES` bytes of UTF-8, however it arrives. A row that cannot be used is reported
as a :class:`ManifestProblem` (row number, id, problem) and skipped; the rest load. Values from
the manifest reach messages only through :func:`~fglab.data.problems.printable`.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from pathlib import Path

from fglab.data.images import sniff_image_format
from fglab.data.problems import printable
from fglab.data.sources import ManifestSource, manifest_file

logger = logging.getLogger(__name__)

ROW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: The most bytes of UTF-8 one text may have, however it arrives (inline ``text`` in JSONL or
#: CSV, a ``text_path`` file, a Wikipedia-layout text file): 1 MB. A news article is 10-50 KB,
#: the longest texts of eng-wiki and chinese-news 16 KB and 7 KB, a whole novel about 1 MB; past
#: that a text only costs: training holds ~16 bytes per character, the sentence encoders read
#: only its beginning, the service returns it whole from /items/{id} (one 50 MB text took 68 s
#: and 7 GB of memory to index).
MAX_TEXT_BYTES = 1_000_000
#: JSON spells one byte of a text in at most 6 (``\u0001``); with room for the other columns,
#: a JSONL line longer than this cannot hold an allowed text and is never decoded.
JSON_ESCAPE_BYTES = 6
OTHER_COLUMNS_BYTES = 65_536


def over_limit(size: int) -> str | None:
    """For a text of ``size`` bytes over the limit, the problem "is N bytes, over the limit of
    M bytes"; else None."""
    if size <= MAX_TEXT_BYTES:
        return None
    return f"is {size} bytes, over the limit of {MAX_TEXT_BYTES} bytes"


@dataclass(frozen=True)
class ManifestItem:
    row: int  # 1-based data row (CSV: the header is row 0)
    id: str
    text: str | None
    image_path: Path | None  # absolute
    label: str | None
    split: str | None = None  # "train", "test" or None (not given)


@dataclass(frozen=True)
class ManifestProblem:
    row: int
    id: str
    problem: str

    def __str__(self) -> str:
        shown = printable(self.id) or "?"
        return f"row {self.row} (id {shown}): {printable(self.problem, None)}; skipped"


#: The items a row may give: its text, its image.
MODALITIES = ("text", "image")


@dataclass
class Manifest:
    """A manifest read whole: every usable row as a :class:`ManifestItem` (for training)."""

    path: Path
    root: Path  # the manifest's folder: every file must lie under it
    items: list[ManifestItem]
    problems: list[ManifestProblem]

    @property
    def labels(self) -> list[str]:
        return sorted({item.label for item in self.items if item.label})

    @property
    def counts(self) -> dict[str, int]:
        """Items per modality: rows with a text, rows with an image."""
        return {modality: sum(_has(m, modality) for m in self.items) for modality in MODALITIES}

    def iter_items(self, modality: str | None = None) -> Iterator[ManifestItem]:
        """The rows, or those with a ``modality`` ("text" or "image"), in file order."""
        return (m for m in self.items if _has(m, modality))


@dataclass
class StreamedManifest:
    """A manifest checked in one pass without holding its rows (for indexing collections of
    millions): its counts and problems, and which rows are usable (a byte a row). Each
    :meth:`iter_items` reads the file again; a file changed since the check is an error
    naming it, never a silent mix of two versions."""

    path: Path
    root: Path
    problems: list[ManifestProblem]
    counts: dict[str, int]
    usable: bytearray  # usable[n]: data row n is an item
    stamp: tuple[int, int]  # the file's (size, mtime_ns) when checked

    def iter_items(self, modality: str | None = None) -> Iterator[ManifestItem]:
        """The usable rows, or those with a ``modality``, in file order, parsed again (their
        ids were checked to be unique by the first pass)."""
        self._check_unchanged()
        no_ids: frozenset[str] = frozenset()
        for number, row in _read_rows(self.path):
            if isinstance(row, ManifestProblem) or not _usable(self.usable, number):
                continue
            item = _parse_row(number, row, self.root, no_ids)
            if isinstance(item, ManifestProblem):
                raise ValueError(
                    f"manifest {printable(self.path, None)} changed while it was read: row "
                    f"{item.row} (id {printable(item.id)}) {printable(item.problem, None)}")
            if _has(item, modality):
                yield item
        self._check_unchanged()

    def _check_unchanged(self) -> None:
        if _stamp(self.path) != self.stamp:
            raise ValueError(f"manifest {printable(self.path, None)} changed while it was read; "
                             "run again")


def _has(item: ManifestItem, modality: str | None) -> bool:
    """Whether the row gives an item of ``modality`` (any row, for None)."""
    return modality is None or bool(item.text if modality == "text" else item.image_path)


def _usable(usable: bytearray, number: int) -> bool:
    return number < len(usable) and bool(usable[number])


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def load_manifest(path: str | Path | ManifestSource) -> Manifest:
    """Read a CSV (``.csv``) or JSONL (``.jsonl``/``.json``) manifest; see the module docstring.
    ``path``: the file, its :class:`ManifestSource`, or (still read) ``manifest:PATH``."""
    path, root = _manifest_path(path)
    items: list[ManifestItem] = []
    problems = _check_rows(path, root, items.append)
    return Manifest(path=path, root=root, items=items, problems=problems)


def stream_manifest(path: str | Path | ManifestSource,
                    progress: Callable[[int], object] | None = None) -> StreamedManifest:
    """Check a manifest as :func:`load_manifest` does, holding its usable rows' ids (to refuse
    a duplicate) but not the rows; :meth:`StreamedManifest.iter_items` gives them.
    ``progress(n)`` is told of the rows as they are checked."""
    path, root = _manifest_path(path)
    stamp = _stamp(path)
    usable = bytearray()
    counts = dict.fromkeys(MODALITIES, 0)

    def keep(item: ManifestItem) -> None:
        usable.extend(bytes(item.row + 1 - len(usable)))
        usable[item.row] = 1
        for modality in MODALITIES:
            counts[modality] += _has(item, modality)

    problems = _check_rows(path, root, keep, progress)
    return StreamedManifest(path, root, problems, counts, usable, stamp)


def _manifest_path(path: str | Path | ManifestSource) -> tuple[Path, Path]:
    path = manifest_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {printable(path, None)} not found")
    return path, path.resolve().parent


def _check_rows(path: Path, root: Path, keep: Callable[[ManifestItem], None],
                progress: Callable[[int], object] | None = None) -> list[ManifestProblem]:
    """Parse every row, handing each usable one to ``keep``; the problems, in row order (each
    also logged). An error if no row is usable."""
    problems: list[ManifestProblem] = []
    seen: set[str] = set()
    kept = 0
    for number, row in _read_rows(path):
        if progress is not None:
            progress(1)
        item = row if isinstance(row, ManifestProblem) else _parse_row(number, row, root, seen)
        if isinstance(item, ManifestProblem):
            problems.append(item)
            continue
        seen.add(item.id)
        keep(item)
        kept += 1
    problems.sort(key=lambda p: p.row)
    for problem in problems:
        logger.warning("%s: %s", printable(path.name), problem)
    if not kept:
        shown = printable(path, None)
        raise ValueError(f"manifest {shown}: no usable rows ({len(problems)} problems)")
    return problems


def _read_rows(path: Path) -> Iterator[tuple[int, dict | ManifestProblem]]:
    """(data row number, its columns or the problem that kept it from being read), in order."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix in (".jsonl", ".json"):
        return _jsonl_rows(path)
    shown = f"{printable(path, None)}: expected a .csv or .jsonl file"
    raise ValueError(f"manifest {shown}, got '{printable(suffix or 'none')}'")


class _Lines:
    """A CSV file's physical lines for :mod:`csv`, counted, with the number of quotes read
    since :meth:`start_record` (odd: inside a quoted field)."""

    def __init__(self, handle: Iterator[str]) -> None:
        self._handle = handle
        self.number = 0
        self.quotes = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._handle)
        self.number += 1
        self.quotes += line.count('"')
        return line

    def start_record(self) -> None:
        self.quotes = 0

    def skip_record(self) -> None:
        """Read past the rest of a record the reader gave up on inside a quoted field."""
        while self.quotes % 2 and next(self, None) is not None:
            pass


def _csv_rows(path: Path) -> Iterator[tuple[int, dict | ManifestProblem]]:
    """Rows of a CSV file; quoted fields may hold line breaks. A malformed row (a stray or
    unclosed quote) is a problem naming its lines, never silently merged into another; so is
    a field over the limit for a text, which the csv module itself stops at."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        lines = _Lines(handle)
        with _csv_field_limit():
            reader = _csv_reader(path, lines)
        for n in itertools.count(1):
            first_line = lines.number + 1
            lines.start_record()
            try:
                with _csv_field_limit():  # never left set while this generator is paused
                    row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                row = _csv_problem(n, error, lines, first_line)
            yield n, row


@contextlib.contextmanager
def _csv_field_limit() -> Iterator[None]:
    """The csv module's field limit raised to a text's, and put back: it is the process's."""
    previous = csv.field_size_limit(MAX_TEXT_BYTES + 1)  # characters: each is 1+ bytes
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _csv_reader(path: Path, lines: _Lines) -> csv.DictReader:
    reader = csv.DictReader(lines, strict=True)
    shown = printable(path, None)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as error:
        raise ValueError(f"manifest {shown}: the CSV header is malformed ({error})") from error
    if fieldnames is None or "id" not in fieldnames:
        raise ValueError(f"manifest {shown}: the CSV header must name an 'id' column")
    return reader


def _csv_problem(n: int, error: csv.Error, lines: _Lines, first_line: int) -> ManifestProblem:
    if "field larger than field limit" in str(error):
        lines.skip_record()
        why = f"a field is over the limit of {MAX_TEXT_BYTES} bytes for a text"
    elif "end of data" in str(error):  # an open quote ran to the end of the file
        why = "a quoted field is never closed"
    else:
        why = f"malformed CSV ({printable(error, None)})"
    where = (f"lines {first_line}-{lines.number}" if lines.number > first_line
             else f"line {first_line}")
    return ManifestProblem(n, "", f"{where}: {why}; these lines were not read")


def _jsonl_lines(path: Path, limit: int) -> Iterator[tuple[int, bytes, int]]:
    """(line number, the line, its length in bytes) for each line of a JSONL file; a line over
    ``limit`` bytes comes back empty, read past in blocks and never held whole."""
    with path.open("rb") as handle:
        for n in itertools.count(1):
            line = handle.readline(limit + 1)
            if not line:
                return
            size = len(line.rstrip(b"\n"))
            if size <= limit:
                yield n, line, size
                continue
            while not line.endswith(b"\n"):
                line = handle.readline(1 << 20)
                size += len(line.rstrip(b"\n"))
                if not line:
                    break
            yield n, b"", size


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict | ManifestProblem]]:
    limit = JSON_ESCAPE_BYTES * MAX_TEXT_BYTES + OTHER_COLUMNS_BYTES
    # lines end at "\n" only: str.splitlines would also split inside a string at U+2028 etc.
    for n, raw, size in _jsonl_lines(path, limit):
        if size > limit:
            why = (f"the line is {size} bytes, too long to hold a text within the limit of "
                   f"{MAX_TEXT_BYTES} bytes; not read")
            yield n, ManifestProblem(n, "", why)
            continue
        line = raw.decode("utf-8-sig" if n == 1 else "utf-8", errors="replace")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            yield n, ManifestProblem(n, "", f"not valid JSON ({error})")
            continue
        if not isinstance(record, dict):
            yield n, ManifestProblem(n, "", "not a JSON object")
            continue
        yield n, record


SPLITS = ("train", "test")
#: Columns a JSONL row may give as a whole number besides a string (``{"id": 7}``).
NUMBER_COLUMNS = ("id", "label")


def _field(row: dict, name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value).strip()


def _non_text_column(row: dict) -> str | None:
    """The first column whose JSONL value is not text (a list, an object, a number where
    text belongs), or None."""
    for name in ("id", "text", "text_path", "image_path", "label", "split"):
        value = row.get(name)
        if value is None or isinstance(value, str):
            continue
        if name in NUMBER_COLUMNS and isinstance(value, int) and not isinstance(value, bool):
            continue
        return name
    return None


def _short(value: object, length: int = 40) -> str:
    return printable(json.dumps(value, ensure_ascii=False), length)


def _parse_row(n: int, row: dict, root: Path, seen: Container[str]
               ) -> ManifestItem | ManifestProblem:
    bad = _non_text_column(row)
    if bad:
        value = row[bad]
        return ManifestProblem(
            n,
            "" if bad == "id" else _field(row, "id"),
            f"{bad} must be a string, got {type(value).__name__} {_short(value)}",
        )
    item_id = _field(row, "id")
    if not ROW_ID.match(item_id):
        return ManifestProblem(n, item_id, f"id '{printable(item_id)}' must match {ROW_ID.pattern}")
    if item_id in seen:
        return ManifestProblem(n, item_id, "duplicate id")
    text, problem = _row_text(row, root)
    if problem:
        return ManifestProblem(n, item_id, problem)
    image_path = None
    if _field(row, "image_path"):
        image_path, problem = _inside(root, _field(row, "image_path"), "image_path")
        if problem:
            return ManifestProblem(n, item_id, problem)
        if sniff_image_format(image_path) is None:
            shown = printable(image_path.name)
            return ManifestProblem(n, item_id, f"image_path '{shown}' is not an image")
    if not text and image_path is None:
        return ManifestProblem(n, item_id, "neither text, text_path nor image_path given")
    split = _field(row, "split").lower() or None
    if split is not None and split not in SPLITS:
        shown = printable(split)
        return ManifestProblem(n, item_id, f"split '{shown}' must be 'train' or 'test'")
    return ManifestItem(n, item_id, text or None, image_path, _field(row, "label") or None, split)


def _row_text(row: dict, root: Path) -> tuple[str, str | None]:
    """The row's text, inline or from its ``text_path`` file, or a problem."""
    text = _field(row, "text")
    if text:  # surrogatepass: JSON may spell a lone surrogate, which still takes 3 bytes
        too_big = over_limit(len(text.encode("utf-8", "surrogatepass")))
        return ("", f"text {too_big}") if too_big else (text, None)
    if not _field(row, "text_path"):
        return "", None
    path, problem = _inside(root, _field(row, "text_path"), "text_path")
    return ("", problem) if problem else _text_file(path)


def _text_file(path: Path) -> tuple[str, str | None]:
    """A ``text_path`` file's text, its size checked before it is read, or a problem."""
    shown = f"text_path '{printable(path.name)}'"
    try:
        with path.open("rb") as handle:
            too_big = over_limit(os.fstat(handle.fileno()).st_size)
            data = b"" if too_big else handle.read(MAX_TEXT_BYTES + 1)  # bounded: it may grow
            too_big = too_big or over_limit(len(data))
            if too_big:
                return "", f"{shown} {too_big}"
            text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return "", f"{shown} is unreadable as UTF-8 ({printable(error, None)})"
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()  # as text mode reads it
    return text, None if text else f"{shown} is empty"


def _inside(root: Path, value: str, column: str) -> tuple[Path, str | None]:
    """``value`` resolved against ``root``; a problem if it leaves ``root``, is no file, or is
    no path the system takes (a NUL, a name too long)."""
    shown = f"{column} '{printable(value)}'"
    try:
        path = (root / value).resolve()
        if not path.is_relative_to(root):
            where = printable(root, None)
            return path, f"{shown} points outside the manifest's folder {where}"
        if not path.is_file():
            return path, f"{shown} does not exist"
    except (OSError, ValueError) as error:
        why = printable(getattr(error, "strerror", None) or error)
        return root, f"{shown} is not a usable path ({why})"
    return path, None
