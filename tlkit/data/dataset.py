"""The data set type every tlkit function accepts: small image sets kept decoded in memory.

Course data sets are small (hundreds to a few thousand images). Decoding a JPEG costs more than a
forward pass of a small network at 128 px on a laptop CPU, so tlkit decodes each image once and
keeps the pixels as one uint8 tensor (N, 3, H, W): 1,000 images at 144 px take 62 MB.
Transforms (augmentation, normalisation) run on those tensors at training time.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch.utils.data import Dataset


class DataError(ValueError):
    """Something is wrong with the user's data; the message says what and what to do."""


class ImageDataset(Dataset):
    """Images (uint8, N×3×H×W), labels (int64, N) and class names, plus an optional transform.

    ``ds[i]`` returns ``(transform(image), label)``; without a transform the image comes back as
    float in [0, 1]. ``sources[i]`` says where image i came from (a file path or a generator id),
    so that mistakes can be traced back to files.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str],
                 transform: Callable | None = None, sources: list[str] | None = None,
                 skipped: list[str] | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise DataError(f"images must be a uint8 tensor of shape (N, 3, H, W), got "
                            f"{images.dtype} {tuple(images.shape)}.")
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} labels.")
        self.images = images
        self.labels = labels.long()
        self.classes = list(classes)
        self.transform = transform
        self.sources = list(sources) if sources is not None else [f"#{i}" for i in range(len(images))]
        self.skipped = list(skipped or [])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i]
        x = self.transform(image) if self.transform is not None else image.float() / 255
        return x, int(self.labels[i])

    def with_transform(self, transform: Callable | None) -> "ImageDataset":
        """The same images (shared, not copied) with another transform."""
        return ImageDataset(self.images, self.labels, self.classes, transform, self.sources, self.skipped)

    def subset(self, indices) -> "ImageDataset":
        """A new data set with the images at ``indices`` (same classes and transform)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageDataset(self.images[idx], self.labels[idx], self.classes, self.transform,
                            [self.sources[i] for i in idx.tolist()])

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels.tolist())
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def __repr__(self) -> str:
        h, w = self.images.shape[2:] if len(self) else (0, 0)
        counts = ", ".join(f"{k}: {v}" for k, v in self.class_counts().items())
        return f"ImageDataset({len(self)} images of {h}×{w}, {len(self.classes)} classes — {counts})"


@dataclass
class DataSplits:
    """Train, validation and (optional) test sets that share one list of classes."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset | None
    classes: list[str]

    def with_transforms(self, train_transform: Callable | None,
                        eval_transform: Callable | None) -> "DataSplits":
        """Training augmentation for ``train``; the deterministic eval transform for val and test."""
        return replace(
            self, train=self.train.with_transform(train_transform),
            val=self.val.with_transform(eval_transform),
            test=self.test.with_transform(eval_transform) if self.test is not None else None)

    def __repr__(self) -> str:
        sizes = f"train {len(self.train)}, val {len(self.val)}"
        if self.test is not None:
            sizes += f", test {len(self.test)}"
        return f"DataSplits({len(self.classes)} classes: {', '.join(self.classes)}; {sizes})"
