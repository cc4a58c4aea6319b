"""Training: ``fit()`` and the ``History`` it returns.

``fit`` is the loop from any deep-learning textbook, with the parts of transfer learning added:

    for each epoch:
        for each batch:
            logits = model(images)              # 1. forward
            loss = loss_fn(logits, labels)      # 2. loss
            loss.backward()                     # 3. backward
            optimizer.step()                    # 4. step
            scheduler.step()                    # 5. schedule (a new learning rate every batch)
        evaluate on the validation set, keep the best weights

Read ``train_one_epoch`` below to see exactly that. Everything else in this file is what makes the
loop safe to run in a classroom: frozen BatchNorm layers kept frozen, a clear message when the loss
explodes, Ctrl-C (or Jupyter's stop button) returning what was learned so far, the best epoch's
weights kept, and a history you can plot and save. What only watches training (progress bars, a
live plot, early stopping, the widgets' curves) is a callback: ``tlkit/callbacks.py``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .callbacks import Callback, EarlyStopping, ProgressReport, Run
from .data.loaders import make_loader
from .device import Accelerator, get_device, seed_everything, state_on_cpu
from .evaluation import model_outputs
from .freezing import param_groups, set_frozen_bn_eval

SCHEDULES = ("onecycle", "cosine", "constant")
# For each metric fit can watch: does a bigger value mean better?
MONITORS = {"val_acc": True, "val_loss": False, "train_acc": True, "train_loss": False}


def score(record: dict, monitor: str) -> tuple[float, ...]:
    """How good an epoch is by ``monitor``, as a tuple where bigger is better.

    Accuracy is coarse on a small validation set (40 images: steps of 2.5%), so several epochs often
    tie; among those, the one with the lower loss of the same split wins.
    """
    if MONITORS[monitor]:  # an accuracy
        return (record[monitor], -record[monitor.replace("_acc", "_loss")])
    return (-record[monitor],)
COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


# ---------------------------------------------------------------------------------------- History
@dataclass
class History:
    """What happened during ``fit``: one record (a dict) per epoch, and why training stopped.

    ``history.records`` is the list of records; ``history[0]`` is the first, ``history["val_acc"]``
    the validation accuracy of every epoch. ``best_epoch``/``best`` follow the metric named by
    ``monitor``. ``step_lrs``/``step_losses`` hold the learning rate and loss of every batch (to
    see the schedule), and ``groups`` the parameter groups (name, LR, weight decay, size).
    """

    records: list[dict] = field(default_factory=list)
    monitor: str = "val_acc"
    stopped_reason: str = "completed"
    message: str = ""
    step_lrs: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __getitem__(self, key: int | slice | str):
        if isinstance(key, str):  # a column: history["val_acc"] -> [0.61, 0.78, ...]
            if key not in COLUMNS:
                raise KeyError(f"No column {key!r}; the columns are {COLUMNS}.")
            return [r[key] for r in self.records]
        return self.records[key]

    @property
    def best_epoch(self) -> int | None:
        """The epoch with the best ``monitor`` value (the first one, on ties); None if no epoch ran."""
        best = self.best
        return None if best is None else best["epoch"]

    @property
    def best(self) -> dict | None:
        """The record of the best epoch (see ``score`` for how epochs are compared)."""
        scored = [r for r in self.records if r.get(self.monitor) is not None]
        if not scored:
            return None
        return max(scored, key=lambda r: score(r, self.monitor))  # max returns the first of equals

    @property
    def total_seconds(self) -> float:
        return float(sum(r["seconds"] for r in self.records))

    # ---- saving and loading
    def to_dict(self) -> dict:
        return {"records": [dict(r) for r in self.records], "monitor": self.monitor,
                "stopped_reason": self.stopped_reason, "message": self.message,
                "best_epoch": self.best_epoch, "step_lrs": list(self.step_lrs),
                "step_losses": list(self.step_losses), "groups": [dict(g) for g in self.groups]}

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(records=[dict(r) for r in data["records"]], monitor=data.get("monitor", "val_acc"),
                   stopped_reason=data.get("stopped_reason", "completed"), message=data.get("message", ""),
                   step_lrs=list(data.get("step_lrs", [])), step_losses=list(data.get("step_losses", [])),
                   groups=[dict(g) for g in data.get("groups", [])])

    @classmethod
    def from_json(cls, path: str | Path) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))

    # ---- showing
    def plot(self):
        """Loss and accuracy curves (see ``tlkit.plots.plot_history``); returns the Figure."""
        from .plots import plot_history

        return plot_history(self)

    def _cells(self, record: dict) -> list[str]:
        def fmt(key):
            value = record.get(key)
            if value is None:
                return "-"
            if key == "epoch":
                return str(value)
            if key == "lr":
                return f"{value:.2e}"
            return f"{value:.1f}" if key == "seconds" else f"{value:.4f}"
        return [fmt(k) for k in COLUMNS]

    def _summary(self) -> str:
        best = self.best
        text = f"stopped: {self.stopped_reason}"
        if best is not None:
            text += f"; best epoch {best['epoch']} ({self.monitor} {best[self.monitor]:.4f})"
        return text + f"; {self.total_seconds:.1f}s in total"

    def __repr__(self) -> str:
        widths = [5, 10, 9, 8, 7, 8, 7]
        lines = ["  ".join(f"{c:>{w}}" for c, w in zip(COLUMNS, widths))]
        best_epoch = self.best_epoch
        for r in self.records:
            mark = " *" if r["epoch"] == best_epoch else ""
            lines.append("  ".join(f"{c:>{w}}" for c, w in zip(self._cells(r), widths)) + mark)
        lines.append(self._summary())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        best_epoch = self.best_epoch
        head = "".join(f"<th>{c}</th>" for c in COLUMNS)
        rows = "".join(
            ("<tr style='font-weight:bold'>" if r["epoch"] == best_epoch else "<tr>")
            + "".join(f"<td style='text-align:right'>{c}</td>" for c in self._cells(r)) + "</tr>"
            for r in self.records
        )
        return f"<table><tr>{head}</tr>{rows}</table><p>{self._summary()}</p>"


# --------------------------------------------------------------------------------------- the loop
def fit(model: nn.Module, train: DataLoader | Dataset, val: DataLoader | Dataset | None = None,
        epochs: int = 5, lr: float = 1e-3, *, batch_size: int = 32, weight_decay: float = 0.01,
        schedule: str = "onecycle", warmup: float = 0.1, lr_mult: float = 1.0,
        label_smoothing: float = 0.0, grad_clip: float | None = None,
        early_stopping: int | None = None, restore_best: bool = True, monitor: str = "val_acc",
        device: torch.device | str | None = None, amp: bool | str = "auto",
        channels_last: bool | str = "auto", progress: bool = True, live_plot: bool = False,
        seed: int | None = None, verbose: bool = True, batch_transform: Callable | None = None,
        penalty: Callable[[], torch.Tensor] | None = None, class_weights: str | list | torch.Tensor | None = None,
        callbacks: list[Callback] = ()) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs; return the ``History``.

    AdamW over ``tlkit.param_groups`` (trainable parameters only; ``lr_mult < 1``: smaller LRs for
    earlier parts); the LR follows ``schedule`` every batch (``make_scheduler``). After every epoch
    the model is evaluated on ``val``, the best epoch's weights (by ``monitor``; equal accuracies
    decided by the loss; train loss without ``val``) are kept, and ``restore_best`` loads them at the
    end. ``train``/``val``: DataLoaders or Datasets (``tlkit.make_loader`` batches them).
    ``early_stopping=n``: stop after n epochs without improvement. ``device``: see ``tlkit.device``;
    ``amp`` and ``channels_last``: see ``tlkit.device.Accelerator``. Ctrl-C keeps the best weights;
    a NaN/inf loss stops training with advice. ``callbacks`` run after every batch and epoch
    (``tlkit/callbacks.py``). ``batch_transform`` (e.g. MixUp) and ``penalty`` (e.g. ``tl.L2SP``)
    change the training step: see ``Step``. ``class_weights``: one loss weight per class, or
    ``"balanced"`` (``balanced_class_weights`` of the training labels), so that a rare class counts as
    much as a common one; the validation loss is weighted the same way.
    """
    _check_arguments(epochs, lr, schedule, monitor, warmup)
    if seed is not None:
        seed_everything(seed)
    device = get_device(device)
    train_loader = make_loader(train, batch_size, shuffle=True, name="train", device=device)
    val_loader = None if val is None else make_loader(val, batch_size, name="val", device=device)
    if val_loader is None and monitor.startswith("val"):
        monitor = "train_loss"
    accel = Accelerator.choose(device, amp, channels_last)
    accel.prepare(model)
    optimizer = torch.optim.AdamW(param_groups(model, lr, lr_mult=lr_mult, weight_decay=weight_decay))
    scheduler = make_scheduler(optimizer, schedule, epochs * len(train_loader), warmup)
    weight = None if class_weights is None else loss_weights(class_weights, train).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    history = History(monitor=monitor, groups=_describe_groups(optimizer.param_groups))
    best = BestWeights(model, monitor)  # starts as a copy of the weights before training
    run = Run(model, epochs, len(train_loader), history,
              callbacks=_standard_callbacks(progress, verbose, live_plot, early_stopping) + list(callbacks))
    step = Step(model, loss_fn, optimizer, scheduler, accel, grad_clip, batch_transform, penalty)
    run.event("fit_start")
    try:
        for epoch in range(1, epochs + 1):
            run.epoch, start = epoch, time.perf_counter()
            train_loss, train_acc = train_one_epoch(step, train_loader, run)
            val_loss, val_acc = validate(model, val_loader, loss_fn, accel) if val_loader else (None, None)
            run.record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                          "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                          "seconds": time.perf_counter() - start}
            history.records.append(run.record)
            best.update(run.record, model)
            run.event("epoch_end")
            if run.stop:
                history.stopped_reason = run.stop
                break
    except TrainingDiverged as diverged:
        best.restore(model)  # the current weights are NaN/inf garbage
        history.stopped_reason = "diverged"
        history.message = _divergence_message(diverged, run.step, lr, best)
    except KeyboardInterrupt:  # Ctrl-C, the stop button in Jupyter, or a widget's Stop
        history.stopped_reason = "interrupted"
    if history.stopped_reason != "diverged":
        if restore_best:
            best.restore(model)
        history.message = _end_message(history, best, restore_best)
    run.event("fit_end")
    return history


def training_labels(train: DataLoader | Dataset) -> tuple[torch.Tensor, list[str] | None]:
    """The class index of every training example (without loading an image or a text), and the
    class names where the data set has them. Works for tlkit's data sets and a ``TensorDataset``."""
    ds = train.dataset if isinstance(train, DataLoader) else train
    if hasattr(ds, "labels"):
        labels = ds.labels
    elif isinstance(ds, torch.utils.data.TensorDataset) and len(ds.tensors) >= 2:
        labels = ds.tensors[1]
    else:
        raise ValueError(f"Cannot read the labels of a {type(ds).__name__} without loading every example; "
                         "pass class_weights as a list with one weight per class instead of 'balanced'.")
    return torch.as_tensor(labels).long().flatten(), getattr(ds, "classes", None)


def balanced_class_weights(labels, num_classes: int | None = None) -> torch.Tensor:
    """One weight per class, n / (classes x the class's count): a rare class weighs as much as a common one.

    With these weights every class contributes the same total to the loss, whatever its count; it is
    scikit-learn's ``class_weight="balanced"`` rule. A class without examples cannot be weighted.
    """
    labels = torch.as_tensor(labels).long().flatten()
    num_classes = num_classes or int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=num_classes).float()
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"Classes {missing} have no training examples, so no weight can balance them; "
                         "add examples of every class or drop the empty ones.")
    return len(labels) / (num_classes * counts)


def loss_weights(class_weights: str | list | torch.Tensor, train: DataLoader | Dataset) -> torch.Tensor:
    """``fit``'s ``class_weights`` argument as a float tensor, checked against the training data."""
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights must be 'balanced' or one number per class, got {class_weights!r}.")
        labels, classes = training_labels(train)
        return balanced_class_weights(labels, len(classes) if classes else None)
    weights = torch.as_tensor(class_weights, dtype=torch.float32).flatten()
    if not (len(weights) and torch.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
        raise ValueError(f"class_weights must be non-negative numbers, one per class, not all zero; got {class_weights!r}.")
    try:
        labels, classes = training_labels(train)
    except ValueError:
        return weights  # labels unknown here; the loss checks the count on the first batch
    expected = len(classes) if classes else int(labels.max()) + 1
    if len(weights) != expected:
        raise ValueError(f"class_weights has {len(weights)} numbers but the training data has {expected} classes: "
                         "give one weight per class, in the order of the class indices.")
    return weights


class Step:
    """One training step: forward, loss, backward, optimiser step, schedule (see ``train_one_epoch``).

    Two hooks change what a step does (validation is never affected):

    - ``batch_transform(images, labels) -> (images, targets)`` runs on every training batch, e.g.
      ``tlkit.data.transforms.mixup_cutmix(num_classes)``. ``targets`` may be class indices or soft
      labels (N, num_classes); the loss accepts both. On mixed batches there is no single right
      answer, so ``train_acc`` then counts a prediction as right when it names the class with the
      largest share of the mixed target: a rough progress signal, not comparable with ``val_acc``.
    - ``penalty() -> scalar tensor`` is added to the loss of every step, e.g. ``tlkit.L2SP``.
      ``train_loss`` stays the data loss alone, so that it can be compared with ``val_loss``.

    ``grad_clip`` caps the gradients' norm. On CUDA with fp16, a gradient scaler multiplies the loss
    first so that small gradients do not underflow to zero (a no-op otherwise).
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                 accel: Accelerator, grad_clip: float | None = None, batch_transform: Callable | None = None,
                 penalty: Callable[[], torch.Tensor] | None = None):
        self.model, self.loss_fn, self.optimizer, self.scheduler, self.accel = model, loss_fn, optimizer, scheduler, accel
        self.grad_clip, self.batch_transform, self.penalty = grad_clip, batch_transform, penalty
        self.scaler = torch.amp.GradScaler(accel.device.type, enabled=accel.dtype == torch.float16)

    def backward_and_step(self, loss: torch.Tensor) -> None:
        """Backward pass and weight update, through the gradient scaler (and clipping, if asked)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)       # clip the real gradients, not scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()


def train_one_epoch(step: Step, loader: DataLoader, run: Run | None = None) -> tuple[float, float]:
    """One pass over the training data, one optimiser step per batch; returns (mean loss, accuracy).

    The returned loss is the data loss only (without ``step.penalty``).
    """
    model, accel = step.model, step.accel
    model.train()
    set_frozen_bn_eval(model)  # frozen BatchNorm layers keep their pretrained running statistics
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = accel.to_device(images, labels)
        if step.batch_transform is not None:              # e.g. MixUp/CutMix: soft labels
            images, labels = step.batch_transform(images, labels)
        with accel.autocast():
            logits = model(images)                        # 1. forward
            loss = step.loss_fn(logits, labels)           # 2. loss
        total = loss if step.penalty is None else loss + step.penalty()  # e.g. L2-SP's penalty
        if not torch.isfinite(total):
            raise TrainingDiverged(total.item())
        step.backward_and_step(total)                     # 3. backward and 4. step
        lr = step.optimizer.param_groups[0]["lr"]
        step.scheduler.step()                             # 5. schedule (LR for the next batch)

        n = labels.size(0)
        total_loss += loss.item() * n
        hard = labels.argmax(dim=1) if labels.ndim == 2 else labels  # soft labels: the largest share
        correct += (logits.argmax(dim=1) == hard).sum().item()
        seen += n
        if run is not None:
            run.step, run.batch_loss, run.lr = run.step + 1, loss.item(), lr
            run.history.step_lrs.append(lr)
            run.history.step_losses.append(run.batch_loss)
            run.event("batch_end")
    return total_loss / max(seen, 1), correct / max(seen, 1)


def validate(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
             accel: Accelerator | None = None) -> tuple[float, float]:
    """Mean loss and accuracy on ``loader`` (``tlkit.evaluation.model_outputs``: eval mode, no gradients)."""
    logits, labels = model_outputs(model, loader, accel=accel or Accelerator.of(model))
    return loss_fn(logits, labels).item(), (logits.argmax(dim=1) == labels).float().mean().item()


def _standard_callbacks(progress: bool, verbose: bool, live_plot: bool, early_stopping: int | None) -> list:
    from .progress import LivePlot

    callbacks = [ProgressReport(progress, verbose), LivePlot(live_plot)]
    return callbacks + ([EarlyStopping(early_stopping)] if early_stopping is not None else [])


# ------------------------------------------------------------------------------------- schedule
def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                   warmup: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-batch LR schedule over ``total_steps`` steps (every group keeps its relative LR).

    - "onecycle": PyTorch's OneCycleLR: from lr/25 up to lr over the first 25% of steps, then a
      cosine down to ~0 (Smith 2018). It has its own warm-up, so ``warmup`` is not used. It needs
      at least 5 steps (with fewer, PyTorch's version trains at ~0 or divides by zero).
    - "cosine": linear warm-up over ``warmup`` x total steps, then a cosine from lr down to 0.
    - "constant": the same warm-up, then lr.
    """
    total_steps = max(total_steps, 1)
    if schedule == "onecycle":
        if total_steps < 5:  # its warm-up is a quarter of the steps: with fewer than 5 there is none
            raise ValueError(f"The one-cycle schedule needs at least 5 training steps; this run has {total_steps} "
                             "(epochs x batches per epoch). Train for more epochs, use more images or a smaller "
                             "batch_size, or choose the 'cosine' schedule.")
        peak_lrs = [g["lr"] for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak_lrs, total_steps=total_steps,
                                                   pct_start=0.25)
    warmup_steps = int(round(warmup * total_steps))

    def factor(step: int) -> float:  # the LR at this step, as a fraction of the peak LR
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _describe_groups(groups: list[dict]) -> list[dict]:
    return [{"name": g.get("name", str(i)), "lr": g["lr"], "weight_decay": g.get("weight_decay", 0.0),
             "params": sum(p.numel() for p in g["params"])} for i, g in enumerate(groups)]


# ------------------------------------------------------------------------------- best weights
class BestWeights:
    """A CPU copy of the weights (and buffers) from the best epoch so far.

    It starts with the weights from before training (epoch 0), so that there is always something
    sensible to go back to, e.g. when the loss explodes in the first epoch.
    """

    def __init__(self, model: nn.Module, monitor: str):
        self.monitor = monitor
        self.score: tuple[float, ...] | None = None
        self.value: float | None = None  # the monitored metric at the best epoch
        self.epoch = 0
        self.state = state_on_cpu(model)

    def update(self, record: dict, model: nn.Module) -> bool:
        """Keep the model's weights if this epoch beats the best so far; return whether it did."""
        new = score(record, self.monitor)
        improved = self.score is None or new > self.score
        if improved:
            self.score, self.value, self.epoch = new, record[self.monitor], record["epoch"]
            self.state = state_on_cpu(model)
        return improved

    def restore(self, model: nn.Module) -> None:
        model.load_state_dict(self.state)  # copies into the existing tensors: the device is kept


# ------------------------------------------------------------------------------------ divergence
class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the weights can no longer be trusted."""

    def __init__(self, loss: float):
        super().__init__(f"loss became {loss}")
        self.loss = loss


def _divergence_message(err: TrainingDiverged, steps_done: int, lr: float, best: BestWeights) -> str:
    restored = (f"the weights from epoch {best.epoch} (the best so far)" if best.epoch
                else "the weights from before training")
    return (f"Training diverged: the loss became {err.loss} at step {steps_done + 1}, so training "
            f"stopped and {restored} were restored. The learning rate lr={lr:g} is probably too "
            f"high: try a lower one, e.g. lr={lr / 10:g}, or run tlkit.lr_find(model, train) to "
            "choose it.")


def _end_message(history: History, best: BestWeights, restored: bool) -> str:
    reason = {"completed": "Finished", "early_stopping": "Stopped early (no improvement)",
              "interrupted": "Interrupted"}.get(history.stopped_reason, f"Stopped ({history.stopped_reason})")
    text = f"{reason} after {len(history)} epoch(s)"
    if best.epoch and restored:
        text += f"; restored the best weights (epoch {best.epoch}, {history.monitor} {best.value:.4f})"
    elif restored and history.stopped_reason == "interrupted":
        text += "; no epoch finished, so the weights from before training were restored"
    return text + "."


def _check_arguments(epochs, lr, schedule, monitor, warmup) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}.")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}. Typical values: 1e-3 for a new head, "
                         "1e-4 when fine-tuning the whole network.")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {tuple(MONITORS)}, got {monitor!r}.")
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup is a fraction of the training steps in [0, 1), got {warmup!r}.")
