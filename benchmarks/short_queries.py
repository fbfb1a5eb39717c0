"""Short queries: how often a trained run finds a test text's own image from a few words.

People type a few words, not an article. For every test pair the query is the text's first
clause (split at the first clause punctuation, cut to at most 25 characters at a word or
character boundary; clauses shorter than 5 characters are joined with the next one), and the
gallery is all test images. Recall@1/5/10 and median rank of the partner image are reported
beside the same numbers for the full text, from the same run and the same images.

    python benchmarks/short_queries.py RUN [RUN ...] [--data-root D] [--out F.json]

RUN: a folder written by ``fglab train DATASET --pairs`` (or ``fglab reproduce ... --pairs``'s
saved runs); the data set and its test split come from the run.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from fglab.data.collection import load_training_collection
from fglab.io import atomic_write_text
from fglab.metrics import partner_ranks
from fglab.pipeline import RetrievalPipeline

#: Clause ends in Chinese and Latin text.
CLAUSE_END = re.compile(r"[，。！？；：、,.!?;:\n]")
SHORTEST, LONGEST = 5, 25
RECALL_AT = (1, 5, 10)


def short_query(text: str) -> str:
    """The first clause of ``text`` with at least SHORTEST characters (short clauses joined
    with the next), cut to at most LONGEST characters (at a space where the text has spaces)."""
    query = ""
    for clause in CLAUSE_END.split(text):
        query = f"{query} {clause.strip()}".strip() if query else clause.strip()
        if len(query) >= SHORTEST:
            break
    if len(query) > LONGEST:
        cut = query[:LONGEST]
        query = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return query


def recall_row(ranks: np.ndarray) -> dict:
    return {**{f"R@{k}": float(np.mean(ranks <= k)) for k in RECALL_AT},
            "median_rank": float(np.median(ranks))}


def measure(run_dir: Path, data_root: str | None) -> dict:
    pipeline = RetrievalPipeline.load(run_dir)
    dataset = load_training_collection(
        pipeline.dataset_name, data_root, test_ids=pipeline.test_ids, pairs=pipeline.pairs
    )
    test = dataset.test
    images, texts = pipeline.encode_split(test)
    queries = [short_query(t) for t in test.texts]
    short = pipeline.encode_texts(queries)
    lengths = np.array([len(q) for q in queries])
    return {
        "run": str(run_dir), "dataset": dataset.name, "method": pipeline.method_name,
        "text_view": pipeline.text_view, "image_view": pipeline.image_view,
        "n_test": len(test), "query_chars_median": float(np.median(lengths)),
        "examples": queries[:5],
        "full_text": recall_row(partner_ranks(texts @ images.T)),
        "short_query": recall_row(partner_ranks(short @ images.T)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = [measure(run, args.data_root) for run in args.runs]
    print("| run | method | text view | query | R@1 | R@5 | R@10 | median rank |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        for kind in ("full_text", "short_query"):
            r = row[kind]
            print(f"| {Path(row['run']).name} | {row['method']} | {row['text_view']} | "
                  f"{kind.replace('_', ' ')} | {r['R@1']:.3f} | {r['R@5']:.3f} | "
                  f"{r['R@10']:.3f} | {r['median_rank']:.0f} |")
    print(f"median query length: {rows[0]['query_chars_median']:.0f} characters; "
          f"e.g. {rows[0]['examples'][:3]}")
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(rows, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
