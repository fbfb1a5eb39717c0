"""Which epochs fglab's validation chooses, and what a shorter patience or a siamese warm-up
would have chosen instead: the evidence behind ``training.patience`` and
``training.siamese_warmup``.

Every seed fits fglab as configured by default, but with the siamese teacher validated after
every epoch (no warm-up: the same network, the warm-up only skips validation passes) and one
network (further ensemble members do not change what the first one's model stage sees). Every
epoch draws its shuffle and dropout from (seed, stage, epoch), so a run with a shorter patience
is a prefix of this one: its choice is read off the recorded validation scores. Validation
split only; the test split is never read.

    python benchmarks/epoch_choice.py eng-wiki --seeds 0,1,2,3,4,5,6,7,8,9
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fglab.config import FGLabConfig
from fglab.data.root import resolve_data_root
from fglab.data.wikipedia import load_dataset
from fglab.features.views import build_features, default_image_view
from fglab.hardware import set_fit_threads
from fglab.io import atomic_write_text
from fglab.method import fit_method
from fglab.training.fglab_method import FGLabMethod
from fglab.training.loop import patience_spent


def chosen(scores: list[float], patience: int) -> tuple[int, float]:
    """The epoch (and its score) the loop keeps from ``scores`` with ``patience``."""
    best_epoch, best = -1, float("-inf")
    for epoch, score in enumerate(scores):
        if score > best:
            best_epoch, best = epoch, score
        if patience_spent(epoch, best_epoch, patience):
            break
    return best_epoch, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--patiences", default="2,3", help="shorter patiences to compare")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, resolve_data_root(args.data_root))
    train, _ = build_features(dataset, default_image_view(dataset), "text:tfidf")
    shorter = [int(p) for p in args.patiences.split(",")]
    set_fit_threads()  # torch's thread count: fit leaves it to its caller
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        config = FGLabConfig.from_dict(
            {"seed": seed, "training": {"siamese_warmup": 0, "ensemble": 1}}
        )
        method = FGLabMethod(config)
        fit_method(method, train, seed)
        siamese = [h["validation"] for h in method.stages_["siamese"].history]
        model = [h["validation"] for h in method.stages_["model"].history]
        row = {"seed": seed, "siamese": siamese, "model": model,
               "siamese_best": chosen(siamese, len(siamese))[0],
               "patience": {str(config.training.patience): chosen(model, config.training.patience)}}
        for patience in shorter:
            row["patience"][str(patience)] = chosen(model, patience)
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("seed", "siamese_best", "patience")}), flush=True)
    default = str(FGLabConfig().training.patience)
    patiences = [default, *map(str, shorter)]
    print(f"\n{args.dataset}: siamese epoch chosen (of {len(rows[0]['siamese'])}); model epoch "
          f"chosen (validation MAP) by patience")
    print("| seed | siamese epoch | " + " | ".join(f"patience {p}" for p in patiences) + " |")
    print("|---" * (2 + len(patiences)) + "|")
    for row in rows:
        cells = [f"{row['patience'][p][0]} ({row['patience'][p][1]:.4f})" for p in patiences]
        print(f"| {row['seed']} | {row['siamese_best']} | " + " | ".join(cells) + " |")
    for patience in patiences[1:]:
        changed = [r for r in rows if r["patience"][patience][0] != r["patience"][default][0]]
        lost = sum(r["patience"][default][1] - r["patience"][patience][1] for r in rows)
        print(f"patience {patience}: another epoch in {len(changed)} of {len(rows)} seeds, "
              f"validation MAP lower by {lost / len(rows):.4f} on average")
    print(f"siamese: earliest epoch chosen {min(r['siamese_best'] for r in rows)}")
    out = args.out or Path(f"results/bench/epoch_choice_{args.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({"dataset": args.dataset, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
