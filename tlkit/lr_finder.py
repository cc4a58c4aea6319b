"""The learning-rate range test: a quick way to choose ``lr`` before training.

Train for a few dozen batches while the learning rate grows exponentially, from far too small
(nothing happens) to far too big (the loss explodes), and record the loss at each step (Smith
2017, popularised by fastai). A good LR sits where the loss falls fastest: large enough to learn
quickly, well before the point where it blows up.

The model is left exactly as it was: weights, BatchNorm statistics and train/eval modes are put
back afterwards, so the test does not count as training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data.loaders import make_loader
from .device import Accelerator, get_device, state_on_cpu
from .evaluation import keep_modes
from .freezing import param_groups, set_frozen_bn_eval
from .train import Step


@dataclass
class LRFindResult:
    """Learning rates tried, the (smoothed and raw) loss at each, and a suggested LR.

    ``suggestion`` is the LR where the smoothed loss falls fastest (see ``suggest_lr``);
    ``min_loss_lr`` is where the smoothed loss was lowest; ``stopped_early`` says whether the test
    stopped because the loss diverged.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float | None
    min_loss_lr: float | None
    stopped_early: bool = False

    def plot(self):
        """Loss against LR with the suggestion marked (``tlkit.plots.plot_lr_find``)."""
        from .plots import plot_lr_find

        return plot_lr_find(self)

    def __repr__(self) -> str:
        if not self.lrs:
            return "LRFindResult: no steps were run."
        end = "the loss diverged" if self.stopped_early else "the end of the range"
        text = (f"LR range test: {len(self.lrs)} steps from lr={self.lrs[0]:.1e} to {self.lrs[-1]:.1e} "
                f"(stopped at {end}).\n")
        if self.suggestion is not None:
            text += (f"Suggested lr={self.suggestion:.1e} (the loss falls fastest there); "
                     f"lowest loss at lr={self.min_loss_lr:.1e}.")
        return text


def suggest_lr(lrs: list[float], losses: list[float]) -> float | None:
    """The LR where the smoothed loss falls fastest, before its minimum.

    The rule: take the slope of loss against log(LR) at every step (``np.gradient``), look only at
    the steps up to the lowest loss (after it, the loss is heading up), and pick the most negative
    slope. Why not the lowest loss itself? There the LR is already close to the edge where training
    becomes unstable; the steepest point learns fast with a margin of safety. With fewer than 3
    steps before the minimum there is no slope to speak of, so we fall back to (lowest-loss LR)/10.
    """
    if len(lrs) == 0:
        return None
    lrs_np, losses_np = np.asarray(lrs, dtype=float), np.asarray(losses, dtype=float)
    lowest = int(np.argmin(losses_np))
    if lowest < 2:
        return float(max(lrs_np[lowest] / 10, lrs_np[0]))
    slopes = np.gradient(losses_np[: lowest + 1], np.log10(lrs_np[: lowest + 1]))
    return float(lrs_np[int(np.argmin(slopes))])


def _cycle(loader: DataLoader):
    """Batches forever: start the loader again whenever it runs out."""
    while True:
        yield from loader


def lr_find(model: nn.Module, train: DataLoader | Dataset, start_lr: float = 1e-7, end_lr: float = 10.0,
            num_steps: int = 100, batch_size: int = 32, weight_decay: float = 0.01,
            device: torch.device | str | None = None, smooth: float = 0.05, diverge_factor: float = 4.0,
            progress: bool = True) -> LRFindResult:
    """Run the LR range test on ``train`` and return the losses and a suggested learning rate.

    Step ``i`` (of ``num_steps``) uses ``lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``
    on the next batch (the loader restarts when it runs out). The loss is smoothed with an
    exponential moving average (weight ``smooth`` on the newest loss, bias-corrected), and the test
    stops once the smoothed loss exceeds ``diverge_factor`` x its lowest value. Only trainable
    parameters learn (AdamW, as in ``fit``). The model's weights, buffers and modes are restored
    afterwards; it stays on ``device``. Ctrl-C ends the test early and returns what was measured.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"Need 0 < start_lr < end_lr, got start_lr={start_lr}, end_lr={end_lr}.")
    if num_steps < 2:
        raise ValueError(f"num_steps must be at least 2, got {num_steps}.")
    device = get_device(device)
    loader = make_loader(train, batch_size, shuffle=True, name="train", device=device)
    accel = Accelerator.choose(device)
    accel.prepare(model)
    saved = state_on_cpu(model)  # weights *and* buffers (BatchNorm running statistics)
    optimizer = torch.optim.AdamW(param_groups(model, start_lr, weight_decay=weight_decay))
    step = Step(model, nn.CrossEntropyLoss(), optimizer, scheduler=None, accel=accel)
    lrs = [start_lr * (end_lr / start_lr) ** (i / (num_steps - 1)) for i in range(num_steps)]

    from .progress import progress_bar

    bar = progress_bar(num_steps, "lr_find", enabled=progress, unit="step")
    with keep_modes(model):
        model.train()
        set_frozen_bn_eval(model)
        try:
            return _range_test(step, _cycle(loader), lrs, smooth, diverge_factor, bar)
        finally:
            bar.close()
            model.load_state_dict(saved)


def _range_test(step: Step, batches, lrs: list[float], smooth: float, diverge_factor: float,
                bar) -> LRFindResult:
    """One training step per learning rate in ``lrs`` (see ``lr_find``), until the loss explodes."""
    tried, losses, raw_losses = [], [], []
    average, best, stopped_early = 0.0, math.inf, False
    try:
        for i, lr in enumerate(lrs):
            for group in step.optimizer.param_groups:
                group["lr"] = lr
            images, labels = step.accel.to_device(*next(batches))
            with step.accel.autocast():
                loss = step.loss_fn(step.model(images), labels)   # forward and loss
            if not torch.isfinite(loss):
                stopped_early = True
                break
            step.backward_and_step(loss)                           # backward, step at this LR

            # Exponential moving average, divided by (1 - beta^n) so early values are not near 0.
            average = smooth * loss.item() + (1 - smooth) * average
            smoothed = average / (1 - (1 - smooth) ** (i + 1))
            tried.append(lr)
            raw_losses.append(loss.item())
            losses.append(smoothed)
            best = min(best, smoothed)
            bar.update(1)
            if smoothed > diverge_factor * best:
                stopped_early = True
                break
    except KeyboardInterrupt:
        pass  # keep what was measured; lr_find restores the weights either way
    min_loss_lr = float(tried[int(np.argmin(losses))]) if tried else None
    return LRFindResult(lrs=tried, losses=losses, raw_losses=raw_losses, suggestion=suggest_lr(tried, losses),
                        min_loss_lr=min_loss_lr, stopped_early=stopped_early)
