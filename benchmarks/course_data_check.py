"""Is the course data set fit for the lessons? Measures the two claims it was designed for.

1. With 20 labelled images per class, pretrained features beat training from scratch by far:
   a linear probe on frozen EfficientNet-Lite0 features vs the same network trained from random
   weights (tlkit.fit, 15 epochs, crop+flip augmentation).
2. Some augmentations help and others hurt: linear probes on features of augmented copies of the
   training images, with and without horizontal flips (which turn left arrows into right arrows).

    python benchmarks/course_data_check.py [--data course] [--per-class 20] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch.utils.data import ConcatDataset

import tlkit as tl


def probe_accuracy(train_feats, test_feats) -> float:
    """Logistic regression on frozen features: the standard 'linear probe'."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, C=1.0)
    clf.fit(train_feats.tensors[0].numpy(), train_feats.tensors[1].numpy())
    return float(clf.score(test_feats.tensors[0].numpy(), test_feats.tensors[1].numpy()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="course")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--scratch-epochs", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tl.seed_everything(0)
    t0 = time.perf_counter()
    data = tl.course_data(args.data)
    gen_seconds = time.perf_counter() - t0
    train = tl.few_shot(data.train, args.per_class, seed=0)
    model = tl.load_pretrained("efficientnet_lite0", num_classes=len(data.classes))
    cfg = model.tlkit_config
    eval_tf = tl.eval_transforms(cfg, 128)
    test_feats = tl.extract_features(model, data.test.with_transform(eval_tf))
    result = {"data": args.data, "per_class": args.per_class, "classes": data.classes,
              "generate_or_load_seconds": round(gen_seconds, 2)}

    # 1. pretrained linear probe vs from scratch
    result["pretrained_probe"] = probe_accuracy(tl.extract_features(model, train.with_transform(eval_tf)),
                                                test_feats)
    scratch = tl.load_pretrained("efficientnet_lite0", num_classes=len(data.classes), pretrained=False)
    tl.fit(scratch, train.with_transform(tl.train_transforms(cfg, 128)), data.val.with_transform(eval_tf),
           epochs=args.scratch_epochs, lr=3e-3, progress=False, verbose=False, seed=0)
    result["scratch"] = tl.evaluate(scratch, data.test.with_transform(eval_tf)).accuracy

    # 2. augmentation: probes on 4 augmented copies of each training image
    for name, augment in {"none": "none", "crop": ["crop"], "crop+flip": ["crop", "flip"],
                          "crop+color": ["crop", "color"], "crop+vflip": ["crop", "vflip"]}.items():
        tl.seed_everything(0)
        tf = tl.train_transforms(cfg, 128, augment=augment)
        copies = ConcatDataset([train.with_transform(tf)] * (1 if augment == "none" else 4))
        result[f"probe_aug_{name}"] = probe_accuracy(tl.extract_features(model, copies), test_feats)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
