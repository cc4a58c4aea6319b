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


def few_shot_folder(name: str, per_class: int, root: str | Path, seed: int = 0,
                    val_per_class: int = 10) -> Path:
    """A course data variant as a folder: ``per_class`` training and ``val_per_class`` validation
    images per class (a small data set has a small validation set too), and the full test split."""
    from tlkit.data import DataSplits, course_data, few_shot

    full = course_data(name, seed=seed)
    splits = DataSplits(train=few_shot(full.train, per_class, seed=seed),
                        val=few_shot(full.val, val_per_class, seed=seed), test=full.test,
                        classes=full.classes)
    return export_image_folder(splits, root)
