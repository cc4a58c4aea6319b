"""Helpers shared by the benchmark scripts (not part of the library)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def export_image_folder(splits, root: str | Path) -> Path:
    """Write a DataSplits to ``root/{train,val,test}/<class>/NNNN.png`` (ImageFolder layout).

    Benchmarks compare tlkit with a plain loop that reads files, the way a learner's own data
    arrives, so both start from the same folder.
    """
    root = Path(root)
    for split_name in ("train", "val", "test"):
        ds = getattr(splits, split_name, None)
        if ds is None:
            continue
        for i in range(len(ds)):
            folder = root / split_name / ds.classes[int(ds.labels[i])]
            folder.mkdir(parents=True, exist_ok=True)
            array = ds.images[i].permute(1, 2, 0).numpy().astype(np.uint8)
            Image.fromarray(array).save(folder / f"{i:04d}.png")
    return root


# Real data that a package ships, for held-out checks: never used to choose tlkit's defaults.
EXTERNAL = {"digits": "scikit-learn's handwritten digits (UCI): 1,797 8x8 grey images, 10 classes"}


def digits_splits(seed: int = 0, size: int = 32, test_per_class: int = 30):
    """scikit-learn's digits as DataSplits: upscaled to ``size`` px (bicubic), grey copied to RGB.

    A stratified random split (fixed by ``seed``): ``test_per_class`` per class for test, 30 for
    val, the rest for train. Orientation matters (6 vs 9) and strokes, not textures, carry the class:
    far from the photos the recipe was tuned on.
    """
    import torch
    from sklearn.datasets import load_digits

    from tlkit.data import DataSplits, ImageDataset

    digits = load_digits()
    grey = (digits.images / 16.0 * 255).astype(np.uint8)  # values 0..16
    big = np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.BICUBIC)) for g in grey])
    images = torch.from_numpy(np.repeat(big[:, None], 3, axis=1))  # N x 3 x H x W, uint8
    labels = torch.from_numpy(digits.target).long()
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == c))
        parts["test"] += idx[:test_per_class].tolist()
        parts["val"] += idx[test_per_class:test_per_class + 30].tolist()
        parts["train"] += idx[test_per_class + 30:].tolist()
    classes = [str(c) for c in range(10)]
    made = {k: ImageDataset(images[v].contiguous(), labels[v], classes) for k, v in parts.items()}
    return DataSplits(train=made["train"], val=made["val"], test=made["test"], classes=classes)


def few_shot_folder(name: str, per_class: int, root: str | Path, seed: int = 0,
                    val_per_class: int = 10) -> Path:
    """A data set as a folder: ``per_class`` training and ``val_per_class`` validation images per
    class (a small data set has a small validation set too), and the full test split.

    ``name``: a course data variant (``tl.list_course_data()``) or one of ``EXTERNAL``.
    """
    from tlkit.data import DataSplits, course_data, few_shot

    full = digits_splits(seed) if name == "digits" else course_data(name, seed=seed)
    splits = DataSplits(train=few_shot(full.train, per_class, seed=seed),
                        val=few_shot(full.val, val_per_class, seed=seed), test=full.test,
                        classes=full.classes)
    return export_image_folder(splits, root)
