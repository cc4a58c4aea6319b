"""Recipe candidates and the plain loop over several seeds: means, not single runs.

One run of a 10-epoch fine-tune on 160 images moves by up to ~3 points with the seed, which is as
large as the differences between good recipes. This script runs each candidate (and, with
``--plain``, the plain PyTorch loop of plain_loop.py) on the same few-shot folders for every seed
and prints mean accuracy, the spread, and mean seconds. Seeds change the few-shot sample, the
initial head and the augmentation draws alike.

    python benchmarks/recipe_seeds.py --data materials --seeds 0 1 2            # tuning set
    python benchmarks/recipe_seeds.py --data course shapes digits --seeds 0 1 2 --plain --only default
    python benchmarks/recipe_seeds.py --data materials --plain --only                # the plain loop alone
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import few_shot_folder  # noqa: E402
from plain_loop import plain_finetune  # noqa: E402

from tlkit.recipes import Recipe, finetune  # noqa: E402

# Each candidate is Recipe.default() with these fields changed. The default has changed twice on
# 2026-12-02 (see benchmarks/README.md): first to training the last 6 parts at lr_mult 0.7, then to
# crops without horizontal flips. Candidates measured before the second change keep their flips
# (FLIPS), so that their names and numbers still mean what the README's tables say.
FLIPS = dict(augment="crop,flip")
OLD_DEFAULT = dict(FLIPS, freeze="none", lr_mult=0.5)
CANDIDATES = {
    "default": {},
    "with flips (crop,flip)": FLIPS,
    "no per-epoch val": dict(FLIPS, val_each_epoch=False),
    "last:7 (stem frozen)": dict(FLIPS, freeze="last:7"),
    "all parts (nothing frozen)": dict(FLIPS, freeze="none"),
    "all parts, no per-epoch val": dict(FLIPS, freeze="none", val_each_epoch=False),
    "old default (all parts, lr_mult 0.5)": OLD_DEFAULT,
    "old default, no per-epoch val": dict(OLD_DEFAULT, val_each_epoch=False),
    "old default, milder crop (strength 0.5), no per-epoch val": dict(OLD_DEFAULT, augment_strength=0.5,
                                                                      val_each_epoch=False),
    "old default, lr 1e-3, lr_mult 0.8, no per-epoch val": dict(OLD_DEFAULT, lr=1e-3, lr_mult=0.8,
                                                                val_each_epoch=False),
    # At lr_mult 0.5 the stem and blocks 0-2 get at most 1/32 of the head's LR: freezing them skips
    # their backward pass, the costliest one at 128 px (largest feature maps).
    "last:5, lr_mult 0.5": dict(FLIPS, freeze="last:5", lr_mult=0.5),
    # BatchNorm learning (batch statistics in training, running statistics updated), as in the plain loop.
    "BN learning": dict(FLIPS, freeze_bn=False),
    "all parts, BN learning": dict(FLIPS, freeze="none", freeze_bn=False),
    # The default ran in half the plain loop's time: ways to spend some of that time, or to gain.
    "144 px": dict(FLIPS, image_size=144),
    "160 px": dict(FLIPS, image_size=160),
    "no label smoothing": dict(FLIPS, label_smoothing=0.0),
    "lr 3e-3": dict(FLIPS, lr=3e-3),
    "last:7, x0.8 per part, no label smoothing": dict(FLIPS, freeze="last:7", lr_mult=0.8, label_smoothing=0.0),
    "milder crop (strength 0.5)": dict(FLIPS, augment_strength=0.5),
    "crop only (no flip)": dict(augment="crop"),  # the default since the second change
    "milder crop only (strength 0.5, no flip)": dict(augment="crop", augment_strength=0.5),
    "no augmentation": dict(augment="none"),
    "crop only, 144 px": dict(augment="crop", image_size=144),
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
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all; none with --plain: the plain loop alone)")
    parser.add_argument("--plain", action="store_true", help="also run the plain PyTorch loop")
    parser.add_argument("--plain-without-flip", action="store_true",
                        help="also run the plain loop without its horizontal flips (not the baseline: it "
                             "separates the augmentation choice from the rest of the recipe)")
    args = parser.parse_args(argv)
    names = list(CANDIDATES) if args.only is None else args.only  # "--only" alone: the plain loop only
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:  # fail now, not after an hour of runs
        parser.error(f"unknown candidate(s) {unknown}; choose from {list(CANDIDATES)}")
    with contextlib.redirect_stdout(sys.stderr):  # training reports go to stderr: stdout holds only the JSON
        report = measure(args, names)
    print(json.dumps({"per_class": args.per_class, "epochs": args.epochs, "seeds": args.seeds, "results": report}))
    for data, rows in report.items():
        print(f"\n{data}", file=sys.stderr)
        for name, s in rows.items():
            print(f"  {name:<48} {s['mean_accuracy']:.3f} ± {s['sd']:.3f}  {s['mean_seconds']:6.1f} s", file=sys.stderr)
    return 0


def measure(args, names: list[str]) -> dict:
    report = {}
    for data in args.data:
        plains = {"plain loop": True} if args.plain else {}
        if args.plain_without_flip:
            plains["plain loop without flip"] = False
        runs: dict[str, list[dict]] = {n: [] for n in list(plains) + names}
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                folder = few_shot_folder(data, args.per_class, tmp, seed=seed)
                for plain, flip in plains.items():
                    r = plain_finetune(folder, epochs=args.epochs, image_size=128, seed=seed, flip=flip)
                    runs[plain].append({"seed": seed, "accuracy": round(r["accuracy"], 4), "seconds": r["seconds"]})
                    print(json.dumps({"data": data, "candidate": plain, **runs[plain][-1]}),
                          file=sys.stderr, flush=True)
                for name in names:
                    recipe = Recipe.default().updated(epochs=args.epochs, seed=seed, **CANDIDATES[name])
                    r = finetune(folder, recipe, progress=False)
                    runs[name].append({"seed": seed, "accuracy": round(r["accuracy"], 4), "seconds": r["seconds"]})
                    print(json.dumps({"data": data, "candidate": name, **runs[name][-1]}), file=sys.stderr,
                          flush=True)
        report[data] = {name: summary(r) for name, r in runs.items()}
    return report


if __name__ == "__main__":
    sys.exit(main())
