"""Transform presets built from the model's own preprocessing (``model.tlkit_config``).

Training: augmentation (random crops by default) → float → normalise with the weights' mean/std.
Evaluation: resize and centre-crop only, so that a prediction never depends on chance.
All transforms work on uint8 image tensors (C, H, W) with ``torchvision.transforms.v2``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from ..config import ModelConfig

# name -> factory(image_size, strength in [0, 1]) returning one transform
AUGMENTATIONS: dict[str, Callable[[int, float], Callable]] = {
    "crop": lambda size, s: T.RandomResizedCrop(size, scale=(1 - 0.75 * s, 1.0), antialias=True),
    "flip": lambda size, s: T.RandomHorizontalFlip(p=0.5 if s else 0.0),
    "vflip": lambda size, s: T.RandomVerticalFlip(p=0.5 if s else 0.0),
    "rotate": lambda size, s: T.RandomRotation(degrees=180 * s),
    "color": lambda size, s: T.ColorJitter(brightness=0.4 * s, contrast=0.4 * s, saturation=0.4 * s,
                                           hue=0.1 * s),
    "blur": lambda size, s: T.RandomApply([T.GaussianBlur(5, sigma=(0.1, 0.1 + 2.0 * s))], p=0.5),
    "erase": lambda size, s: T.RandomErasing(p=0.5 * s, scale=(0.02, 0.25)),
    "trivialaugment": lambda size, s: T.TrivialAugmentWide(),
    "randaugment": lambda size, s: T.RandAugment(num_ops=2, magnitude=max(1, round(15 * s))),
}
# No flips by default: a mirror image changes the label of arrows, digits, text (lesson 06); ask: "crop,flip".
DEFAULT_AUGMENT = ("crop",)
# Erasing works on float tensors, so it must come after the conversion.
_AFTER_FLOAT = {"erase"}


def augmentation_names(augment: str | list[str] | tuple[str, ...]) -> list[str]:
    """The augmentation names that ``augment`` asks for, checked against ``AUGMENTATIONS``.

    ``"default"`` is ``DEFAULT_AUGMENT``; ``"none"`` and ``[]`` are no augmentation; a string may
    join several names with commas (``"crop,flip"``, the form ``tlkit finetune --augment`` takes);
    a list or tuple gives the names one by one. An unknown name raises ``ValueError`` listing the choices.
    """
    if isinstance(augment, str):
        if augment in ("default", "none"):
            return list(DEFAULT_AUGMENT) if augment == "default" else []
        names = [n.strip() for n in augment.split(",") if n.strip()]
    else:
        names = list(augment)
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown or (isinstance(augment, str) and not names):
        raise ValueError(f"Unknown augmentation(s) {unknown or [augment]}: use 'default', 'none' or names "
                         f"joined by commas (e.g. crop,flip) or in a list, from {sorted(AUGMENTATIONS)}.")
    return names


def _interpolation(config: ModelConfig) -> InterpolationMode:
    return InterpolationMode.BICUBIC if config.interpolation == "bicubic" else InterpolationMode.BILINEAR


def _image_config(config: ModelConfig) -> ModelConfig:
    """``config``, after making sure it describes an image model."""
    if getattr(config, "modality", "image") != "image":
        raise ValueError(f"{config.name!r} is a {config.modality} model: it reads token ids, not pixels. "
                         "Use tl.text_transform(model) for its data.")
    return config


def _finish(config: ModelConfig) -> list:
    return [T.ToDtype(torch.float32, scale=True), T.Normalize(list(config.mean), list(config.std))]


def eval_transforms(config: ModelConfig, image_size: int | None = None) -> Callable:
    """Resize the short side to image_size·8/7, centre-crop image_size, normalise."""
    config = _image_config(config)
    size = image_size or config.input_size[0]
    return T.Compose([T.Resize(round(size * 8 / 7), interpolation=_interpolation(config), antialias=True),
                      T.CenterCrop(size)] + _finish(config))


def train_transforms(config: ModelConfig, image_size: int | None = None,
                     augment: str | list[str] | tuple[str, ...] = "default", strength: float = 1.0) -> Callable:
    """Augmentation for training, then the model's normalisation.

    ``augment``: ``"default"`` (``DEFAULT_AUGMENT``: a random resized crop, no flip), ``"crop,flip"``
    (add horizontal flips where a mirror image keeps its label), ``"none"`` (the eval transform), or
    other names from ``AUGMENTATIONS`` (see ``augmentation_names``). Without ``"crop"`` the image is
    resized and centre-cropped first, so that every output has the same size.
    """
    config = _image_config(config)
    size = image_size or config.input_size[0]
    names = augmentation_names(augment)
    if not names:
        return eval_transforms(config, size)
    steps: list = []
    if "crop" not in names:
        steps += [T.Resize(round(size * 8 / 7), interpolation=_interpolation(config), antialias=True),
                  T.CenterCrop(size)]
    steps += [AUGMENTATIONS[n](size, strength) for n in names if n not in _AFTER_FLOAT]
    steps += _finish(config)
    steps += [AUGMENTATIONS[n](size, strength) for n in names if n in _AFTER_FLOAT]
    return T.Compose(steps)


def mixup_cutmix(num_classes: int, alpha: float = 1.0) -> Callable:
    """A batch-level augmentation: each batch gets either MixUp or CutMix.

    Unlike the transforms above it works on a whole batch ``(images, labels)`` and returns soft
    labels (N, num_classes), so it goes inside the training loop, after the DataLoader::

        mix = mixup_cutmix(len(data.classes))
        for images, labels in loader:
            images, soft_labels = mix(images, labels)
            loss = F.cross_entropy(model(images), soft_labels)  # cross_entropy accepts soft labels
    """
    return T.RandomChoice([T.MixUp(num_classes=num_classes, alpha=alpha),
                           T.CutMix(num_classes=num_classes, alpha=alpha)])
