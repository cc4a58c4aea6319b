"""Splitting data without leakage, and few-shot subsets (k images per class)."""
from __future__ import annotations

import torch

from .dataset import DataError, DataSplits, ImageDataset


def _per_class_indices(ds: ImageDataset, seed: int) -> list[torch.Tensor]:
    """For each class, its image indices in a seeded random order."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in range(len(ds.classes)):
        idx = torch.nonzero(ds.labels == c).flatten()
        out.append(idx[torch.randperm(len(idx), generator=g)])
    return out


def few_shot_indices(ds: ImageDataset, k: int, seed: int = 0) -> torch.Tensor:
    """The positions in ``ds`` of the images that ``few_shot(ds, k, seed)`` picks, in order.

    For features computed once for the whole set: ``features[few_shot_indices(data.train, 20, seed)]``
    are the features of ``few_shot(data.train, 20, seed)``, so each new draw costs no forward pass.
    """
    if k < 1:
        raise DataError(f"k must be >= 1, got {k}.")
    per_class = _per_class_indices(ds, seed)
    short = {ds.classes[c]: len(idx) for c, idx in enumerate(per_class) if len(idx) < k}
    if short:
        raise DataError(f"few_shot(k={k}): these classes have fewer than {k} images: {short}. "
                        f"Use k <= {min(len(i) for i in per_class)} or add images.")
    return torch.cat([idx[:k] for idx in per_class]).sort().values


def few_shot(ds: ImageDataset, k: int, seed: int = 0) -> ImageDataset:
    """``k`` images of every class, chosen at random (seeded): the few-shot training set."""
    return ds.subset(few_shot_indices(ds, k, seed))


def split(ds: ImageDataset, val: float = 0.2, test: float = 0.0, seed: int = 0) -> DataSplits:
    """Stratified train/val/test split: every class keeps its share in each part, no image twice."""
    if not (0 < val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(f"val={val} and test={test} must be fractions with val + test < 1.")
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    for c, idx in enumerate(_per_class_indices(ds, seed)):
        n_val = max(1, round(len(idx) * val))
        n_test = round(len(idx) * test) if test else 0
        if len(idx) - n_val - n_test < 1:
            raise DataError(f"Class {ds.classes[c]!r} has only {len(idx)} images: too few to split "
                            "into train/val(/test). Add images or lower val/test.")
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    sub = {k: ds.subset(torch.cat(v).sort().values) for k, v in parts.items()}
    return DataSplits(train=sub["train"], val=sub["val"], test=sub["test"] if test else None,
                      classes=list(ds.classes))
