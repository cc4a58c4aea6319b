"""Recipe candidates and the plain loop over several seeds: means, not single runs.

One run of a 10-epoch fine-tune on 160 images moves by up to ~3 points with the seed, which is as
large as the differences between good recipes. This script runs each candidate (and, with
``--plain``, the plain PyTorch loop of plain_loop.py) on the same few-shot folders for every seed
and prints mean accuracy, the spread, and mean seconds. Seeds change the few-shot sample, the
initial head and the augmentation draws alike.

    python benchmarks/recipe_seeds.py --data materials --seeds 0 1 2            # tuning set
    python benchmarks/recipe_seeds.py --data course shapes --seeds 0 1 2 --plain --only default
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import few_shot_folder  # noqa: E402
from plain_loop import plain_finetune  # noqa: E402

from tlkit.recipes import Recipe, finetune  # noqa: E402

CANDIDATES = {
    "default": {},
    "lr_mult 0.7": dict(lr_mult=0.7),
    "lr_mult 0.7, no per-epoch val": dict(lr_mult=0.7, val_each_epoch=False),
    "no per-epoch val": dict(val_each_epoch=False),
    "milder crop (strength 0.5), no per-epoch val": dict(augment_strength=0.5, val_each_epoch=False),
    "lr 1e-3, lr_mult 0.8, no per-epoch val": dict(lr=1e-3, lr_mult=0.8, val_each_epoch=False),
}


def summary(runs: list[dict]) -> dict:
    acc = [r["accuracy"] for r in runs]
    return {"mean_accuracy": round(statistics.mean(acc), 4),
            "sd": round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
            "mean_seconds": round(statistics.mean(r["seconds"] for r in runs), 1),
            "runs": runs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["materials"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--plain", action="store_true", help="also run the plain PyTorch loop")
    args = parser.parse_args(argv)
    names = args.only or list(CANDIDATES)
    report = {}
    for data in args.data:
        runs: dict[str, list[dict]] = {n: [] for n in (["plain loop"] if args.plain else []) + names}
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                folder = few_shot_folder(data, args.per_class, tmp, seed=seed)
                if args.plain:
                    r = plain_finetune(folder, epochs=args.epochs, image_size=128, seed=seed)
                    runs["plain loop"].append({"seed": seed, "accuracy": round(r["accuracy"], 4),
                                               "seconds": r["seconds"]})
                    print(json.dumps({"data": data, "candidate": "plain loop", **runs["plain loop"][-1]}),
                          file=sys.stderr, flush=True)
                for name in names:
                    recipe = Recipe.default().updated(epochs=args.epochs, seed=seed, **CANDIDATES[name])
                    r = finetune(folder, recipe, progress=False)
                    runs[name].append({"seed": seed, "accuracy": round(r["accuracy"], 4), "seconds": r["seconds"]})
                    print(json.dumps({"data": data, "candidate": name, **runs[name][-1]}), file=sys.stderr,
                          flush=True)
        report[data] = {name: summary(r) for name, r in runs.items()}
    print(json.dumps({"per_class": args.per_class, "epochs": args.epochs, "seeds": args.seeds, "results": report}))
    for data, rows in report.items():
        print(f"\n{data}", file=sys.stderr)
        for name, s in rows.items():
            print(f"  {name:<48} {s['mean_accuracy']:.3f} ± {s['sd']:.3f}  {s['mean_seconds']:6.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
