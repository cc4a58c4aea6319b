"""A cache for the frozen body's features: compute them once, reuse them until something changes.

``tl.extract_features`` always recomputes. ``tl.cached_features`` remembers the result under a
fingerprint of everything the features depend on —

- the body's weights (every parameter and buffer outside the head),
- the images (or texts) and labels of the data set, and
- the transform (its printed form, which lists every step and setting),

so changing any of them (fine-tuning the body, another subset, another image size) computes fresh
features, and asking again for the same thing costs only the fingerprint (milliseconds).

What is *not* cached, on purpose: features of augmented images. A random crop gives different
pixels every epoch; caching one draw would silently turn augmentation off. A random transform
is refused with a message that says what to do instead.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from .features import extract_features
from .models import head_name

_MEMORY: "OrderedDict[str, TensorDataset]" = OrderedDict()
MEMORY_ITEMS = 8  # feature sets kept in memory (least recently used is dropped first)


class FeatureCacheError(ValueError):
    """Data or transforms whose features cannot be cached honestly."""


def _hash_tensor(h, tensor: torch.Tensor) -> None:
    t = tensor.detach().cpu().contiguous()
    h.update(str((t.dtype, tuple(t.shape))).encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def body_fingerprint(model: nn.Module) -> str:
    """A hash of every parameter and buffer except the head's: changes when the body changes."""
    head = head_name(model) + "."
    h = hashlib.blake2b(type(model).__name__.encode(), digest_size=16)
    for name, tensor in list(model.state_dict().items()):
        if not name.startswith(head):
            h.update(name.encode())
            _hash_tensor(h, tensor)
    return h.hexdigest()


def is_random(transform) -> bool:
    """True when a transform contains a random step (an augmentation)."""
    if transform is None:
        return False
    text = repr(transform)
    return any(word in text for word in ("Random", "TrivialAugment", "RandAugment", "AutoAugment",
                                         "AugMix", "ColorJitter", "ElasticTransform"))


def data_fingerprint(data: Dataset) -> str:
    """A hash of the images (or texts), labels and transform of an ``ImageDataset``, ``TextDataset`` or
    ``TensorDataset``."""
    h = hashlib.blake2b(digest_size=16)
    if hasattr(data, "images") and hasattr(data, "labels"):  # tlkit's ImageDataset
        transform = getattr(data, "transform", None)
        if is_random(transform):
            raise FeatureCacheError(
                "the data set's transform is random (augmentation): cached features would freeze one random "
                "view and silently turn augmentation off. Cache features of the eval transform "
                "(ds.with_transform(tl.eval_transforms(cfg, size))), or train through the body with tl.fit.")
        _hash_tensor(h, data.images)
        _hash_tensor(h, data.labels)
        h.update(repr(transform).encode())
    elif hasattr(data, "texts") and hasattr(data, "labels"):  # tlkit's TextDataset
        for text in data.texts:
            h.update(text.encode("utf-8") + b"\0")
        _hash_tensor(h, data.labels)
        h.update(repr(getattr(data, "transform", None)).encode())  # tokenizer and max_length
    elif isinstance(data, TensorDataset):
        for tensor in data.tensors:
            _hash_tensor(h, tensor)
    else:
        raise FeatureCacheError(
            f"cannot fingerprint a {type(data).__name__}: cached_features needs a tlkit ImageDataset, TextDataset "
            "or a TensorDataset. Use tl.extract_features (no cache) for other data sets.")
    return h.hexdigest()


def cached_features(model: nn.Module, data: Dataset, *, batch_size: int = 64,
                    device: torch.device | str | None = None, disk: bool | str | Path = False,
                    progress: str | None = None) -> TensorDataset:
    """``tl.extract_features(model, data)``, computed once per (body weights, data, transform).

    ``disk=True`` also keeps the features in ``$TLKIT_HOME/features`` (or in the folder given), so
    they survive a kernel restart. Files are loaded with ``weights_only=True``. ``progress``: a
    description for a progress bar while the features are computed (none when they are cached).
    """
    key = body_fingerprint(model) + data_fingerprint(data)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    path = _disk_path(disk, key)
    if path is not None and path.exists():
        stored = torch.load(path, weights_only=True)
        features = TensorDataset(stored["features"], stored["labels"])
    else:
        features = extract_features(model, data, batch_size=batch_size, device=device, progress=progress)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            torch.save({"features": features.tensors[0], "labels": features.tensors[1]}, tmp)
            tmp.replace(path)  # atomic: a half-written file is never read
    _MEMORY[key] = features
    while len(_MEMORY) > MEMORY_ITEMS:
        _MEMORY.popitem(last=False)
    return features


def clear_feature_cache(disk: bool | str | Path = False) -> int:
    """Forget cached features (memory, and the disk folder when ``disk`` is given); return how many."""
    count = len(_MEMORY)
    _MEMORY.clear()
    folder = _disk_path(disk, "x")
    if folder is not None and folder.parent.exists():
        for file in folder.parent.glob("*.pt"):
            file.unlink()
            count += 1
    return count


def _disk_path(disk: bool | str | Path, key: str) -> Path | None:
    if disk is False or disk is None:
        return None
    if disk is True:
        from .paths import home
        folder = home() / "features"
    else:
        folder = Path(disk)
    return folder / f"{key}.pt"
