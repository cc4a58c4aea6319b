"""DataLoaders with defaults that suit small in-memory data on laptops."""
from __future__ import annotations

import warnings

from torch.utils.data import DataLoader, Dataset

from .dataset import DataError


def make_loader(ds: Dataset, batch_size: int = 32, shuffle: bool = False, drop_last: bool = False,
                num_workers: int = 0) -> DataLoader:
    """A DataLoader that loads in-process by default.

    Worker processes help when decoding files; for images already in memory they mostly add start-up
    time, and in notebooks on macOS/Windows they can crash (they are started with 'spawn').
    """
    if len(ds) == 0:
        raise DataError("The data set is empty: nothing to load. Check the folder or the split.")
    if batch_size > len(ds):
        warnings.warn(f"batch_size={batch_size} is larger than the data set ({len(ds)} items); "
                      f"using batch_size={len(ds)}. Pass a smaller batch_size to silence this.",
                      stacklevel=2)
        batch_size = len(ds)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=num_workers)
