"""Batches: the one place where tlkit turns data into a DataLoader (training, evaluation, LR finder)."""
from __future__ import annotations

import warnings

import torch
from torch.utils.data import DataLoader, Dataset

from .dataset import DataError


def make_loader(data: Dataset | DataLoader, batch_size: int = 32, shuffle: bool = False, *,
                drop_last: bool | None = None, num_workers: int = 0, name: str = "",
                device: torch.device | str | None = None) -> DataLoader:
    """``data`` itself if it already is a DataLoader, else a DataLoader over it.

    - In-process (``num_workers=0``) by default: for images already in memory, worker processes
      mostly add start-up time, and in notebooks on macOS/Windows they can crash (they are started
      with 'spawn').
    - A ``batch_size`` larger than the data set is clipped to its size. For training (``shuffle``)
      that means one step per epoch, so it warns.
    - ``drop_last=None`` drops a last training batch of exactly one example: BatchNorm cannot
      normalise a batch of one ("Expected more than 1 value per channel").
    - ``name`` ("train", "val", ...) goes into the error messages.
    """
    what = f"{name} " if name else ""
    if isinstance(data, DataLoader):
        if len(data) == 0:
            raise DataError(f"The {what}DataLoader yields no batches.")
        return data
    n = len(data)
    if n == 0:
        raise DataError(f"The {what}data set is empty: nothing to load. Check the folder or the split.")
    if batch_size > n:
        if shuffle:
            warnings.warn(f"batch_size={batch_size} is larger than the {n} {what}examples; using "
                          f"batch_size={n} (one step per epoch). Pass a smaller batch_size to silence this.",
                          stacklevel=3)
        batch_size = n
    if drop_last is None:
        drop_last = shuffle and n % batch_size == 1 and n > 1
    on_cuda = device is not None and torch.device(device).type == "cuda"
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=num_workers, pin_memory=on_cuda)
