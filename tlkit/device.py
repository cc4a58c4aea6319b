"""Where tensors run: choosing the device, seeding, CPU threads, mixed precision and memory layout.

One meaning of ``device=None`` everywhere in tlkit: the best available device (``get_device``:
CUDA, then Apple MPS, then the CPU; ``$TLKIT_DEVICE`` overrides), and the model is moved there
(``place``). Pass ``device="cpu"`` (or ``"cuda:1"``...) to choose yourself.
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

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


def place(model: nn.Module, device: torch.device | str | None = None) -> torch.device:
    """Move ``model`` to ``device`` (None: the best available one, see ``get_device``); return it."""
    device = get_device(device)
    model.to(device)
    return device


def state_on_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights *and* buffers (e.g. BatchNorm statistics), on the CPU.

    ``model.load_state_dict(copy)`` puts them back later, on whatever device the model is on.
    """
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class Accelerator:
    """How tensors run on a device: the autocast dtype (None = fp32) and the memory layout."""

    device: torch.device
    dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def choose(cls, device: torch.device, amp: bool | str = "auto",
               channels_last: bool | str = "auto") -> Accelerator:
        """Mixed precision only on CUDA. channels_last ("auto") on CUDA and on CPUs, not on Apple MPS.

        bf16 where the GPU has it (no gradient scaling needed), else fp16 (``amp`` may force either).
        channels_last stores images as N x H x W x C: convolution kernels (cuDNN, and oneDNN on CPUs)
        run faster on it. ``benchmarks/cpu_settings.py`` measured a 2-core CPU: a training step of
        EfficientNet-Lite0 at 128 px 23 % faster, and a whole fine-tune ~40 % faster.
        """
        dtype = None
        if device.type == "cuda" and amp in ("auto", True, "bf16", "fp16"):
            bf16_ok = torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if (amp == "bf16" or (amp != "fp16" and bf16_ok)) else torch.float16
        use_cl = channels_last is True or (device.type in ("cuda", "cpu") and channels_last == "auto")
        return cls(device, dtype, use_cl)

    @classmethod
    def of(cls, model: nn.Module) -> Accelerator:
        """Plain fp32 on the device the model is on (for a model that is already placed)."""
        first = next(model.parameters(), None)
        return cls(first.device if first is not None else torch.device("cpu"))

    def prepare(self, model: nn.Module) -> None:
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def to_device(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        images = images.to(self.device, non_blocking=True)
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, (None if labels is None else labels.to(self.device, non_blocking=True))

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)
