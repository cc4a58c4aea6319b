"""Choosing the device, seeding, and CPU threads: the three things every experiment starts with."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

_announced = False


def get_device(prefer: str | None = None, verbose: bool = False) -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU.

    ``prefer`` forces one ("cpu", "cuda", "mps"), and ``$TLKIT_DEVICE`` does the same for a whole
    session. Asking for a device that is not there is an error, not a silent fallback.
    """
    prefer = prefer or os.environ.get("TLKIT_DEVICE") or None
    if prefer:
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but torch sees no CUDA GPU. Use device='cpu'.")
        if dev.type == "mps" and not _mps_available():
            raise RuntimeError("MPS was requested but is not available here. Use device='cpu'.")
    elif torch.cuda.is_available():
        dev = torch.device("cuda")
    elif _mps_available():
        dev = torch.device("mps")
    else:
        dev = torch.device("cpu")
    global _announced
    if verbose and not _announced:
        print(f"tlkit: using {describe_device(dev)}")
        _announced = True
    return dev


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def describe_device(dev: torch.device | str | None = None) -> str:
    """A one-line description: GPU name and memory, or CPU threads."""
    dev = torch.device(dev) if dev is not None else get_device()
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        return f"cuda:{idx} ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    if dev.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and torch (all devices) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def set_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads for torch (default: the cores this process may use).

    Oversubscribing threads (more threads than cores) makes small models on laptops slower.
    """
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS, Windows
            n = os.cpu_count() or 1
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()
