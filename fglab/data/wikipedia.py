"""Loader for the layout of the Wikipedia cross-modal data set (Rasiwasia et al., 2010).

A data set folder holds::

    trainset_txt_img_cat.list   text_id<TAB>image_id<TAB>category (1-based)
    testset_txt_img_cat.list
    categories.list             line N names category N
    texts/<text_id>.xml|.txt    one document per text
    images/<category>/<image_id>.<ext>        optional
    features/raw_features.mat   optional shipped features, rows in list order
    stopwords.txt               optional

English Wikipedia, Chinese Wikipedia, TVGraz and the Chinese news set all use it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fglab.data.dataset import CrossModalDataset, Split
from fglab.data.documents import Document, find_text_file, read_document
from fglab.data.images import find_image_file, sniff_image_format
from fglab.data.language import detect_language
from fglab.data.manifest import over_limit
from fglab.data.problems import Problem, log_problems, printable
from fglab.data.root import resolve_dataset_dir

SPLIT_FILES = {"train": "trainset_txt_img_cat.list", "test": "testset_txt_img_cat.list"}
# Shipped feature matrices in features/raw_features.mat: view name -> (train key, test key).
SHIPPED_FEATURES = {
    "image:sift": ("I_tr", "I_te"),
    "text:lda": ("T_tr", "T_te"),
    "text:tfidf": ("T_tfidf_tr", "T_tfidf_te"),
}


def load_dataset(
    name: str, data_root: str | os.PathLike[str] | None = None, log_problems_found: bool = True
) -> CrossModalDataset:
    """Load data set ``name`` (a folder under the data root, or a path), skipping bad pairs.

    Every problem found is recorded in ``dataset.problems`` and, unless ``log_problems_found``
    is False, logged (skipped pairs as warnings); a pair is dropped only when it cannot be used
    (no text, no image, unknown category, ...).
    """
    path = resolve_dataset_dir(name, data_root)
    shown = printable(name, None)
    for filename in [*SPLIT_FILES.values(), "categories.list"]:
        if not (path / filename).is_file():
            where = printable(path / filename, None)
            raise FileNotFoundError(f"data set '{shown}': {where} is missing")
    categories = _read_lines(path / "categories.list")
    shipped = _load_shipped_features(path)
    has_images = (path / "images").is_dir()
    if not has_images and "image:sift" not in shipped:
        raise FileNotFoundError(
            f"data set '{shown}': neither images/ nor features/raw_features.mat found in "
            f"{printable(path, None)}"
        )
    problems: list[Problem] = []
    splits = {
        split: _load_split(path, split, categories, shipped, has_images, problems)
        for split in SPLIT_FILES
    }
    stopwords_file = path / "stopwords.txt"
    stopwords = frozenset(_read_lines(stopwords_file)) if stopwords_file.is_file() else frozenset()
    dataset_name = Path(name).name
    if log_problems_found:
        log_problems(problems, dataset_name)
    language = detect_language(splits["train"].texts[:200])
    return CrossModalDataset(
        name=dataset_name,
        path=path,
        language=language,
        categories=categories,
        train=splits["train"],
        test=splits["test"],
        problems=problems,
        stopwords=stopwords,
        has_images=has_images,
    )


def _read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _load_shipped_features(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    mat_path = path / "features" / "raw_features.mat"
    if not mat_path.is_file():
        return {}
    from scipy.io import loadmat

    mat = loadmat(mat_path)
    return {
        view: (np.asarray(mat[tr], dtype=np.float64), np.asarray(mat[te], dtype=np.float64))
        for view, (tr, te) in SHIPPED_FEATURES.items()
        if tr in mat and te in mat
    }


def _load_split(
    path: Path,
    split: str,
    categories: list[str],
    shipped: dict[str, tuple[np.ndarray, np.ndarray]],
    has_images: bool,
    problems: list[Problem],
) -> Split:
    lines = (path / SPLIT_FILES[split]).read_text(encoding="utf-8", errors="replace").splitlines()
    rows = [line for line in lines if line.strip()]
    matrices = {view: pair[0 if split == "train" else 1] for view, pair in shipped.items()}
    for view, matrix in matrices.items():
        if len(matrix) != len(rows):
            raise ValueError(
                f"{printable(path.name)}: shipped {view} features have {len(matrix)} {split} rows, "
                f"the {split} list has {len(rows)} pairs"
            )
    kept: list[int] = []
    records: list[tuple[str, str, int, str, str, Path | None]] = []
    seen: set[tuple[str, str]] = set()
    for row_index, line in enumerate(rows):
        record = _parse_pair(path, split, row_index, line, categories, has_images, seen, problems)
        if record is not None:
            kept.append(row_index)
            records.append(record)
    return Split(
        name=split,
        text_ids=[r[0] for r in records],
        image_ids=[r[1] for r in records],
        labels=np.array([r[2] for r in records], dtype=np.int64),
        texts=[r[3] for r in records],
        titles=[r[4] for r in records],
        image_paths=[r[5] for r in records],
        shipped={view: matrix[kept] for view, matrix in matrices.items()},
    )


def _parse_pair(
    path: Path,
    split: str,
    row_index: int,
    line: str,
    categories: list[str],
    has_images: bool,
    seen: set[tuple[str, str]],
    problems: list[Problem],
) -> tuple[str, str, int, str, str, Path | None] | None:
    """One list line -> (text_id, image_id, label, text, title, image_path), or None if unusable."""
    fields = [f.strip() for f in line.split("\t")]
    if len(fields) != 3 or not all(fields):
        problems.append(Problem("bad_line", split, f"line {row_index + 1}", printable(line)))
        return None
    text_id, image_id, category = fields
    if not category.isdigit() or not 1 <= int(category) <= len(categories):
        detail = f"category '{printable(category)}' is not in 1..{len(categories)}"
        problems.append(Problem("unknown_category", split, text_id, detail))
        return None
    label = int(category) - 1
    if (text_id, image_id) in seen:
        detail = f"image {printable(image_id)} again"
        problems.append(Problem("duplicate_pair", split, text_id, detail))
        return None
    seen.add((text_id, image_id))

    document = _pair_text(path, split, text_id, problems)
    if document is None:
        return None

    image_path = None
    if has_images:
        image_dir = path / "images" / categories[label]
        image_path, renamed = find_image_file(image_dir, image_id)
        if image_path is None:
            detail = f"no images/{printable(categories[label])}/{printable(image_id)}.*"
            problems.append(Problem("missing_image", split, image_id, detail))
            return None
        if renamed:
            detail = f"found as '{printable(image_path.name)}'"
            problems.append(Problem("image_name_whitespace", split, image_id, detail))
        fmt = sniff_image_format(image_path)
        if fmt is None:
            problems.append(Problem("unreadable_image", split, image_id, "not a known image"))
            return None
        if not _extension_matches(image_path.suffix, fmt):
            detail = f"{fmt} under a {image_path.suffix} name; read by content"
            problems.append(Problem("image_format_mismatch", split, image_id, detail))
    return text_id, image_id, label, document.text, document.title, image_path


def _pair_text(path: Path, split: str, text_id: str, problems: list[Problem]) -> Document | None:
    """The document of ``texts/<text_id>.*``, or None with the problem recorded: no file, a
    file over the limit for a text (checked before it is read), unreadable, or empty."""
    text_path = find_text_file(path / "texts", text_id)
    if text_path is None:
        problems.append(Problem("missing_text", split, text_id, "no texts/<id>.xml or .txt"))
        return None
    name = printable(text_path.name)
    try:
        too_big = over_limit(text_path.stat().st_size)
        if too_big:
            problems.append(Problem("text_too_large", split, text_id, f"{name} {too_big}"))
            return None
        document = read_document(text_path)
    except (OSError, ValueError) as error:
        problems.append(Problem("unreadable_text", split, text_id, printable(error, None)))
        return None
    if not document.well_formed:
        problems.append(Problem("malformed_xml", split, text_id, "text recovered"))
    if not document.text.strip():
        problems.append(Problem("empty_text", split, text_id, f"{name} has no text"))
        return None
    return document


def _extension_matches(suffix: str, fmt: str) -> bool:
    aliases = {"JPEG": {".jpg", ".jpeg"}, "PNG": {".png"}, "BMP": {".bmp"}, "GIF": {".gif"}}
    return suffix.lower() in aliases.get(fmt, {f".{fmt.lower()}"})
