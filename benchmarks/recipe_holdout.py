"""Run a few recipe candidates on several course data variants (tlkit only, no plain loop).

A quicker companion to finetune_vs_plain.py when the plain loop's numbers for the same data,
seed and epochs are already known.

    python benchmarks/recipe_holdout.py --data course shapes
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import few_shot_folder  # noqa: E402

from tlkit.recipes import Recipe, finetune  # noqa: E402

CANDIDATES = {
    "all layers, lr 1e-3, discriminative 0.7, smoothing 0.1": dict(freeze="none", lr=1e-3, lr_mult=0.7),
    "all layers, lr 2e-3, discriminative 0.5, smoothing 0.1": dict(freeze="none", lr=2e-3, lr_mult=0.5),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["course", "shapes"])
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args(argv)
    rows = []
    for name in args.data:
        with tempfile.TemporaryDirectory() as tmp:
            folder = few_shot_folder(name, args.per_class, tmp)
            for label, changes in CANDIDATES.items():
                t = time.perf_counter()
                result = finetune(folder, Recipe.default().updated(**changes), progress=False)
                rows.append({"data": name, "recipe": label, "accuracy": round(result["accuracy"], 4),
                             "seconds": round(time.perf_counter() - t, 1)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
