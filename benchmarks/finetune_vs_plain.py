"""Does `tlkit finetune`'s default recipe beat a plain PyTorch loop on data it was not tuned on?

For each held-out course data variant (20 training images per class, written as an ImageFolder):
the plain loop (benchmarks/plain_loop.py: AdamW 1e-3, one-cycle, RandomResizedCrop+flip, whole
network) and tlkit's default recipe, both 10 epochs, same backbone, image size and seed.
Prints one JSON object with accuracy and seconds for each and their ratios.

    python benchmarks/finetune_vs_plain.py [--data NAME ...] [--epochs 10] [--per-class 20]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import few_shot_folder  # noqa: E402
from plain_loop import plain_finetune  # noqa: E402

from tlkit.recipes import Recipe, finetune  # noqa: E402


def compare(name: str, epochs: int, per_class: int, seed: int) -> dict:
    recipe = Recipe.default().updated(epochs=epochs, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = few_shot_folder(name, per_class, tmp, seed=seed)
        plain = plain_finetune(folder, epochs=epochs, image_size=recipe.image_size, seed=seed)
        ours = finetune(folder, recipe, progress=False)
    return {
        "data": name,
        "plain": {"accuracy": round(plain["accuracy"], 4), "seconds": plain["seconds"]},
        "tlkit": {"accuracy": round(ours["accuracy"], 4), "seconds": ours["seconds"]},
        "accuracy_gain": round(ours["accuracy"] - plain["accuracy"], 4),
        "time_ratio": round(ours["seconds"] / plain["seconds"], 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="*", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from tlkit.data import list_course_data

    names = args.data or list(list_course_data())[1:]  # the first variant is the tuning set
    rows = []
    for name in names:
        rows.append(compare(name, args.epochs, args.per_class, args.seed))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"epochs": args.epochs, "per_class": args.per_class, "threads": torch.get_num_threads(),
                      "results": rows,
                      "tlkit_wins_all": all(r["accuracy_gain"] >= 0 and r["time_ratio"] <= 1.0 for r in rows)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
