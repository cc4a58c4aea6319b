"""Which fine-tuning recipe is best for small data on a 2-core CPU? Measure, keep the winner.

Runs candidate recipes (freeze plan, LR, resolution, label smoothing, augmentation) with 10 epochs
on the *tuning* data set only (a course data variant, 20 images per class), and prints test
accuracy and seconds for each. The winner becomes ``Recipe.default()``; ``finetune_vs_plain.py``
then checks it on data sets it was not tuned on.

    python benchmarks/recipe_search.py [--data NAME] [--per-class 20] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict

import torch

from tlkit.recipes import Recipe, finetune

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import few_shot_folder  # noqa: E402

CANDIDATES = {
    "all layers, lr 1e-3": dict(freeze="none", lr=1e-3, label_smoothing=0.0, lr_mult=1.0),
    "head only, lr 3e-3": dict(freeze="head", lr=3e-3),
    "last:3, lr 2e-3": dict(freeze="last:3", lr=2e-3),
    "gradual (default)": dict(),
    "gradual, no smoothing": dict(label_smoothing=0.0),
    "gradual, lr 1e-3": dict(lr=1e-3),
    "gradual, 96 px": dict(image_size=96),
    "gradual, 160 px": dict(image_size=160),
    "gradual, no augmentation": dict(augment="none"),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="course data variant used for tuning")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="run only these candidate names")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from tlkit.data import list_course_data

    name = args.data or list(list_course_data())[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = few_shot_folder(name, args.per_class, tmp)
        for label, changes in CANDIDATES.items():
            if args.only and label not in args.only:
                continue
            recipe = Recipe.default().updated(**changes)
            t = time.perf_counter()
            result = finetune(folder, recipe, progress=False)
            rows.append({"recipe": label, "accuracy": round(result["accuracy"], 4),
                         "seconds": round(time.perf_counter() - t, 1), "settings": asdict(recipe)})
            print(f"{label:<28} accuracy {result['accuracy']:.3f}  {rows[-1]['seconds']:6.1f} s",
                  file=sys.stderr, flush=True)
    report = {"data": name, "per_class": args.per_class, "threads": torch.get_num_threads(), "runs": rows}
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
