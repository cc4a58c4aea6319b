"""Which CPU settings make fine-tuning faster? Each choice measured against its alternative, same run.

For EfficientNet-Lite0 (the course's offline backbone) at 128 px, batch 32, on this machine:

- ``channels_last``: training step and inference with the NHWC memory layout vs the default NCHW;
- ``inference_mode`` vs ``no_grad`` for evaluation;
- torch threads: 1 vs all cores;
- per-step overhead of ``tl.fit`` (progress bar, history, schedule, BatchNorm handling) vs a bare
  PyTorch loop doing the same optimiser steps, on cached features, where the model is so small
  that any Python overhead would show.

Prints one JSON object: seconds per step (median of several repeats) and ratios.
This script is the evidence for ``tl.fit`` turning channels_last on for CPUs as well as CUDA (2026-12-02:
a training step 23 % faster on 2 cores; see benchmarks/README.md).

    python benchmarks/cpu_settings.py [--steps 6] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
from torch import nn

import tlkit as tl


def median_seconds(fn, steps: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per call of ``fn`` over ``steps`` calls (after a warm-up)."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        runs.append((time.perf_counter() - start) / steps)
    return statistics.median(runs)


def training_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, opt) -> None:
    loss = nn.functional.cross_entropy(model(images), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def layout_and_modes(steps: int, repeats: int) -> dict:
    torch.manual_seed(0)
    images = torch.randn(32, 3, 128, 128)
    labels = torch.randint(0, 8, (32,))
    result = {}
    for layout in ("contiguous", "channels_last"):
        model = tl.load_pretrained("efficientnet_lite0", num_classes=8)
        tl.freeze_batchnorm(model)
        x = images
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
            x = images.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        model.train()
        tl.set_frozen_bn_eval(model)
        result[f"train_step_{layout}"] = median_seconds(lambda: training_step(model, x, labels, opt), steps, repeats)
        model.eval()

        def infer_no_grad():
            with torch.no_grad():
                model(x)

        def infer_inference_mode():
            with torch.inference_mode():
                model(x)
        result[f"eval_no_grad_{layout}"] = median_seconds(infer_no_grad, steps, repeats)
        result[f"eval_inference_mode_{layout}"] = median_seconds(infer_inference_mode, steps, repeats)
    return result


def threads(steps: int, repeats: int) -> dict:
    model = tl.load_pretrained("efficientnet_lite0", num_classes=8).eval()
    x = torch.randn(32, 3, 128, 128)
    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    result = {}
    for n in sorted({1, cores}):
        torch.set_num_threads(n)

        def infer():
            with torch.inference_mode():
                model(x)
        result[f"eval_{n}_threads"] = median_seconds(infer, steps, repeats)
    torch.set_num_threads(before)
    result["cores"] = cores
    return result


def fit_overhead(repeats: int) -> dict:
    """Seconds for 10 epochs on 960 cached feature vectors: ``tl.fit`` vs the bare loop."""
    torch.manual_seed(0)
    features = torch.randn(960, 1280)
    labels = torch.randint(0, 8, (960,))
    data = torch.utils.data.TensorDataset(features, labels)

    def bare():
        head = nn.Linear(1280, 8)
        opt = torch.optim.AdamW(head.parameters(), lr=1e-2)
        loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=10 * len(loader))
        for _ in range(10):
            for x, y in loader:
                loss = nn.functional.cross_entropy(head(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()

    def with_tlkit():
        tl.fit(nn.Linear(1280, 8), data, None, epochs=10, lr=1e-2, batch_size=32, progress=False, verbose=False)

    return {"bare_loop_10_epochs": median_seconds(bare, 1, repeats),
            "tl_fit_10_epochs": median_seconds(with_tlkit, 1, repeats)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    tl.set_threads()
    seconds = {**layout_and_modes(args.steps, args.repeats), **threads(args.steps, args.repeats),
               **fit_overhead(args.repeats)}
    cores = seconds.pop("cores")
    ratios = {
        "train_channels_last_vs_contiguous": seconds["train_step_channels_last"] / seconds["train_step_contiguous"],
        "eval_channels_last_vs_contiguous": (seconds["eval_inference_mode_channels_last"]
                                             / seconds["eval_inference_mode_contiguous"]),
        "eval_inference_mode_vs_no_grad": (seconds["eval_inference_mode_contiguous"]
                                           / seconds["eval_no_grad_contiguous"]),
        f"eval_1_thread_vs_{cores}": seconds["eval_1_threads"] / seconds[f"eval_{cores}_threads"],
        "tl_fit_vs_bare_loop": seconds["tl_fit_10_epochs"] / seconds["bare_loop_10_epochs"],
    }
    print(json.dumps({"torch": torch.__version__, "cores": cores, "threads": torch.get_num_threads(),
                      "seconds": {k: round(v, 4) for k, v in seconds.items()},
                      "ratios": {k: round(v, 3) for k, v in ratios.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
