"""Is a course data set fit for the lessons? Measures what it was designed for, and prints the numbers.

1. Generation: seconds to build it from scratch (no cache) and to load it from the cache.
2. Pretrained vs scratch, with 20 labelled images per class: a linear probe (logistic regression)
   on frozen EfficientNet-Lite0 features vs the same network trained from random weights
   (tlkit.fit, crop+flip augmentation). The claim: pretrained wins by >= 25 accuracy points, and the
   probe is well below 100 % (room for the later lessons to improve on it).
3. Augmentations help or hurt: short fine-tunes of the pretrained network with different
   augmentations. On the ``course`` set a horizontal flip turns a left arrow into a right arrow, so
   "flip" should cost accuracy on the arrow classes, while crops help and a vertical flip is harmless.

    python benchmarks/course_data_check.py [--data course] [--per-class 20] [--json]

Took 20 minutes on a shared 2-core CPU (another job was running beside it), mostly in the
from-scratch run and the five fine-tunes; use --augment crop,crop+flip to shorten it.
Every run is seeded, but CPU thread scheduling still moves a fine-tune by a few points between runs
(crop+flip gave 0.85 in one run and 0.89 in another); only one seed has been measured.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

import tlkit as tl
from tlkit.data import course

AUGMENT_SETTINGS = {"none": "none", "crop": ["crop"], "crop+flip": ["crop", "flip"],
                    "crop+vflip": ["crop", "vflip"], "crop+color": ["crop", "color"]}


def probe_accuracy(model, train, test, cfg, image_size: int) -> float:
    """Logistic regression on frozen features: the standard 'linear probe'."""
    from sklearn.linear_model import LogisticRegression

    eval_tf = tl.eval_transforms(cfg, image_size)
    tr = tl.extract_features(model, train.with_transform(eval_tf)).tensors
    te = tl.extract_features(model, test.with_transform(eval_tf)).tensors
    clf = LogisticRegression(max_iter=3000).fit(tr[0].numpy(), tr[1].numpy())
    return float(clf.score(te[0].numpy(), te[1].numpy()))


def train_and_test(train, test, num_classes: int, augment, epochs: int, lr: float, image_size: int,
                   pretrained: bool = True) -> tuple[float, dict[str, float]]:
    """Train EfficientNet-Lite0 (all layers) and return test accuracy overall and per class."""
    model = tl.load_pretrained("efficientnet_lite0", num_classes=num_classes, pretrained=pretrained)
    cfg = model.tlkit_config
    tl.fit(model, train.with_transform(tl.train_transforms(cfg, image_size, augment=augment)), None,
           epochs=epochs, lr=lr, progress=False, verbose=False, seed=0)
    report = tl.evaluate(model, test.with_transform(tl.eval_transforms(cfg, image_size)))
    y_true, y_pred = report.y_true, report.y_pred
    per_class = {name: round(float((y_pred[y_true == c] == c).mean()), 3)
                 for c, name in enumerate(test.classes)}
    return round(float(report.accuracy), 3), per_class


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="course", choices=sorted(course.VARIANTS))
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--scratch-epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=6)
    parser.add_argument("--finetune-size", type=int, default=112, help="image size of the fine-tunes")
    parser.add_argument("--augment", default=",".join(AUGMENT_SETTINGS),
                        help="comma-separated subset of " + ",".join(AUGMENT_SETTINGS))
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()
    result: dict = {"data": args.data, "per_class": args.per_class}

    # 1. generation and cache
    t0 = time.perf_counter()
    course.generate(args.data)
    result["generate_seconds"] = round(time.perf_counter() - t0, 2)
    tl.course_data(args.data)  # makes sure the cache exists
    t0 = time.perf_counter()
    data = tl.course_data(args.data)
    result["cache_load_seconds"] = round(time.perf_counter() - t0, 2)
    result["classes"] = data.classes
    train = tl.few_shot(data.train, args.per_class, seed=0)
    n = len(data.classes)

    # 2. pretrained linear probe vs the same network from scratch
    model = tl.load_pretrained("efficientnet_lite0", num_classes=n)
    result["pretrained_probe"] = round(probe_accuracy(model, train, data.test, model.tlkit_config, 128), 3)
    result["scratch"], _ = train_and_test(train, data.test, n, ["crop", "flip"], args.scratch_epochs,
                                          3e-3, 128, pretrained=False)
    result["probe_minus_scratch_points"] = round(100 * (result["pretrained_probe"] - result["scratch"]), 1)

    # 3. augmentations: short fine-tunes of the pretrained network
    arrows = [c for c in data.classes if c.startswith("arrow")]
    for name in args.augment.split(","):
        acc, per_class = train_and_test(train, data.test, n, AUGMENT_SETTINGS[name], args.finetune_epochs,
                                        2e-3, args.finetune_size)
        result[f"finetune_{name}"] = acc
        if arrows:
            result[f"finetune_{name}_arrows"] = round(sum(per_class[a] for a in arrows) / len(arrows), 3)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
