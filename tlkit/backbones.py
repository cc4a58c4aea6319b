"""Choosing a backbone: size, speed and published accuracy, side by side.

Three numbers decide most choices:
- parameters: the size of the file you ship and the memory it needs;
- latency: the milliseconds one prediction takes on *your* hardware (measured, not looked up:
  it depends on the CPU, the threads and the image size more than on the parameter count);
- ImageNet top-1 accuracy: a good predictor of how well a backbone transfers (Kornblith et al.
  2019 measured a correlation of 0.96 for fine-tuning).

Size and latency do not depend on the weights, so they can be measured offline on architectures
built with random weights (``tl.load_pretrained(name, pretrained=False)``). Published accuracies
come from torchvision's weight metadata (also offline).
"""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from .evaluation import keep_modes

# ImageNet top-1 of models whose metadata does not carry it. EfficientNet-Lite0: Google's
# published figure for the TF release the offline weights come from (~75 %; CONTENT_NOTES: 74.8).
_PUBLISHED_TOP1 = {"efficientnet_lite0": 74.8}


def published_top1(name: str) -> float | None:
    """Published ImageNet top-1 accuracy (%) of ``name``'s default weights, or None if unknown."""
    if name in _PUBLISHED_TOP1:
        return _PUBLISHED_TOP1[name]
    try:
        import torchvision.models as tvm

        meta = tvm.get_model_weights(name).DEFAULT.meta
    except (ValueError, KeyError, AttributeError):
        return None  # not a torchvision model with published weights
    return meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")


def measure_latency(model: nn.Module, image_size: int = 224, batch_size: int = 1, repeats: int = 10,
                    warmup: int = 2) -> float:
    """Median milliseconds for one forward pass of a batch of random images (eval mode, no grad).

    The first ``warmup`` passes are not timed (memory allocation, lazy initialisation). The median
    ignores a pass slowed by something else running on the machine.
    """
    if repeats < 1 or batch_size < 1 or image_size < 16:
        raise ValueError(f"Need repeats >= 1, batch_size >= 1 and image_size >= 16; got {repeats}, "
                         f"{batch_size}, {image_size}.")
    device = next(model.parameters()).device
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    times = []
    with keep_modes(model), torch.inference_mode():
        model.eval()
        for i in range(warmup + repeats):
            start = time.perf_counter()
            model(images)
            if device.type == "cuda":
                torch.cuda.synchronize()  # CUDA runs asynchronously: wait before reading the clock
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def compare_backbones(names: list[str], image_size: int = 224, repeats: int = 10) -> list[dict]:
    """One row per backbone: parameters (millions), CPU latency (ms, batch 1), published top-1 (%).

    Builds each architecture *without* pretrained weights (works offline; size and speed do not
    depend on the weights).
    """
    from .models import load_pretrained

    rows = []
    for name in names:
        model = load_pretrained(name, pretrained=False)
        rows.append({"name": name,
                     "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                     "latency_ms": measure_latency(model, image_size, repeats=repeats),
                     "imagenet_top1": published_top1(name)})
    return rows
