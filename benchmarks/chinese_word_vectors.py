"""Which Chinese word vectors serve retrieval better: Word2Vec or PPMI + SVD (and random).

On chinese-news train only (validation parts of 20%, seeds 0..N-1), vectors are learned from
the fit part's texts over its tf-idf vocabulary, then measured two ways:

- text->text MAP@all: each validation text (tf-idf weighted mean of its word vectors) queries
  the fit texts; relevant = same category;
- kNN purity: each word's category is where its tf-idf mass is largest; the share of its 10
  nearest words (cosine) with the same category, averaged over words.

    python benchmarks/chinese_word_vectors.py [--seeds 3] [--out results/chinese_vectors.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.preprocessing import normalize

from fglab.data.splits import validation_split
from fglab.data.tokenize import make_tokenizer
from fglab.data.wikipedia import load_dataset
from fglab.features.chinese_vectors import train_chinese_word_vectors
from fglab.features.text import TfidfTextFeatures
from fglab.io import atomic_write_text
from fglab.metrics import mean_average_precision

METHODS = ("word2vec", "ppmi-svd", "random")


def knn_purity(vectors: np.ndarray, word_labels: np.ndarray, k: int = 10) -> float:
    keep = vectors.any(axis=1)
    unit = normalize(vectors[keep])
    labels = word_labels[keep]
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    neighbours = np.argpartition(-sims, k, axis=1)[:, :k]
    return float((labels[neighbours] == labels[:, None]).mean())


def evaluate(method: str, tokens, labels, seed: int) -> dict[str, float]:
    fit_rows, val_rows = validation_split(labels, seed)
    tfidf = TfidfTextFeatures(lambda words: words, min_df=3).fit([tokens[i] for i in fit_rows])
    fit_x = tfidf.transform([tokens[i] for i in fit_rows])
    val_x = tfidf.transform([tokens[i] for i in val_rows])
    start = time.perf_counter()
    if method == "random":
        vectors = np.random.default_rng(seed).normal(size=(len(tfidf.vocabulary_), 50))
    else:
        vectors = train_chinese_word_vectors(
            [tokens[i] for i in fit_rows], tfidf.vocabulary_, seed, method=method
        )
    seconds = time.perf_counter() - start
    unit = normalize(vectors)
    gallery, queries = normalize(fit_x @ unit), normalize(val_x @ unit)
    text_map = mean_average_precision(queries @ gallery.T, labels[val_rows], labels[fit_rows])
    n_classes = labels.max() + 1
    mass = np.vstack(
        [np.asarray(fit_x[labels[fit_rows] == c].sum(axis=0)).ravel() for c in range(n_classes)]
    )
    purity = knn_purity(vectors, mass.argmax(axis=0))
    return {"text_map": float(text_map), "knn_purity": purity, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/chinese_vectors.json"))
    args = parser.parse_args()
    dataset = load_dataset("chinese-news", args.data_root)
    tokenizer = make_tokenizer(dataset.language, dataset.stopwords)
    tokens = [tokenizer(text) for text in dataset.train.texts]
    labels = dataset.train.labels
    results = {}
    print(f"{'method':<10}{'text->text MAP':>18}{'kNN purity':>16}{'seconds':>9}")
    for method in METHODS:
        runs = [evaluate(method, tokens, labels, seed) for seed in range(args.seeds)]
        summary = {
            key: {
                "mean": float(np.mean([r[key] for r in runs])),
                "std": float(np.std([r[key] for r in runs])),
            }
            for key in runs[0]
        }
        results[method] = summary
        print(
            f"{method:<10}{summary['text_map']['mean']:>11.3f} ± {summary['text_map']['std']:.3f}"
            f"{summary['knn_purity']['mean']:>9.3f} ± {summary['knn_purity']['std']:.3f}"
            f"{summary['seconds']['mean']:>9.1f}",
            flush=True,
        )
    atomic_write_text(args.out, json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
