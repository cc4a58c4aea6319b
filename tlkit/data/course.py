"""The course data sets: procedural images made from the real photos scikit-image ships.

Why make data instead of downloading it: the course must run offline on any laptop, and a
generated set can be made *exactly* as hard as a lesson needs. Every image is built from
real photographs and textures (brick, grass, gravel, a cat's fur, coins, printed text, the moon,
...), so a network pretrained on ImageNet has something real to recognise, while a network
trained from scratch on 20 images per class has to learn texture from almost nothing.

Three variants (``list_course_data()``):
- ``course``: six materials plus arrows pointing left or right. Colours are scrambled, so colour is
  no shortcut; the arrows make horizontal flips a label-breaking augmentation.
- ``materials``: eight other surfaces, patches only.
- ``shapes``: six shapes cut out of one photo and pasted onto another.

No leakage: each source photo is cut into three vertical bands; train patches come from the left
60 %, validation from the next 20 %, test from the last 20 %. Images are generated in a few seconds,
deterministically from the seed, and cached on disk.
"""
from __future__ import annotations

import hashlib
import math

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
        "about": "6 materials (brick, grass, gravel, fur, coins, text) + arrows pointing left/right",
        "classes": {"brick": "brick", "grass": "grass", "gravel": "gravel", "fur": "chelsea",
                    "coins": "coins", "text": "page", "arrow_left": "arrow_left", "arrow_right": "arrow_right"},
    },
    "materials": {
        "about": "8 surfaces: moon, cells, retina, coffee, rocket, stars, camera, tissue",
        "classes": {"moon": "moon", "cells": "cell", "retina": "retina", "coffee": "coffee",
                    "rocket": "rocket", "stars": "hubble_deep_field", "camera": "camera",
                    "tissue": "immunohistochemistry"},
    },
    "shapes": {
        "about": "6 shapes (circle, square, triangle, star, cross, ring) cut from one photo onto another",
        "classes": {name: name for name in ("circle", "square", "triangle", "star", "cross", "ring")},
    },
}
SHAPES = {"circle", "square", "triangle", "star", "cross", "ring", "arrow_left", "arrow_right"}
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
    angle = rng.uniform(-0.35, 0.35) if kind.startswith("arrow") else rng.uniform(0, 2 * math.pi)

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
    elif kind in ("arrow_left", "arrow_right"):
        sign = -1 if kind == "arrow_left" else 1
        pts = [(-1, -0.25), (0.1, -0.25), (0.1, -0.7), (1, 0), (0.1, 0.7), (0.1, 0.25), (-1, 0.25)]
        draw.polygon(poly([(sign * x, y) for x, y in pts]), fill=255)
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


def generate(name: str = "course", seed: int = 0, per_class: dict | None = None) -> DataSplits:
    """Build a course data set (no cache): same name + seed → the same pixels."""
    if name not in VARIANTS:
        raise DataError(f"Unknown course data set {name!r}; choose from {sorted(VARIANTS)}.")
    per_class = {**DEFAULT_PER_CLASS, **(per_class or {})}
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


def course_data(name: str = "course", seed: int = 0, image_size: int = 128, per_class: dict | None = None,
                root=None) -> DataSplits:
    """The offline course data set ``name``, from the disk cache or generated (a few seconds).

    ``image_size`` is the size lessons train at; images are stored at 144 px, which leaves room
    for random crops of up to ~128 px. ``per_class`` overrides the counts per split,
    e.g. ``{"train": 100}``.
    """
    from pathlib import Path

    if image_size > STORE_SIZE:
        raise DataError(f"image_size={image_size} is larger than the stored {STORE_SIZE} px images; "
                        f"use image_size <= {STORE_SIZE} (upscaling would only blur them).")
    key = hashlib.sha1(repr((name, seed, sorted((per_class or {}).items()), GENERATOR_VERSION)).encode())
    path = Path(root or data_dir()) / "course" / f"{name}-seed{seed}-{key.hexdigest()[:10]}.pt"
    if path.exists():
        try:
            return _from_state(torch.load(path, weights_only=True))
        except Exception:  # a truncated or foreign file: make it again rather than fail
            path.unlink()
    splits = generate(name, seed, per_class)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(_to_state(splits), tmp)
    tmp.replace(path)
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
