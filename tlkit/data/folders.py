"""Your own photos (``folder/<class>/*.jpg``) and public data sets, as in-memory ImageDatasets.

Real folders are messy: a stray ``.DS_Store``, a half-copied JPEG, a 16-bit PNG from a scanner, a
transparent logo. Every image is converted to 8-bit RGB; files that cannot be read are skipped,
counted, and reported in one warning, never silently dropped and never fatal.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .dataset import DataError, DataSplits, ImageDataset
from .splits import split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
CROP_MARGIN = 8 / 7  # stored short side = image_size * 8/7, like the eval resize


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: 16-bit grayscale is rescaled, transparency goes onto white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        arr = 255 * (arr - arr.min()) / max(arr.max() - arr.min(), 1)
        img = Image.fromarray(arr.astype(np.uint8))
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def _square(img: Image.Image, size: int) -> np.ndarray:
    """Resize the short side to ``size`` and centre-crop a square."""
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))


def _class_folders(path: Path) -> list[Path]:
    if not path.exists():
        raise DataError(f"Data folder {path} does not exist. Check the path (it is relative to "
                        f"{Path.cwd()}).")
    if not path.is_dir():
        raise DataError(f"{path} is a file; expected a folder with one sub-folder per class.")
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{path} has no class folders. Expected {path}/<class name>/<images>, "
                        f"e.g. {path}/cats/1.jpg and {path}/dogs/1.jpg.")
    return folders


def load_image_folder(path, image_size: int = 128, classes: list[str] | None = None) -> ImageDataset:
    """Load ``path/<class>/<image files>`` into memory, resized for ``image_size`` training crops.

    ``classes`` fixes the class list and its order (for val/test folders, the train folder's);
    a class folder not in that list is an error. Unreadable files are skipped and reported.
    """
    path = Path(path)
    folders = _class_folders(path)
    names = [f.name for f in folders]
    if classes is not None:
        extra = sorted(set(names) - set(classes))
        if extra:
            raise DataError(f"{path} has class folder(s) {extra} that the training data does not have "
                            f"({list(classes)}). Add them to train/ or remove them here.")
    classes = list(classes) if classes is not None else names
    store = round(image_size * CROP_MARGIN)
    images, labels, sources, skipped, empty = [], [], [], [], []
    for folder in folders:
        files = sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))
        loaded = 0
        for file in files:
            try:
                with Image.open(file) as img:
                    images.append(_square(_to_rgb(img), store))
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
                skipped.append(str(file))
                continue
            labels.append(classes.index(folder.name))
            sources.append(str(file))
            loaded += 1
        if loaded == 0:
            empty.append(folder.name)
    if skipped:
        shown = ", ".join(Path(s).name for s in skipped[:5])
        warnings.warn(f"Skipped {len(skipped)} file(s) in {path} that are not readable images "
                      f"(e.g. {shown}). Delete or fix them to use them.", stacklevel=2)
    if empty:
        warnings.warn(f"Class folder(s) {empty} in {path} contain no readable images; they get no "
                      "examples. Add images or delete the folder(s).", stacklevel=2)
    if not images:
        raise DataError(f"No readable images in {path} (looked for {', '.join(sorted(IMAGE_SUFFIXES))} "
                        f"in {len(folders)} class folder(s)).")
    tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(tensor, torch.tensor(labels), classes, sources=sources, skipped=skipped)


def load_folder_splits(data_dir, image_size: int = 128, val: float = 0.2, seed: int = 0) -> DataSplits:
    """A DataSplits from ``data_dir/train`` (+ ``val/``, ``test/`` when present).

    With only ``train/`` (or only class folders directly in ``data_dir``), a stratified ``val``
    fraction is held out. The class list comes from the training folder.
    """
    data_dir = Path(data_dir)
    _class_folders(data_dir)  # clear errors for a missing or empty folder
    train_dir = data_dir / "train"
    if not train_dir.is_dir():
        if (data_dir / "val").is_dir() or (data_dir / "test").is_dir():
            raise DataError(f"{data_dir} has val/ or test/ but no train/ folder. Put training images "
                            f"in {train_dir}/<class>/.")
        train_dir = data_dir  # class folders directly inside
    train = load_image_folder(train_dir, image_size)
    present = [c for c, n in train.class_counts().items() if n > 0]
    if len(present) < 2:
        raise DataError(f"Found {len(present)} class with images in {train_dir} ({present}); a classifier "
                        "needs at least 2 classes. Add a folder of images for each other class.")
    parts = {}
    for name in ("val", "test"):
        folder = data_dir / name
        parts[name] = load_image_folder(folder, image_size, classes=train.classes) if folder.is_dir() else None
    if parts["val"] is None:
        carved = split(train, val=val, seed=seed)
        train, parts["val"] = carved.train, carved.val
    return DataSplits(train=train, val=parts["val"], test=parts["test"], classes=train.classes)


# torchvision data sets by name: (class, how its split argument works)
PUBLIC = {
    "cifar10": ("CIFAR10", "train_bool"), "cifar100": ("CIFAR100", "train_bool"),
    "eurosat": ("EuroSAT", None), "flowers102": ("Flowers102", "split"),
    "oxfordiiitpet": ("OxfordIIITPet", "split_trainval"), "food101": ("Food101", "split"),
    "dtd": ("DTD", "split"), "stl10": ("STL10", "split"),
}


def public_dataset(name: str, root, split: str = "train", image_size: int = 128, download: bool = False,
                   max_per_class: int | None = None) -> ImageDataset:
    """A torchvision data set by name, decoded into memory at ``image_size``.

    Offline without the files: a DataError that says where tlkit looked and how to get them.
    ``max_per_class`` keeps the first n images of each class (big sets on small laptops).
    """
    import torchvision.datasets as tvd

    key = name.lower().replace("-", "").replace("_", "")
    if key not in PUBLIC:
        raise DataError(f"Unknown public data set {name!r}; tlkit knows {sorted(PUBLIC)}. For anything "
                        "else, save the images as folder/<class>/* and use load_image_folder.")
    cls_name, split_kind = PUBLIC[key]
    kwargs: dict = {"root": str(root), "download": download}
    if split_kind == "train_bool":
        kwargs["train"] = split == "train"
    elif split_kind == "split_trainval":
        kwargs["split"] = "trainval" if split == "train" else "test"
    elif split_kind == "split":
        kwargs["split"] = split
    try:
        ds = getattr(tvd, cls_name)(**kwargs)
    except (RuntimeError, FileNotFoundError, OSError) as err:
        raise DataError(
            f"{cls_name} ({split}) is not in {root} ({err}). On a machine with internet run "
            f"`tlkit fetch-data {key} --root {root}` (or public_dataset(..., download=True)) and copy "
            "that folder here; offline, use tlkit.course_data() instead.") from None
    classes = list(getattr(ds, "classes", []) or [])
    store = round(image_size * CROP_MARGIN)
    images, labels, counts = [], [], {}
    for i in range(len(ds)):
        img, label = ds[i]
        if max_per_class is not None and counts.get(label, 0) >= max_per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        images.append(_square(_to_rgb(img), store))
        labels.append(int(label))
    classes = classes or [str(c) for c in range(max(labels) + 1)]
    tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(tensor, torch.tensor(labels), classes, sources=[f"{key}/{split}/{i}" for i in range(len(labels))])
