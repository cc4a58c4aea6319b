"""When does a label-preserving augmentation measurably help? The experiment behind lesson 06.

Fine-tunes EfficientNet-Lite0 (every layer except BatchNorm, as in lesson 06) on ``k`` images per
class of the ``course`` data with and without augmentation, over several seeds, and prints the
accuracy of each run and the gain of each augmentation over none, seed by seed. Besides the held-out
images as they are, it can score them shifted: zoomed in (``--zooms 1.5``: the centre 1/1.5 of each
side, resized back, as if the camera were closer) or out of focus (``--shifts blur2``: a Gaussian
blur with sigma 2 px on the stored 144-px images).

Honest by construction: settings are chosen on the validation split (``--split val``, the
default); the test split is scored only to confirm a setting chosen that way (``--split test``,
or ``--score-splits val test`` to record both from the same runs without looking at test first).
A seed sets both the few-shot subset (``tl.few_shot(..., seed=seed)``) and the training order.
Every augmentation gets the same budget (images, epochs, learning rate) as "none".

    python benchmarks/augmentation_check.py --per-class 5 --epochs 20 --augment none crop crop+vflip+color
    python benchmarks/augmentation_check.py --per-class 20 --epochs 8 --zooms 1 1.5 1.75
    python benchmarks/augmentation_check.py --per-class 20 --epochs 8 --augment none crop+vflip+color+blur \
        --shifts none blur1 blur2 blur3 --score-splits val

Results so far: ``benchmarks/README.md`` (lesson 06 section). Each fine-tune at 20 images per class
x 8 epochs is the cost of one of lesson 06's (about 20 s on an idle 2-core CPU; the recorded runs
shared an overloaded machine and took 2-9 minutes each, so their seconds mean nothing).
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

import tlkit as tl

SETTINGS = {"none": "none", "crop": ["crop"], "crop+vflip": ["crop", "vflip"],
            "crop+vflip+color": ["crop", "vflip", "color"], "crop+hflip+color": ["crop", "flip", "color"],
            "crop+vflip+color+blur": ["crop", "vflip", "color", "blur"],
            "crop+hflip+color+blur": ["crop", "flip", "color", "blur"]}


def zoomed(images: torch.Tensor, zoom: float) -> torch.Tensor:
    """The same pictures taken from closer: the centre 1/zoom of each side, resized back."""
    if zoom == 1:
        return images
    side = images.shape[-1]
    crop = TF.center_crop(images, [round(side / zoom)] * 2)
    return TF.resize(crop, [side, side], antialias=True)


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """The same pictures out of focus: a Gaussian blur of ``sigma`` pixels (at the stored 144 px)."""
    k = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(images, kernel_size=[k, k], sigma=[sigma, sigma])


def shifted(images: torch.Tensor, shift: str) -> torch.Tensor:
    """``"zoom1.5"`` or ``"blur1.5"``: one of the two shifts above; ``"none"``: the images as they are."""
    if shift == "none":
        return images
    kind, amount = shift[:4], float(shift[4:])
    return zoomed(images, amount) if kind == "zoom" else blurred(images, amount)


def finetune_score(data, split, k: int, augment, strength: float, epochs: int, lr: float,
                   size: int, seed: int, zooms=(1.0,), shifts=(), splits=()) -> dict:
    cfg = tl.load_pretrained("efficientnet_lite0").tlkit_config
    train = tl.few_shot(data.train, k, seed=seed)
    held = getattr(data, split)
    tl.seed_everything(seed)
    model = tl.load_pretrained("efficientnet_lite0", num_classes=len(data.classes), classes=data.classes)
    tl.unfreeze(model)
    tl.freeze_batchnorm(model)
    start = time.perf_counter()
    tl.fit(model, train.with_transform(tl.train_transforms(cfg, size, augment=augment, strength=strength)),
           None, epochs=epochs, lr=lr, label_smoothing=0.1, weight_decay=0.02, restore_best=False,
           progress=False, verbose=False, seed=seed)
    seconds = time.perf_counter() - start
    arrows = [data.classes.index("arrow_left"), data.classes.index("arrow_right")]
    out = {"seconds": seconds}
    for zoom in zooms:
        held_out = tl.ImageDataset(zoomed(held.images, zoom), held.labels, data.classes,
                                   transform=tl.eval_transforms(cfg, size))
        report = tl.evaluate(model, held_out)
        tag = "" if zoom == 1 else f"@zoom{zoom:g}"
        out["acc" + tag] = report.accuracy
        out["arrows" + tag] = float(np.mean([report.per_class[c]["recall"] for c in arrows]))
    for split_name in splits:
        held = getattr(data, split_name)
        for shift in shifts:
            report = tl.evaluate(model, tl.ImageDataset(shifted(held.images, shift), held.labels, data.classes,
                                                        transform=tl.eval_transforms(cfg, size)))
            out[f"{split_name}:{shift}"] = report.accuracy
            out[f"{split_name}:{shift}:arrows"] = float(np.mean([report.per_class[c]["recall"] for c in arrows]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--augment", nargs="+", default=["none", "crop+vflip+color", "crop+hflip+color"],
                        choices=sorted(SETTINGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--zooms", type=float, nargs="+", default=[1.0],
                        help="also score on the held-out images zoomed in by these factors (1: as they are)")
    parser.add_argument("--shifts", nargs="+", default=[],
                        help='more scores, e.g. none blur1.5 zoom1.5, on each split in --score-splits')
    parser.add_argument("--score-splits", nargs="+", default=[], choices=["val", "test"],
                        help="splits scored with --shifts (choose on val; test only confirms the choice)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = tl.course_data()
    results: dict[str, list[dict]] = {}
    for seed in args.seeds:
        for name in args.augment:
            r = finetune_score(data, args.split, args.per_class, SETTINGS[name], args.strength, args.epochs,
                               args.lr, args.size, seed, tuple(args.zooms),
                               tuple(args.shifts), tuple(args.score_splits))
            results.setdefault(name, []).append(r)
            print(json.dumps({"k": args.per_class, "epochs": args.epochs, "strength": args.strength,
                              "lr": args.lr, "size": args.size, "split": args.split, "seed": seed,
                              "augment": name, **{key: round(v, 4) for key, v in r.items()}}), flush=True)
    print(f"\n{args.split} accuracy, k={args.per_class}, {args.epochs} epochs, strength {args.strength}, "
          f"seeds {args.seeds}")
    base = results.get("none")
    for zoom in args.zooms:
        tag = "" if zoom == 1 else f"@zoom{zoom:g}"
        print(f" images zoomed in x{zoom:g}" if zoom != 1 else " images as they are")
        for name, runs in results.items():
            accs = " ".join(f"{r['acc' + tag]:.3f}" for r in runs)
            gains = (" gain " + " ".join(f"{100 * (r['acc' + tag] - b['acc' + tag]):+.1f}"
                                         for r, b in zip(runs, base)) if base and name != "none" else "")
            arrows = " ".join(f"{r['arrows' + tag]:.2f}" for r in runs)
            print(f"  {name:<18} {accs}{gains}   arrows {arrows}")
    for split_name in args.score_splits:
        for shift in args.shifts:
            key = f"{split_name}:{shift}"
            print(f" {split_name}, shift {shift}")
            for name, runs in results.items():
                accs = " ".join(f"{r[key]:.3f}" for r in runs)
                gains = (" gain " + " ".join(f"{100 * (r[key] - b[key]):+.1f}" for r, b in zip(runs, base))
                         if base and name != "none" else "")
                arrows = " ".join(f"{r[key + ':arrows']:.2f}" for r in runs)
                print(f"  {name:<22} {accs}{gains}   arrows {arrows}")


if __name__ == "__main__":
    main()
