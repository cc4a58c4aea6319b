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


def rank_backbones(names: list[str], data, *, image_size: int | None = None, folds: int = 5, seed: int = 0,
                   random_baseline: str | None = None, repeats: int = 5, progress: bool = True) -> list[dict]:
    """Which backbone will transfer best to ``data``? A linear probe on each one's frozen features.

    Fine-tuning every candidate to find out costs minutes to hours each. A cheaper estimate: run
    each pretrained body once over the labelled images (frozen, head removed: lesson 02's features)
    and cross-validate a linear probe (``tl.linear_probe_accuracy``) on them (``folds`` folds, stratified). The
    backbone whose features separate *your* classes best is usually the one that fine-tunes best
    (Kornblith et al. 2019 found linear-probe and fine-tuned accuracy strongly correlated across
    ImageNet models); ``benchmarks/README.md`` measures how often the ranking agrees here.

    Args:
        names: backbone names for ``tl.load_pretrained`` (e.g. the offline ``efficientnet_lite0``,
            ``_lite1``, ``_lite2``).
        data: a labelled image data set of tlkit's (e.g. ``data.train``); its transform is replaced
            by each backbone's own evaluation transform.
        image_size: the size every backbone sees (use the size you will fine-tune at); None: each
            backbone's own training size (``model.tlkit_config.input_size``).
        random_baseline: also probe this architecture with random weights (the "no transfer" row).
        repeats: timed forward passes for ``ms_per_image`` (batch 1, ``measure_latency``).

    Returns:
        one dict per backbone, best probe score first: ``name``, ``pretrained`` (False only for the
        random baseline, named ``"<architecture> (random weights)"``), ``rank``, ``probe_acc`` (mean
        cross-validated accuracy), ``probe_sd`` (its spread over the folds), ``params_m``,
        ``ms_per_image``, ``image_size``, ``seconds`` (features and probe, not the timing).
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from .data.transforms import eval_transforms
    from .features import extract_features
    from .inspection import linear_probe_accuracy
    from .models import load_pretrained

    candidates = [(name, True) for name in names] + ([(random_baseline, False)] if random_baseline else [])
    if not candidates:
        raise ValueError("rank_backbones needs at least one backbone name, e.g. ['efficientnet_lite0', "
                         "'efficientnet_lite1', 'efficientnet_lite2'].")
    counts = np.bincount(np.asarray(data.labels))
    smallest = int(counts[counts > 0].min())
    if smallest < 2 or len(counts[counts > 0]) < 2:
        raise ValueError(f"A probe needs at least 2 classes with at least 2 images each; the smallest class here has "
                         f"{smallest}. Give it more labelled images (e.g. the training and validation images together).")
    folds = min(folds, smallest)
    rows = []
    for name, pretrained in candidates:
        started = time.perf_counter()
        model = load_pretrained(name, pretrained=pretrained)
        size = image_size or model.tlkit_config.input_size[0]
        label = name if pretrained else f"{name} (random weights)"
        feats = extract_features(model, data.with_transform(eval_transforms(model.tlkit_config, size)),
                                 progress=f"{label}: features" if progress else None)
        x, y = feats.tensors[0].numpy(), feats.tensors[1].numpy()
        scores = np.array([linear_probe_accuracy(x[fit], y[fit], x[held], y[held])   # one fold each
                           for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)])
        seconds = time.perf_counter() - started
        rows.append({"name": label, "pretrained": pretrained, "probe_acc": float(scores.mean()), "probe_sd": float(scores.std()),
                     "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                     "ms_per_image": measure_latency(model, size, repeats=repeats), "image_size": size,
                     "seconds": seconds})
    rows.sort(key=lambda row: -row["probe_acc"])
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows
