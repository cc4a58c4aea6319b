"""Does the linear probe (``tl.rank_backbones``) pick the backbone that fine-tunes best? (issue 17)

For each data set and seed: the same few-shot folder (``per_class`` training and 10 validation images
per class, the full test split; ``_common.few_shot_folder``), then
- the probe: ``tl.rank_backbones`` on the training images at the fine-tuning size (128 px), scored by
  5-fold cross-validated accuracy of a linear probe on each backbone's frozen features;
- the fine-tune: ``tlkit finetune``'s default recipe (``Recipe.default()``, the run's seed) with each
  backbone, scored on the test split;
- the agreement: Kendall's tau between the probe's scores and the fine-tuned accuracies (1: the same
  order, -1: the reverse; with 3 backbones it is one of -1, -1/3, 1/3, 1), and whether the probe's
  first choice is the fine-tune's best.

    python benchmarks/backbone_probe.py                                 # course shapes digits, seeds 0 1 2
    python benchmarks/backbone_probe.py --data shapes --seeds 0 1 2     # one data set (as in the README)
    python benchmarks/backbone_probe.py --data course --seeds 0 --per-class 10

Prints one JSON object (every run, and per data set the mean tau and how often the first choice was
right). The table is in ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _common import digits_splits, few_shot_folder  # noqa: E402

import tlkit as tl  # noqa: E402
from tlkit.recipes import Recipe, finetune  # noqa: E402

BACKBONES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-a: (concordant - discordant pairs) / all pairs; a tie in either list counts as neither."""
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1, len(a))]
    sign = [((a[i] > a[j]) - (a[i] < a[j])) * ((b[i] > b[j]) - (b[i] < b[j])) for i, j in pairs]
    return sum(sign) / len(pairs)


def probe_data(name: str, per_class: int, seed: int):
    """The training images the fine-tune gets, in memory (the same draw as ``few_shot_folder``)."""
    full = digits_splits(seed) if name == "digits" else tl.course_data(name, seed=seed)
    return tl.few_shot(full.train, per_class, seed=seed)


def measure(data: str, seed: int, per_class: int) -> dict:
    started = time.perf_counter()
    probe = tl.rank_backbones(BACKBONES, probe_data(data, per_class, seed), image_size=128, seed=seed,
                              repeats=5, progress=False)
    probe_seconds = time.perf_counter() - started
    scores = {row["name"]: row for row in probe}
    tuned = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = few_shot_folder(data, per_class, tmp, seed=seed)
        for name in BACKBONES:
            with contextlib.redirect_stdout(sys.stderr):
                result = finetune(folder, Recipe.default().updated(model=name, seed=seed), progress=False)
            tuned[name] = {"accuracy": round(result["accuracy"], 4), "seconds": round(result["seconds"], 1)}
            print(f"{data} seed {seed} {name}: probe {scores[name]['probe_acc']:.3f}, "
                  f"fine-tuned {tuned[name]['accuracy']:.3f}", file=sys.stderr, flush=True)
    probe_order = [scores[n]["probe_acc"] for n in BACKBONES]
    tuned_order = [tuned[n]["accuracy"] for n in BACKBONES]
    best_tuned = max(tuned_order)
    return {"data": data, "seed": seed,
            "backbones": {n: {"probe_acc": round(scores[n]["probe_acc"], 4), "probe_sd": round(scores[n]["probe_sd"], 4),
                              "params_m": round(scores[n]["params_m"], 2),
                              "ms_per_image": round(scores[n]["ms_per_image"], 1), **tuned[n]} for n in BACKBONES},
            "probe_seconds": round(probe_seconds, 1),
            "kendall_tau": round(kendall_tau(probe_order, tuned_order), 3),
            "probe_first_is_best": tuned[probe[0]["name"]]["accuracy"] == best_tuned}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["course", "shapes", "digits"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args()
    runs = [measure(data, seed, args.per_class) for data in args.data for seed in args.seeds]
    summary = {}
    for data in args.data:
        mine = [r for r in runs if r["data"] == data]
        summary[data] = {"mean_kendall_tau": round(statistics.mean(r["kendall_tau"] for r in mine), 3),
                         "probe_first_is_best": f"{sum(r['probe_first_is_best'] for r in mine)}/{len(mine)}",
                         **{n: {"probe_acc_mean": round(statistics.mean(r["backbones"][n]["probe_acc"] for r in mine), 4),
                                "accuracy_mean": round(statistics.mean(r["backbones"][n]["accuracy"] for r in mine), 4),
                                "accuracy_sd": round(statistics.pstdev(r["backbones"][n]["accuracy"] for r in mine), 4),
                                "finetune_seconds_mean": round(statistics.mean(r["backbones"][n]["seconds"] for r in mine), 1)}
                            for n in BACKBONES}}
    print(json.dumps({"backbones": BACKBONES, "per_class": args.per_class, "seeds": args.seeds,
                      "summary": summary, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
