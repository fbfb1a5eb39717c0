"""A user's own collection: a CSV or JSONL manifest, one item per row.

Columns (CSV header or JSONL keys): ``id``, ``text`` or ``text_path``, ``image_path``, an
optional ``label`` (a category name) and an optional ``split`` (``train`` or ``test``, for
training on the manifest). Paths are relative to the manifest's folder and must stay
inside it; a row may have text, an image, or both. A row that cannot be used is reported as a
:class:`ManifestProblem` (row number, id, problem) and skipped; the rest load.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from fglab.data.images import sniff_image_format
from fglab.data.sources import ManifestSource, manifest_file

logger = logging.getLogger(__name__)

ROW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_TEXT_BYTES = 5_000_000


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
        return f"row {self.row} (id {self.id or '?'}): {self.problem}; skipped"


@dataclass
class Manifest:
    path: Path
    root: Path  # the manifest's folder: every file must lie under it
    items: list[ManifestItem]
    problems: list[ManifestProblem]

    @property
    def labels(self) -> list[str]:
        return sorted({item.label for item in self.items if item.label})


def load_manifest(path: str | Path | ManifestSource) -> Manifest:
    """Read a CSV (``.csv``) or JSONL (``.jsonl``/``.json``) manifest; see the module docstring.
    ``path``: the file, its :class:`ManifestSource`, or (still read) ``manifest:PATH``."""
    path = manifest_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found")
    root = path.resolve().parent
    rows, problems = _read_rows(path)
    items: list[ManifestItem] = []
    seen: set[str] = set()
    for row_number, row in rows:
        item_or_problem = _parse_row(row_number, row, root, seen)
        if isinstance(item_or_problem, ManifestProblem):
            problems.append(item_or_problem)
        else:
            items.append(item_or_problem)
            seen.add(item_or_problem.id)
    problems.sort(key=lambda p: p.row)
    for problem in problems:
        logger.warning("%s: %s", path.name, problem)
    if not items:
        raise ValueError(f"manifest {path}: no usable rows ({len(problems)} problems)")
    return Manifest(path=path, root=root, items=items, problems=problems)


def _read_rows(path: Path) -> tuple[list[tuple[int, dict]], list[ManifestProblem]]:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if suffix == ".csv":
        return _csv_rows(path, text)
    if suffix in (".jsonl", ".json"):
        return _jsonl_rows(text)
    raise ValueError(f"manifest {path}: expected a .csv or .jsonl file, got {suffix or 'none'!r}")


def _csv_rows(path: Path, text: str) -> tuple[list[tuple[int, dict]], list[ManifestProblem]]:
    """Rows of a CSV file; quoted fields may hold line breaks. A malformed row (a stray or
    unclosed quote) is a problem naming its lines, never silently merged into another."""
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as error:
        raise ValueError(f"manifest {path}: the CSV header is malformed ({error})") from error
    if fieldnames is None or "id" not in fieldnames:
        raise ValueError(f"manifest {path}: the CSV header must name an 'id' column")
    rows, problems = [], []
    for n in itertools.count(1):
        first_line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if "end of data" in str(error):  # an open quote ran to the end of the file
                last = text.count("\n") + (not text.endswith("\n"))
                why = f"lines {first_line}-{last}: a quoted field is never closed"
            else:
                why = f"line {first_line}: malformed CSV ({error})"
            problems.append(ManifestProblem(n, "", f"{why}; these lines were not read"))
            continue
        rows.append((n, row))
    return rows, problems


def _jsonl_rows(text: str) -> tuple[list[tuple[int, dict]], list[ManifestProblem]]:
    rows, problems = [], []
    # split on newlines only: str.splitlines would also split inside a string at U+2028 etc.
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            problems.append(ManifestProblem(n, "", f"not valid JSON ({error})"))
            continue
        if not isinstance(record, dict):
            problems.append(ManifestProblem(n, "", "not a JSON object"))
            continue
        rows.append((n, record))
    return rows, problems


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
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= length else text[: length - 1] + "\u2026"


def _parse_row(n: int, row: dict, root: Path, seen: set[str]) -> ManifestItem | ManifestProblem:
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
        return ManifestProblem(n, item_id, f"id {item_id!r} must match {ROW_ID.pattern}")
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
            return ManifestProblem(n, item_id, f"image_path {image_path.name!r} is not an image")
    if not text and image_path is None:
        return ManifestProblem(n, item_id, "neither text, text_path nor image_path given")
    split = _field(row, "split").lower() or None
    if split is not None and split not in SPLITS:
        return ManifestProblem(n, item_id, f"split {split!r} must be 'train' or 'test'")
    return ManifestItem(n, item_id, text or None, image_path, _field(row, "label") or None, split)


def _row_text(row: dict, root: Path) -> tuple[str, str | None]:
    text = _field(row, "text")
    if text or not _field(row, "text_path"):
        return text, None
    path, problem = _inside(root, _field(row, "text_path"), "text_path")
    if problem:
        return "", problem
    if path.stat().st_size > MAX_TEXT_BYTES:
        return "", f"text_path {path.name!r} is over {MAX_TEXT_BYTES} bytes"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        return "", f"text_path {path.name!r} is unreadable as UTF-8 ({error})"
    return text, None if text else f"text_path {path.name!r} is empty"


def _inside(root: Path, value: str, column: str) -> tuple[Path, str | None]:
    """``value`` resolved against ``root``; a problem if it leaves ``root`` or is no file."""
    path = (root / value).resolve()
    if not path.is_relative_to(root):
        return path, f"{column} {value!r} points outside the manifest's folder {root}"
    if not path.is_file():
        return path, f"{column} {value!r} does not exist"
    return path, None
