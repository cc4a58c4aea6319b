"""tlkit's default fine-tune vs a plain PyTorch loop, and the feature cache's speedup — one JSON object.

On the same data (a course data variant written as an image folder), model, epochs and seed:

- ``plain``: benchmarks/plain_loop.py (AdamW, one-cycle, RandomResizedCrop+flip, whole network);
- ``tlkit``: ``tlkit.recipes.finetune`` with the default recipe;
- ``cache``: one head-only epoch computed through the frozen body vs the same epoch on cached
  features (``tl.cached_features``), and the accuracy of a head trained each way (no augmentation).

Targets (issue 7): tlkit time ≤ 1.0× plain, tlkit accuracy ≥ plain, cache speedup ≥ 10×.

    python benchmarks/bench_finetune.py --json [--data course] [--epochs 10] [--per-class 20] [--seeds 0 1 2]

With several seeds, "plain" and "tlkit" are means over the seeds (each seed draws its own data and
few-shot sample; both loops get the same one) and "runs" lists each seed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import few_shot_folder  # noqa: E402
from plain_loop import plain_finetune  # noqa: E402

import tlkit as tl  # noqa: E402
from tlkit.recipes import Recipe, finetune  # noqa: E402


def cache_speedup(name: str, per_class: int, seed: int, image_size: int = 128, epochs: int = 5) -> dict:
    """Seconds per head-only epoch through the frozen body vs on cached features, and both accuracies."""
    data = tl.course_data(name, seed=seed)
    train = tl.few_shot(data.train, per_class, seed=seed)
    tl.seed_everything(seed)  # the new head's initial weights: the same whatever ran before
    model = tl.load_pretrained(num_classes=len(data.classes))
    tl.freeze(model)
    cfg = tl.get_config(model)
    eval_tf = tl.eval_transforms(cfg, image_size)
    train, test = train.with_transform(eval_tf), data.test.with_transform(eval_tf)
    head_start = {k: v.clone() for k, v in tl.get_head(model).state_dict().items()}

    tl.seed_everything(seed)
    slow = tl.fit(model, train, None, epochs=epochs, lr=1e-2, progress=False, verbose=False)
    slow_acc = tl.evaluate(model, test).accuracy
    slow_epoch = slow.total_seconds / epochs

    tl.get_head(model).load_state_dict(head_start)
    tl.clear_feature_cache()
    start = time.perf_counter()
    train_f = tl.cached_features(model, train)
    extract_seconds = time.perf_counter() - start
    test_f = tl.cached_features(model, test)
    tl.seed_everything(seed)
    fast = tl.fit(tl.get_head(model), train_f, None, epochs=epochs, lr=1e-2, progress=False, verbose=False)
    fast_acc = tl.evaluate(tl.get_head(model), test_f).accuracy
    fast_epoch = fast.total_seconds / epochs
    return {"epoch_seconds_through_body": round(slow_epoch, 3), "epoch_seconds_on_cache": round(fast_epoch, 4),
            "extract_seconds_once": round(extract_seconds, 2), "speedup": round(slow_epoch / fast_epoch, 1),
            "accuracy_through_body": round(slow_acc, 4), "accuracy_on_cache": round(fast_acc, 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON object on stdout")
    parser.add_argument("--data", default="course", help="a course data variant, or 'digits' (scikit-learn's)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one run of each per seed; the targets are judged on the means")
    args = parser.parse_args(argv)

    with contextlib.redirect_stdout(sys.stderr):  # training reports go to stderr: stdout holds only the JSON
        result = measure(args)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


def measure(args) -> dict:
    runs = []
    for seed in args.seeds:
        recipe = Recipe.default().updated(epochs=args.epochs, seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            folder = few_shot_folder(args.data, args.per_class, tmp, seed=seed)
            plain = plain_finetune(folder, epochs=args.epochs, image_size=recipe.image_size, seed=seed)
            ours = finetune(folder, recipe, progress=False)
        runs.append({"seed": seed,
                     "plain": {"accuracy": round(plain["accuracy"], 4), "seconds": round(plain["seconds"], 1)},
                     "tlkit": {"accuracy": round(ours["accuracy"], 4), "seconds": round(ours["seconds"], 1)}})
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    mean = {who: {key: round(statistics.mean(r[who][key] for r in runs), 4) for key in ("accuracy", "seconds")}
            for who in ("plain", "tlkit")}
    cache = cache_speedup("course" if args.data == "digits" else args.data, args.per_class, args.seeds[0],
                          recipe.image_size)
    result = {
        "data": args.data, "per_class": args.per_class, "epochs": args.epochs, "seeds": args.seeds,
        "device": str(tl.get_device()), "threads": torch.get_num_threads(),
        "plain": mean["plain"], "tlkit": mean["tlkit"],
        "time_ratio": round(mean["tlkit"]["seconds"] / mean["plain"]["seconds"], 3),
        "accuracy_gain": round(mean["tlkit"]["accuracy"] - mean["plain"]["accuracy"], 4),
        "runs": runs,
        "cache": cache,
    }
    result["targets_met"] = {"time": result["time_ratio"] <= 1.0, "accuracy": result["accuracy_gain"] >= 0,
                             "cache_speedup": cache["speedup"] >= 10}
    return result


if __name__ == "__main__":
    sys.exit(main())
