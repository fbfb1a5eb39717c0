"""A synthetic manifest collection of any size, built from the chinese-news pairs.

Pair ``i`` (``p000000``, ``p000001``, ...) is a function of (seed, i) only, so a collection of
10,000 pairs is the first 10,000 of one of 100,000 and every size shares one image folder:

- **source**: the chinese-news pairs whose photo decodes (train and test lists; a missing or
  unreadable photo is skipped and counted), shuffled once by the seed; pair ``i`` takes
  source ``i mod M``. Each source photo is first reduced to at most 512 px a side
  (``sources/``), so the augmentations decode a small JPEG.
- **image**: that photo augmented: a random resized crop (40-100% of the area, aspect 3/4 to
  4/3), at most 256 px a side, a horizontal flip half the time, a rotation of up to 10
  degrees (corners filled with the photo's mean colour), brightness, contrast and saturation
  jitter of up to 25%; JPEG quality 85 (about 10-20 KB).
- **text**: the source text's first one or two sentences, then one to three sentences drawn
  from other texts of the same category. The pair's text thus still describes its photo,
  while the same photo's copies get different captions.
- **label**: the source's category name; **split**: train with probability 0.8, else test.

Writing is resumable and idempotent: an image that exists is not written again (each is
written to a temporary name and renamed), and the manifest is rewritten from the seed.

    python benchmarks/synthetic_collection.py --pairs 2000 --out /tmp/fglab-scale/collection
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageStat

SOURCE_SIDE, PAIR_SIDE, JPEG_QUALITY = 512, 256, 85
SOURCES_FILE = "sources.json"
SENTENCE_END = re.compile(r"(?<=[。！？!?；;\n])")


@dataclass(frozen=True)
class Source:
    """One usable chinese-news pair: its reduced photo (relative to the collection) and text."""

    file: str
    text: str
    category: str
    origin: str  # "train/<text id>" or "test/<text id>"


def _reduce_source(job: tuple[str, str]) -> str | None:
    """Decode ``src`` (any format PIL reads by content), reduce it to SOURCE_SIDE and save it
    as JPEG at ``dst``; the reason as a string when the photo cannot be read."""
    src, dst = job
    if os.path.exists(dst):
        return None
    try:
        with Image.open(src) as image:
            image.draft("RGB", (SOURCE_SIDE, SOURCE_SIDE))  # JPEG: decode at a reduced scale
            image = image.convert("RGB")
            image.thumbnail((SOURCE_SIDE, SOURCE_SIDE), Image.Resampling.BILINEAR)
            _save_jpeg(image, Path(dst), quality=90)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def _save_jpeg(image: Image.Image, path: Path, quality: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    image.save(tmp, format="JPEG", quality=quality)
    os.replace(tmp, path)


def prepare_sources(
    out: Path, dataset: str = "chinese-news", data_root: str | None = None, processes: int = 2
) -> tuple[list[Source], dict[str, str]]:
    """The usable source pairs, shuffled later by the seed; ``out/sources.json`` caches them.
    Returns (sources, {origin: reason} of the pairs skipped)."""
    listing = out / SOURCES_FILE
    if listing.is_file():
        saved = json.loads(listing.read_text(encoding="utf-8"))
        return [Source(**s) for s in saved["sources"]], saved["skipped"]
    from fglab.data.root import resolve_data_root
    from fglab.data.wikipedia import load_dataset

    data = load_dataset(dataset, resolve_data_root(data_root), log_problems_found=False)
    (out / "sources").mkdir(parents=True, exist_ok=True)
    candidates, skipped = [], {}
    for split in (data.train, data.test):
        for row in range(len(split)):
            origin = f"{split.name}/{split.text_ids[row]}"
            path = split.image_paths[row]
            if path is None:
                skipped[origin] = "no image file"
                continue
            file = f"sources/{len(candidates):05d}.jpg"
            candidates.append((str(path), file, split.texts[row],
                               data.categories[int(split.labels[row])], origin))
    for problem in data.problems:  # pairs the loader itself left out (e.g. a missing photo)
        if problem.skipped:
            skipped[f"{problem.split}/{problem.item}"] = f"{problem.kind}: {problem.detail}"
    jobs = [(src, str(out / file)) for src, file, *_ in candidates]
    with multiprocessing.Pool(processes) as pool:
        reasons = pool.map(_reduce_source, jobs, chunksize=16)
    sources = []
    for (_, file, text, category, origin), reason in zip(candidates, reasons, strict=True):
        if reason is not None or not text.strip():
            skipped[origin] = reason or "empty text"
            continue
        sources.append(Source(file, text, category, origin))
    payload = {"dataset": dataset, "sources": [vars(s) for s in sources], "skipped": skipped}
    tmp = listing.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, listing)
    return sources, skipped


def sentences(text: str) -> list[str]:
    """``text`` cut after each sentence end (。！？!?；; and line breaks), blanks dropped."""
    return [s.strip() for s in SENTENCE_END.split(text) if len(s.strip()) > 1] or [text.strip()]


class Captions:
    """Pair captions: the source's first sentence(s), then sentences of the same category."""

    def __init__(self, sources: list[Source]) -> None:
        self.own = [sentences(s.text) for s in sources]
        self.pool: dict[str, list[tuple[int, str]]] = {}  # category -> (source, sentence)
        for index, (source, own) in enumerate(zip(sources, self.own, strict=True)):
            self.pool.setdefault(source.category, []).extend((index, s) for s in own)

    def caption(self, source: int, category: str, rng: np.random.Generator) -> str:
        parts = self.own[source][: int(rng.integers(1, 3))]
        pool = self.pool[category]
        wanted, tries = int(rng.integers(1, 4)), 0
        while wanted and tries < 20:
            owner, sentence = pool[int(rng.integers(len(pool)))]
            tries += 1
            if owner != source:
                parts.append(sentence)
                wanted -= 1
        return "".join(parts)


def source_order(n_sources: int, seed: int) -> np.ndarray:
    """Pair ``i`` takes source ``order[i % n_sources]``: one seeded shuffle, taken in turn."""
    return np.random.default_rng([seed, 7]).permutation(n_sources)


def image_path(i: int) -> str:
    return f"images/{i // 1000:03d}/p{i:06d}.jpg"


def _augment(job: tuple[str, str, int, int]) -> tuple[bool, str | None]:
    """Write the augmented photo of one pair; (written now, error or None)."""
    src, dst, seed, i = job
    if os.path.exists(dst):
        return False, None
    rng = np.random.default_rng([seed, i, 0])
    try:
        with Image.open(src) as opened:
            image = opened.convert("RGB")
        image = _random_resized_crop(image, rng)
        image.thumbnail((PAIR_SIDE, PAIR_SIDE), Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        fill = tuple(int(v) for v in ImageStat.Stat(image).mean)
        image = image.rotate(float(rng.uniform(-10, 10)), Image.Resampling.BILINEAR,
                             fillcolor=fill)
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            image = enhance(image).enhance(float(rng.uniform(0.75, 1.25)))
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        _save_jpeg(image, Path(dst), JPEG_QUALITY)
    except (OSError, ValueError) as error:
        return False, f"{type(error).__name__}: {error}"
    return True, None


def _random_resized_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(0.4, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return image.crop((x, y, x + w, y + h))
    return image


@dataclass
class GenerationReport:
    pairs: int  # rows in the manifest
    written: int  # images written by this call (the rest existed)
    failed: dict[int, str]  # pair -> reason (left out of the manifest)
    seconds: float  # writing the images
    sources: int
    skipped_sources: int

    @property
    def images_per_second(self) -> float | None:
        return self.written / self.seconds if self.written else None


def generate(
    out: Path,
    n_pairs: int,
    seed: int = 0,
    data_root: str | None = None,
    processes: int = 2,
) -> tuple[Path, GenerationReport]:
    """Write (or complete) the first ``n_pairs`` pairs under ``out`` and the manifest
    ``out/collection-<n_pairs>.jsonl``; returns its path and what was done."""
    out.mkdir(parents=True, exist_ok=True)
    sources, skipped = prepare_sources(out, data_root=data_root, processes=processes)
    order = source_order(len(sources), seed)
    jobs = [
        (str(out / sources[order[i % len(order)]].file), str(out / image_path(i)), seed, i)
        for i in range(n_pairs)
    ]
    start = time.perf_counter()
    written, failed = 0, {}
    with multiprocessing.Pool(processes) as pool:
        for i, (new, error) in enumerate(pool.imap(_augment, jobs, chunksize=64)):
            written += new
            if error:
                failed[i] = error
    seconds = time.perf_counter() - start
    manifest = out / f"collection-{n_pairs}.jsonl"
    _write_manifest(manifest, sources, n_pairs, seed, set(failed))
    report = GenerationReport(n_pairs - len(failed), written, failed, seconds, len(sources),
                              len(skipped))
    return manifest, report


def _write_manifest(
    path: Path, sources: list[Source], n_pairs: int, seed: int, leave_out: set[int]
) -> None:
    captions, order = Captions(sources), source_order(len(sources), seed)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for i in range(n_pairs):
            if i in leave_out:
                continue
            source = int(order[i % len(order)])
            rng = np.random.default_rng([seed, i, 1])
            category = sources[source].category
            row = {
                "id": f"p{i:06d}",
                "text": captions.caption(source, category, rng),
                "image_path": image_path(i),
                "label": category,
                "split": "train" if rng.random() < 0.8 else "test",
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fglab-scale/collection"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None,
                        help="data sets folder (default: $FGLAB_DATA, then ../shared/data)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    manifest, report = generate(args.out, args.pairs, args.seed, args.data_root,
                                args.processes)
    speed = report.images_per_second
    print(f"{manifest}: {report.pairs} pairs from {report.sources} sources "
          f"({report.skipped_sources} skipped); {report.written} images written in "
          f"{report.seconds:.1f} s" + (f" ({speed:.0f} images/s)" if speed else "")
          + (f"; {len(report.failed)} failed" if report.failed else ""))


if __name__ == "__main__":
    main()
