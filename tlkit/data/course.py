"""The course data sets: procedural images made from the real photos scikit-image ships.

Why make data instead of downloading it: the course must run offline on any laptop, and a
generated set can be made *exactly* as hard as a lesson needs. Every image is built from
real photographs and textures (brick, grass, gravel, a cat's fur, coins, printed text, the moon,
...), so a network pretrained on ImageNet has something real to recognise, while a network
trained from scratch on 20 images per class has to learn texture from almost nothing.

Three variants (``list_course_data()``):
- ``course``: six materials plus arrows pointing left or right. Colours are scrambled, so colour is
  no shortcut. The arrows are there for two lessons. (1) Frozen ImageNet features barely tell a
  left arrow from a right one (those networks were trained with random horizontal flips, so their
  pooled features are nearly mirror-blind): a linear probe gets them about half right, while
  fine-tuning learns the difference. (2) A horizontal flip turns a left arrow into a right arrow,
  so ``"flip"`` is a label-breaking augmentation here, while a vertical flip is harmless.
- ``materials``: eight other surfaces, patches only (no orientation in the labels).
- ``shapes``: six symmetric shapes cut out of one photo and pasted onto another (flips and rotations
  keep every label: the control case where they are safe).

Measured (``benchmarks/course_data_check.py``, 20 training images per class, 2-core CPU): linear
probe on frozen EfficientNet-Lite0 features 73 % vs the same network from scratch 43 %; a 6-epoch
fine-tune 92 % with crops, 89 % with crops + horizontal flips (arrows 68 % -> 57 %), 93 % with
crops + vertical flips or colour jitter.

No leakage: each source photo is cut into three vertical bands; train patches come from the left
60 %, validation from the next 20 %, test from the last 20 %. Images are generated in a few seconds,
deterministically from the seed, and cached on disk.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..paths import data_dir
from .dataset import DataError, DataSplits, ImageDataset

STORE_SIZE = 144  # stored size: 128-px training crops have room to move
GENERATOR_VERSION = 1  # bump when the generator changes: old caches are then ignored
BANDS = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0)}
DEFAULT_PER_CLASS = {"train": 60, "val": 30, "test": 30}

VARIANTS = {
    "course": {
        "about": ("6 materials (brick, grass, gravel, fur, coins, text) + arrows pointing left/right: "
                  "pretrained >> scratch; horizontal flips break the arrow labels"),
        "classes": {"brick": "brick", "grass": "grass", "gravel": "gravel", "fur": "chelsea",
                    "coins": "coins", "text": "page", "arrow_left": "arrow_left", "arrow_right": "arrow_right"},
    },
    "materials": {
        "about": ("8 surfaces and photos (moon, cells, retina, coffee, rocket, stars, camera, tissue): "
                  "a texture task with no orientation in the labels"),
        "classes": {"moon": "moon", "cells": "cell", "retina": "retina", "coffee": "coffee",
                    "rocket": "rocket", "stars": "hubble_deep_field", "camera": "camera",
                    "tissue": "immunohistochemistry"},
    },
    "shapes": {
        "about": ("6 shapes (circle, square, triangle, star, cross, ring) cut from one photo onto another: "
                  "shape matters, texture does not; flips and rotations are safe"),
        "classes": {name: name for name in ("circle", "square", "triangle", "star", "cross", "ring")},
    },
}
# Arrow classes and the direction each points in, in degrees clockwise from "right" (image y points down).
ARROWS = {"arrow_right": 0, "arrow_down": 90, "arrow_left": 180, "arrow_up": 270}
SHAPES = {"circle", "square", "triangle", "star", "cross", "ring"} | set(ARROWS)
# Photos whose patches fill shapes and backgrounds.
FILL_SOURCES = ("brick", "grass", "gravel", "chelsea", "coffee", "astronaut", "rocket", "coins",
                "camera", "moon", "hubble_deep_field", "immunohistochemistry")


def list_course_data() -> dict[str, str]:
    """Names of the generated data sets with a one-line description each."""
    return {name: v["about"] for name, v in VARIANTS.items()}


def _load_source(name: str) -> np.ndarray:
    """A scikit-image photo as float RGB in [0, 1] (grayscale copied to three channels)."""
    from skimage import data

    image = getattr(data, name)()
    image = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else image.max() or 1)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]


def _patch(source: np.ndarray, band: tuple[float, float], rng: np.random.Generator,
           size: int = STORE_SIZE) -> np.ndarray:
    """A random square patch from one vertical band of ``source``, resized to ``size``."""
    h, w, _ = source.shape
    x0, x1 = int(band[0] * w), int(band[1] * w)
    side = int(min(rng.uniform(0.15, 0.2) * max(h, w), x1 - x0, h))  # the val/test bands fit it
    x = rng.integers(x0, x1 - side + 1)
    y = rng.integers(0, h - side + 1)
    crop = (source[y:y + side, x:x + side] * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255


def _scramble_colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffle channels, change gains, brightness and contrast: colour must not give the class away."""
    image = image[..., rng.permutation(3)] * rng.uniform(0.6, 1.4, size=3)
    mean = image.mean()
    image = (image - mean) * rng.uniform(0.6, 1.4) + mean + rng.uniform(-0.15, 0.15)
    return np.clip(image, 0, 1)


def _shape_mask(kind: str, rng: np.random.Generator, size: int = STORE_SIZE) -> np.ndarray:
    """A filled shape (bool mask) of random size, position and — where it keeps the label — rotation."""
    r = rng.uniform(0.28, 0.4) * size
    cx, cy = size / 2 + rng.uniform(-0.1, 0.1) * size, size / 2 + rng.uniform(-0.1, 0.1) * size
    # Arrows may tilt only a little (their direction is the label); other shapes turn freely.
    if kind in ARROWS:
        angle = math.radians(ARROWS[kind]) + rng.uniform(-0.35, 0.35)
    else:
        angle = rng.uniform(0, 2 * math.pi)

    def poly(points):
        c, s = math.cos(angle), math.sin(angle)
        return [(cx + r * (px * c - py * s), cy + r * (px * s + py * c)) for px, py in points]

    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    if kind in ("circle", "ring"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        if kind == "ring":
            inner = r * 0.55
            draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif kind == "square":
        draw.polygon(poly([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]), fill=255)
    elif kind == "triangle":
        draw.polygon(poly([(0, -1), (0.87, 0.5), (-0.87, 0.5)]), fill=255)
    elif kind == "star":
        pts = [((1 if i % 2 == 0 else 0.42) * math.sin(i * math.pi / 5),
                -(1 if i % 2 == 0 else 0.42) * math.cos(i * math.pi / 5)) for i in range(10)]
        draw.polygon(poly(pts), fill=255)
    elif kind == "cross":
        t = 0.3
        draw.polygon(poly([(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1), (-t, t),
                           (-1, t), (-1, -t), (-t, -t)]), fill=255)
    elif kind in ARROWS:  # drawn pointing right, then turned to its direction
        draw.polygon(poly([(-1, -0.25), (0.1, -0.25), (0.1, -0.7), (1, 0), (0.1, 0.7), (0.1, 0.25),
                           (-1, 0.25)]), fill=255)
    else:
        raise ValueError(kind)
    return np.asarray(mask) > 127


def _make_image(kind: str, band: tuple[float, float], sources: dict, rng: np.random.Generator) -> np.ndarray:
    if kind in SHAPES:  # a shape cut from one photo, pasted onto a patch of another
        fill_name, back_name = rng.choice(FILL_SOURCES, size=2, replace=False)
        background = _scramble_colour(_patch(sources[back_name], band, rng), rng)
        fill = _scramble_colour(_patch(sources[fill_name], band, rng), rng)
        mask = _shape_mask(kind, rng)[..., None]
        image = np.where(mask, fill, background * 0.8)
    else:  # a patch of one material
        image = _scramble_colour(_patch(sources[kind], band, rng), rng)
    return (image * 255).astype(np.uint8)


def _counts(per_class: int | dict | None) -> dict[str, int]:
    """Images per class in each split: an int sets the training count, a dict any of the three."""
    if isinstance(per_class, int):
        per_class = {"train": per_class}
    counts = {**DEFAULT_PER_CLASS, **(per_class or {})}
    unknown = set(counts) - set(DEFAULT_PER_CLASS)
    if unknown or any(not isinstance(n, int) or n < 1 for n in counts.values()):
        raise DataError(f"per_class={per_class!r}: give an int (training images per class) or a dict "
                        "like {'train': 60, 'val': 30, 'test': 30} with positive counts.")
    return counts


def generate(name: str = "course", seed: int = 0, per_class: int | dict | None = None) -> DataSplits:
    """Build a course data set (no cache): same name + seed → the same pixels."""
    if name not in VARIANTS:
        raise DataError(f"Unknown course data set {name!r}; choose from {sorted(VARIANTS)}.")
    per_class = _counts(per_class)
    classes = list(VARIANTS[name]["classes"])
    kinds = list(VARIANTS[name]["classes"].values())
    needed = {k for k in kinds if k not in SHAPES} | (set(FILL_SOURCES) if SHAPES & set(kinds) else set())
    sources = {n: _load_source(n) for n in needed}
    splits = {}
    for split_index, (split_name, band) in enumerate(BANDS.items()):
        images, labels, ids = [], [], []
        for label, kind in enumerate(kinds):
            rng = np.random.default_rng([seed, split_index, label])
            for i in range(per_class[split_name]):
                images.append(_make_image(kind, band, sources, rng))
                labels.append(label)
                ids.append(f"{name}/{split_name}/{classes[label]}/{i}")
        tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
        splits[split_name] = ImageDataset(tensor, torch.tensor(labels), classes, sources=ids)
    return DataSplits(train=splits["train"], val=splits["val"], test=splits["test"], classes=classes)


def course_data(name: str = "course", seed: int = 0, image_size: int = 128,
                per_class: int | dict | None = None, root: str | Path | None = None) -> DataSplits:
    """The offline course data set ``name``, from the disk cache or generated (a few seconds).

    ``image_size`` is the size lessons train at; images are stored at 144 px, which leaves room
    for random crops of up to ~128 px. ``per_class`` changes the counts per split: an int is the
    number of training images per class, a dict sets any split, e.g. ``{"train": 100, "test": 50}``.
    The cache lives in ``root`` (default ``tlkit.paths.data_dir()``, i.e. ``$TLKIT_DATA``).
    """
    if name not in VARIANTS:
        raise DataError(f"Unknown course data set {name!r}; choose from {sorted(VARIANTS)}.")
    if image_size > STORE_SIZE:
        raise DataError(f"image_size={image_size} is larger than the stored {STORE_SIZE} px images; "
                        f"use image_size <= {STORE_SIZE} (upscaling would only blur them).")
    counts = _counts(per_class)
    key = hashlib.sha1(repr((name, seed, sorted(counts.items()), GENERATOR_VERSION)).encode())
    path = Path(root or data_dir()) / "course" / f"{name}-seed{seed}-{key.hexdigest()[:10]}.pt"
    if path.exists():
        try:
            return _from_state(torch.load(path, weights_only=True))
        except Exception:  # a truncated or foreign file: make it again rather than fail
            path.unlink(missing_ok=True)
    splits = generate(name, seed, counts)
    # Write to a private temporary name, then rename: a second notebook reading the cache at the
    # same moment sees either no file or a whole one, never half of one.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_to_state(splits), tmp)
        tmp.replace(path)
    except OSError:  # a read-only cache (a shared workshop copy, the grader's sandbox): keep it in memory
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return splits


def _to_state(splits: DataSplits) -> dict:
    state = {"classes": splits.classes}
    for part in ("train", "val", "test"):
        ds = getattr(splits, part)
        state[part] = {"images": ds.images, "labels": ds.labels, "sources": ds.sources}
    return state


def _from_state(state: dict) -> DataSplits:
    parts = {p: ImageDataset(state[p]["images"], state[p]["labels"], state["classes"],
                             sources=state[p]["sources"]) for p in ("train", "val", "test")}
    return DataSplits(classes=list(state["classes"]), **parts)
