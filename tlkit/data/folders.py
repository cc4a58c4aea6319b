"""Your own photos (``folder/<class>/*.jpg``) and public data sets, as in-memory ImageDatasets.

Real folders are messy: a stray ``.DS_Store``, a half-copied JPEG, a 16-bit PNG from a scanner, a
transparent logo. Every image is converted to 8-bit RGB; files that cannot be read are skipped,
counted, and reported in one warning, never silently dropped and never fatal.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..paths import data_dir
from .dataset import DataError, DataSplits, ImageDataset
from .splits import split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
CROP_MARGIN = 8 / 7  # stored short side = image_size * 8/7, like the eval resize


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: 16-bit and float images are rescaled, transparency goes onto white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Scanners and microscopes often fill only 10-12 of the 16 bits: stretch to 0..255 so the
        # image is not nearly black.
        arr = np.asarray(img, dtype=np.float64)
        arr = 255 * (arr - arr.min()) / max(arr.max() - arr.min(), 1)
        img = Image.fromarray(arr.astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
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


def _read_image(file: Path, size: int) -> np.ndarray:
    """One file as a (size, size, 3) uint8 array; raises if it is not a readable image."""
    with Image.open(file) as img:
        # A 4000-px phone JPEG can be decoded at 1/2, 1/4 or 1/8 scale for almost nothing:
        # ask for the smallest that is still larger than what we keep.
        img.draft("RGB", (size, size))
        img = ImageOps.exif_transpose(img)  # phone photos store "rotate me" in EXIF
        return _square(_to_rgb(img), size)


def _class_folders(path: Path) -> list[Path]:
    """The class sub-folders of ``path``, with a clear error when there are none."""
    if not path.exists():
        raise DataError(f"Data folder {path} does not exist. Check the path (a relative path starts "
                        f"at the notebook's folder, {Path.cwd()}).")
    if not path.is_dir():
        raise DataError(f"{path} is a file; expected a folder with one sub-folder per class.")
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    if not folders:
        loose = [p.name for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        hint = (f" It holds {len(loose)} image(s) directly: move them into one sub-folder per class."
                if loose else "")
        raise DataError(f"{path} has no class folders. Expected {path}/<class name>/<images>, "
                        f"e.g. {path}/cats/1.jpg and {path}/dogs/1.jpg.{hint}")
    return folders


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder`` except hidden ones (.DS_Store, ._photo.jpg from macOS)."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and not f.name.startswith("."))


def load_image_folder(path, image_size: int = 128, classes: list[str] | None = None) -> ImageDataset:
    """Load ``path/<class>/<image files>`` into memory, resized for ``image_size`` training crops.

    Images are stored with their short side at ``image_size`` × 8/7 (146 px for 128) and
    centre-cropped square, so that random training crops of ``image_size`` have room to move.

    ``classes`` fixes the class list and its order (for val/test folders, the train folder's);
    a class folder not in that list is an error. Unreadable files are skipped and reported in
    one warning (the list is in ``.skipped``). A class folder without any readable image is
    dropped from the class list, with a warning.
    """
    path = Path(path)
    folders = _class_folders(path)
    names = [f.name for f in folders]
    if classes is not None:
        extra = sorted(set(names) - set(classes))
        if extra:
            raise DataError(f"{path} has class folder(s) {extra} that the training data does not have "
                            f"({list(classes)}). Add them to train/ or remove them here.")
    store = round(image_size * CROP_MARGIN)
    images, label_names, sources, skipped = [], [], [], []
    for folder in folders:
        for file in _files(folder):
            try:
                images.append(_read_image(file, store))
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
                skipped.append(str(file))
                continue
            label_names.append(folder.name)
            sources.append(str(file))
    if skipped:
        shown = ", ".join(str(Path(s).relative_to(path)) for s in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(f"Skipped {len(skipped)} file(s) in {path} that are not readable images: {shown}"
                      f"{more}. Delete or re-save them to use them (the full list is in .skipped).",
                      stacklevel=2)
    if not images:
        raise DataError(f"No readable images in {path} ({len(folders)} class folder(s), "
                        f"{len(skipped)} unreadable file(s)). tlkit reads "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))}.")
    if classes is None:
        classes = _classes_with_images(path, names, set(label_names))
    labels = torch.tensor([classes.index(n) for n in label_names])
    tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(tensor, labels, classes, sources=sources, skipped=skipped)


def _classes_with_images(path: Path, names: list[str], found: set[str]) -> list[str]:
    """The class folders that have images; warn about empty ones, need at least two classes."""
    empty = [n for n in names if n not in found]
    if empty:
        # Keeping an empty class would give the model an output it can never learn, and every
        # stratified split or few-shot sample would fail on it later, far from the cause.
        warnings.warn(f"Class folder(s) {[str(path / n) for n in empty]} contain no readable images: "
                      "dropped them from the class list. Add images there to use them as classes.",
                      stacklevel=3)
    classes = [n for n in names if n in found]
    if len(classes) < 2:
        raise DataError(f"Found only {len(classes)} class with images in {path} ({classes}); a "
                        "classifier needs at least 2 classes. Add one sub-folder of images per class, "
                        f"e.g. {path}/cats/ and {path}/dogs/.")
    return classes


def load_folder_splits(data_dir, image_size: int = 128, val: float = 0.2, seed: int = 0) -> DataSplits:
    """A DataSplits from ``data_dir/train`` (+ ``val/``, ``test/`` when present).

    With only ``train/`` (or only class folders directly in ``data_dir``), a stratified ``val``
    fraction of the training images is held out. The class list comes from the training folder
    and val/test must not add classes to it.
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
    parts = {}
    for name in ("val", "test"):
        folder = data_dir / name
        parts[name] = load_image_folder(folder, image_size, classes=train.classes) if folder.is_dir() else None
    if parts["val"] is None:
        carved = split(train, val=val, seed=seed)
        train, parts["val"] = carved.train, carved.val
    return DataSplits(train=train, val=parts["val"], test=parts["test"], classes=train.classes)


# torchvision data sets by name: (class, how its split argument works, folder it creates in root)
PUBLIC = {
    "cifar10": ("CIFAR10", "train_bool", "cifar-10-batches-py"),
    "cifar100": ("CIFAR100", "train_bool", "cifar-100-python"),
    "eurosat": ("EuroSAT", None, "eurosat"),
    "flowers102": ("Flowers102", "split", "flowers-102"),
    "oxfordiiitpet": ("OxfordIIITPet", "split_trainval", "oxford-iiit-pet"),
    "food101": ("Food101", "split", "food-101"),
    "dtd": ("DTD", "split", "dtd"),
    "stl10": ("STL10", "split", "stl10_binary"),
}


def public_dataset(name: str, root: str | Path | None = None, split: str = "train", image_size: int = 128,
                   download: bool = False, max_per_class: int | None = None) -> ImageDataset:
    """A torchvision data set by name, decoded into memory at ``image_size``.

    ``root`` is the folder torchvision downloads into (it creates e.g. ``root/cifar-10-batches-py``);
    the default, ``data_dir()/public``, is where ``tlkit fetch-data`` puts them.
    Offline without the files: a DataError that says where tlkit looked and how to get them.
    ``max_per_class`` keeps the first n images of each class (big sets on small laptops).
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in PUBLIC:
        raise DataError(f"Unknown public data set {name!r}; tlkit knows {sorted(PUBLIC)}. For anything "
                        "else, save the images as folder/<class>/* and use load_image_folder.")
    root = Path(root).expanduser() if root is not None else data_dir() / "public"
    store = round(image_size * CROP_MARGIN)
    if key in ("cifar10", "cifar100"):
        if download:
            _torchvision_set(key, root, split, download=True)  # fetch (and check) the files
        images, labels, classes = _read_cifar(key, root, split)
        keep = _first_per_class(labels, max_per_class)
        pictures = (Image.fromarray(images[i]) for i in keep)
    else:
        ds = _torchvision_set(key, root, split, download)
        labels = _labels_of(ds)
        keep = _first_per_class(labels, max_per_class)
        pictures = (ds[i][0] for i in keep)
        classes = list(getattr(ds, "classes", None) or [str(c) for c in range(max(labels) + 1)])
    arrays = [_square(_to_rgb(img), store) for img in pictures]
    tensor = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(tensor, torch.tensor([labels[i] for i in keep]), classes,
                        sources=[f"{key}/{split}/{i}" for i in keep])


def _missing(key: str, root: Path, split: str, why: str) -> DataError:
    """The error for files that are not there: what, where, and the two ways to get them."""
    cls_name, _, folder = PUBLIC[key]
    return DataError(
        f"{cls_name} ({split}) is not in {root / folder} ({why}). On a machine with internet run "
        f"`tlkit fetch-data {key} --root {root}` (or tlkit.public_dataset({key!r}, {str(root)!r}, "
        f"download=True)) and copy the folder {folder}/ into {root}. Offline, use tlkit.course_data().")


def _torchvision_set(key: str, root: Path, split: str, download: bool):
    """Build the torchvision data set object (which downloads when asked to)."""
    import torchvision.datasets as tvd

    cls_name, split_kind, _ = PUBLIC[key]
    kwargs: dict = {"root": str(root), "download": download}
    if split_kind == "train_bool":
        kwargs["train"] = split == "train"
    elif split_kind == "split_trainval":
        kwargs["split"] = "trainval" if split == "train" else "test"
    elif split_kind == "split":
        kwargs["split"] = split
    try:
        return getattr(tvd, cls_name)(**kwargs)
    except (RuntimeError, FileNotFoundError, OSError) as err:
        raise _missing(key, root, split, str(err)) from None


def _labels_of(ds) -> list[int]:
    """Every label of a torchvision data set, read without decoding the images where possible."""
    # ImageFolder-style sets expose ``targets``; Flowers102, DTD, Food101 and the pets keep them in
    # ``_labels``. Reading those lets ``max_per_class`` skip decoding 100,000 photos.
    for attr in ("targets", "_labels", "labels"):
        values = getattr(ds, attr, None)
        if values is not None and len(values) == len(ds):
            return [int(v) for v in values]
    return [int(ds[i][1]) for i in range(len(ds))]


def _first_per_class(labels: list[int], max_per_class: int | None) -> list[int]:
    """Indices of the first ``max_per_class`` items of every class (all items when None)."""
    seen: dict[int, int] = {}
    keep = []
    for i, label in enumerate(labels):
        if max_per_class is None or seen.get(label, 0) < max_per_class:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return keep


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds only lists, dicts, strings and numpy arrays.

    The CIFAR files are Python pickles, and unpickling can run any code the file names. Data files
    should never be able to do that, so anything but the array pieces is refused.
    """

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _ArraysOnly(f, encoding="latin1").load()


def _read_cifar(key: str, root: Path, split: str) -> tuple[np.ndarray, list[int], list[str]]:
    """CIFAR-10/100 from torchvision's folder: (N, 32, 32, 3) uint8 images, labels, class names.

    Read directly rather than through torchvision, whose checksum test refuses any file that is
    not byte-for-byte the official one (and so refuses the small test files tlkit's tests write).
    """
    folder = root / PUBLIC[key][2]
    if key == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        meta_file, names_key, labels_key = "batches.meta", "label_names", "labels"
    else:
        files = ["train" if split == "train" else "test"]
        meta_file, names_key, labels_key = "meta", "fine_label_names", "fine_labels"
    paths = [folder / f for f in files + [meta_file]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise _missing(key, root, split, f"missing {', '.join(missing)}")
    try:
        batches = [_unpickle(p) for p in paths[:-1]]
        classes = list(_unpickle(paths[-1])[names_key])
        images = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        labels = [int(v) for b in batches for v in b[labels_key]]
    except (pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError) as err:
        raise _missing(key, root, split, f"unreadable file: {err}") from None
    # each row is 1024 red, then 1024 green, then 1024 blue values of a 32x32 image
    return images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels, classes
