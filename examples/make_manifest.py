"""Turn the chinese-news data set into "your own collection": a folder of photos and texts
with two manifests, the way a news archive or a photo library would look.

    python examples/make_manifest.py --out collections/chinese-news [--data-root DIR]

writes into OUT (a copy of the files: a manifest's paths must stay inside its folder):

- ``images/<id>.<ext>`` and ``texts/<id>.txt``, one pair per data-set pair;
- ``labeled.csv``: ``id,text,image_path,label,split``, the text inline, the category as the
  label and the data set's own train/test split;
- ``unlabeled.jsonl``: ``{"id", "text_path", "image_path"}`` only, no label and no split (fglab
  makes a seeded 80/20 split and trains at pair level).

Pairs the data set skips (a missing image) are left out, as a loader of the data set would.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
from pathlib import Path

from tqdm import tqdm

from fglab.data.root import resolve_data_root
from fglab.data.wikipedia import load_dataset
from fglab.io import atomic_write_text


def write_collection(dataset_name: str, out: Path, data_root: Path | None = None) -> int:
    """Copy the pairs of both splits into ``out`` and write its two manifests; returns the
    number of pairs."""
    dataset = load_dataset(dataset_name, resolve_data_root(data_root))
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "texts").mkdir(exist_ok=True)
    table = io.StringIO()
    labeled = csv.writer(table, lineterminator="\n")
    labeled.writerow(["id", "text", "image_path", "label", "split"])
    unlabeled: list[str] = []
    pairs = [(name, row) for name in ("train", "test") for row in range(len(dataset.split(name)))]
    for split_name, row in tqdm(pairs, desc="copying pairs", unit="pair"):
        split = dataset.split(split_name)
        pair_id = f"{split_name}-{split.text_ids[row]}"
        source = split.image_paths[row]
        if source is None:
            continue
        image = Path("images") / f"{pair_id}{source.suffix.lower()}"
        text = Path("texts") / f"{pair_id}.txt"
        shutil.copyfile(source, out / image)
        (out / text).write_text(split.texts[row], encoding="utf-8")
        category = dataset.categories[split.labels[row]]
        labeled.writerow([pair_id, split.texts[row], image.as_posix(), category, split_name])
        record = {"id": pair_id, "text_path": text.as_posix(), "image_path": image.as_posix()}
        unlabeled.append(json.dumps(record, ensure_ascii=False))
    atomic_write_text(out / "labeled.csv", table.getvalue())
    atomic_write_text(out / "unlabeled.jsonl", "\n".join(unlabeled) + "\n")
    return len(unlabeled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="chinese-news")
    parser.add_argument("--out", type=Path, default=Path("collections/chinese-news"))
    parser.add_argument("--data-root", type=Path, default=None)
    args = parser.parse_args()
    n = write_collection(args.dataset, args.out, args.data_root)
    print(f"wrote {n} pairs to {args.out}: labeled.csv, unlabeled.jsonl")


if __name__ == "__main__":
    main()
