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
explodes, Ctrl-C (or Jupyter's stop button) returning what was learned so far, early stopping, and
a history you can plot and save.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .device import get_device, seed_everything
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
        seed: int | None = None, verbose: bool = True,
        batch_transform: Callable | None = None,
        regularizer: Callable[[], torch.Tensor] | None = None) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs; return the ``History``.

    The optimiser is AdamW over ``tlkit.param_groups`` (only trainable parameters; ``lr_mult < 1``
    gives earlier parts smaller learning rates). The LR follows ``schedule`` and changes every batch:
    "onecycle" (warm up to ``lr`` then anneal, the usual choice for fine-tuning), "cosine" (linear
    warm-up over ``warmup`` of the steps, then cosine down to 0) or "constant" (warm-up, then ``lr``).
    After every epoch the model is evaluated on ``val`` and a CPU copy of the best weights (by
    ``monitor``; train loss when there is no ``val``; equal accuracies are decided by the loss) is
    kept, and ``restore_best`` loads it at the end.

    ``train``/``val`` may be DataLoaders or Datasets (wrapped in a DataLoader with ``batch_size``).
    ``early_stopping=n`` stops after n epochs without improvement. On CUDA, ``amp`` ("auto") uses
    bf16 (or fp16 with a gradient scaler); ``channels_last`` ("auto": on CUDA and CPUs) switches the
    model and images to a memory layout that convolutions run faster on (``Accelerator.choose``).
    Ctrl-C stops training and keeps the best weights; a NaN/inf loss stops it with advice.
    The model stays on ``device`` afterwards.

    Two hooks change what a training step does (validation is never affected):

    - ``batch_transform(images, labels) -> (images, targets)`` runs on every training batch, e.g.
      ``tlkit.data.transforms.mixup_cutmix(num_classes)``. ``targets`` may be class indices or soft
      labels (N, num_classes); the loss accepts both. On mixed batches there is no single right
      answer, so ``train_acc`` then counts a prediction as right when it names the class with the
      largest share of the mixed target: a rough progress signal, not comparable with ``val_acc``.
    - ``regularizer() -> scalar tensor`` is added to the loss of every step, e.g. ``tlkit.L2SP``.
      ``train_loss`` stays the data loss alone, so that it can be compared with ``val_loss``.
    """
    _check_arguments(epochs, lr, schedule, monitor, warmup, early_stopping)
    if seed is not None:
        seed_everything(seed)
    device = get_device(device)
    train_loader = _as_loader(train, batch_size, shuffle=True, device=device, name="train")
    val_loader = None if val is None else _as_loader(val, batch_size, shuffle=False, device=device, name="val")
    if val_loader is None:
        monitor = "train_loss" if monitor.startswith("val") else monitor
    accel = Accelerator.choose(device, amp, channels_last)
    accel.prepare(model)

    groups = make_param_groups(model, lr, lr_mult, weight_decay)
    optimizer = torch.optim.AdamW(groups)
    scheduler = make_scheduler(optimizer, schedule, epochs * len(train_loader), warmup)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    # fp16 gradients can underflow to zero; the scaler multiplies the loss first. A no-op otherwise.
    scaler = torch.amp.GradScaler(device.type, enabled=accel.dtype == torch.float16)

    history = History(monitor=monitor, groups=_describe_groups(groups))
    best = BestWeights(model, monitor)  # starts as a copy of the weights before training
    epoch_bar = _bar(epochs, "epochs", progress)
    batch_bar = _bar(len(train_loader), "batches", progress, leave=False)
    live = _live_plot(live_plot)
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            batch_bar.reset(total=len(train_loader))
            train_loss, train_acc = train_one_epoch(model, train_loader, loss_fn, optimizer, scheduler,
                                                    scaler, accel, grad_clip=grad_clip, history=history,
                                                    bar=batch_bar, batch_transform=batch_transform,
                                                    regularizer=regularizer)
            val_loss, val_acc = validate(model, val_loader, loss_fn, accel) if val_loader else (None, None)
            record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                      "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                      "seconds": time.perf_counter() - start}
            history.records.append(record)
            best.update(record, model)
            _show_epoch(record, epochs, epoch_bar, live, history, progress, verbose)
            if early_stopping is not None and epoch - best.epoch >= early_stopping:
                history.stopped_reason = "early_stopping"
                break
    except TrainingDiverged as diverged:
        best.restore(model)  # the current weights are NaN/inf garbage
        history.stopped_reason = "diverged"
        history.message = _divergence_message(diverged, lr, best)
        _tell(history.message, progress, verbose, warn=True)
    except KeyboardInterrupt:  # Ctrl-C, or the stop button in Jupyter
        history.stopped_reason = "interrupted"
    finally:
        batch_bar.close()
        epoch_bar.close()

    if history.stopped_reason != "diverged":
        if restore_best:
            best.restore(model)
        history.message = _end_message(history, best, restore_best)
        if verbose:
            _tell(history.message, progress, verbose)
    return history


def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler, scaler: torch.amp.GradScaler,
                    accel: Accelerator, *, grad_clip: float | None = None,
                    history: History | None = None, bar=None, batch_transform: Callable | None = None,
                    regularizer: Callable[[], torch.Tensor] | None = None) -> tuple[float, float]:
    """One pass over the training data, one optimiser step per batch; returns (mean loss, accuracy).

    ``batch_transform`` and ``regularizer``: see ``fit``. The returned loss is the data loss only.
    """
    model.train()
    set_frozen_bn_eval(model)  # frozen BatchNorm layers keep their pretrained running statistics
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = accel.to_device(images, labels)
        if batch_transform is not None:                   # e.g. MixUp/CutMix: soft labels
            images, labels = batch_transform(images, labels)
        with accel.autocast():
            logits = model(images)                        # 1. forward
            loss = loss_fn(logits, labels)                # 2. loss
        total = loss if regularizer is None else loss + regularizer()  # e.g. L2-SP's penalty
        if not torch.isfinite(total):
            raise TrainingDiverged(total.item(), step=len(history.step_losses) if history else 0)

        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()                    # 3. backward (gradients of the loss)
        if grad_clip is not None:
            scaler.unscale_(optimizer)                    # clip the real gradients, not scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)                            # 4. step (update the weights)
        scaler.update()
        if history is not None:
            history.step_lrs.append(optimizer.param_groups[0]["lr"])
            history.step_losses.append(loss.item())
        scheduler.step()                                  # 5. schedule (LR for the next batch)

        n = labels.size(0)
        total_loss += loss.item() * n
        hard = labels.argmax(dim=1) if labels.ndim == 2 else labels  # soft labels: the largest share
        correct += (logits.argmax(dim=1) == hard).sum().item()
        seen += n
        if bar is not None:
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", refresh=False)
            bar.update(1)
    return total_loss / max(seen, 1), correct / max(seen, 1)


def validate(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
             accel: Accelerator | None = None) -> tuple[float, float]:
    """Mean loss and accuracy on ``loader`` in eval mode (BatchNorm and dropout in inference mode)."""
    accel = accel or Accelerator(next(model.parameters()).device)
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.inference_mode():  # no gradients are recorded: faster, and less memory
        for images, labels in loader:
            images, labels = accel.to_device(images, labels)
            with accel.autocast():
                logits = model(images)
                loss = loss_fn(logits, labels)
            total_loss += loss.float().item() * labels.size(0)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += labels.size(0)
    return total_loss / max(seen, 1), correct / max(seen, 1)


# ------------------------------------------------------------------------- optimiser and schedule
def make_param_groups(model: nn.Module, lr: float, lr_mult: float = 1.0,
                      weight_decay: float = 0.0) -> list[dict]:
    """AdamW parameter groups: ``tlkit.param_groups``, or one group for models without a known head.

    ``param_groups`` needs to find the model's parts (stem, blocks, head). A hand-written model
    without a ``head``/``fc``/``classifier`` attribute still trains, with one LR for everything.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("Nothing to train: every parameter is frozen (requires_grad=False). "
                         "Call tlkit.freeze(model) to train the head, or tlkit.unfreeze(model).")
    try:
        return param_groups(model, lr, lr_mult=lr_mult, weight_decay=weight_decay)
    except ValueError:
        if lr_mult != 1.0:
            raise
    decay = [p for name, p in trainable if p.ndim > 1]
    no_decay = [p for name, p in trainable if p.ndim <= 1]  # biases and norm scales: no decay
    groups = [{"name": "all", "params": decay, "lr": lr, "weight_decay": weight_decay},
              {"name": "all.no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                   warmup: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-batch LR schedule over ``total_steps`` steps (every group keeps its relative LR).

    - "onecycle": PyTorch's OneCycleLR: from lr/25 up to lr over the first 25% of steps, then a
      cosine down to ~0 (Smith 2018). It has its own warm-up, so ``warmup`` is not used.
    - "cosine": linear warm-up over ``warmup`` x total steps, then a cosine from lr down to 0.
    - "constant": the same warm-up, then lr.
    """
    total_steps = max(total_steps, 1)
    if schedule == "onecycle":
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
        self.state = _cpu_copy(model)

    def update(self, record: dict, model: nn.Module) -> bool:
        """Keep the model's weights if this epoch beats the best so far; return whether it did."""
        new = score(record, self.monitor)
        improved = self.score is None or new > self.score
        if improved:
            self.score, self.value, self.epoch = new, record[self.monitor], record["epoch"]
            self.state = _cpu_copy(model)
        return improved

    def restore(self, model: nn.Module) -> None:
        model.load_state_dict(self.state)  # copies into the existing tensors: the device is kept


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------ divergence
class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the weights can no longer be trusted."""

    def __init__(self, loss: float, step: int):
        super().__init__(f"loss became {loss} at step {step}")
        self.loss, self.step = loss, step


def _divergence_message(err: TrainingDiverged, lr: float, best: BestWeights) -> str:
    restored = (f"the weights from epoch {best.epoch} (the best so far)" if best.epoch
                else "the weights from before training")
    return (f"Training diverged: the loss became {err.loss} at step {err.step + 1}, so training "
            f"stopped and {restored} were restored. The learning rate lr={lr:g} is probably too "
            f"high: try a lower one, e.g. lr={lr / 10:g}, or run tlkit.lr_find(model, train) to "
            "choose it.")


def _end_message(history: History, best: BestWeights, restored: bool) -> str:
    reason = {"completed": "Finished", "early_stopping": "Stopped early (no improvement)",
              "interrupted": "Interrupted"}[history.stopped_reason]
    text = f"{reason} after {len(history)} epoch(s)"
    if best.epoch and restored:
        text += f"; restored the best weights (epoch {best.epoch}, {history.monitor} {best.value:.4f})"
    elif restored and history.stopped_reason == "interrupted":
        text += "; no epoch finished, so the weights from before training were restored"
    return text + "."


# ------------------------------------------------------------------------------ devices and data
@dataclass
class Accelerator:
    """Where and how tensors run: the device, the autocast dtype (None = fp32), channels_last."""

    device: torch.device
    dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def choose(cls, device: torch.device, amp: bool | str = "auto",
               channels_last: bool | str = "auto") -> Accelerator:
        """Mixed precision only on CUDA. channels_last ("auto") on CUDA and on CPUs, not on Apple MPS.

        channels_last stores images as N x H x W x C: convolution kernels (cuDNN, and oneDNN on CPUs)
        run faster on it. ``benchmarks/cpu_settings.py`` measured a 2-core CPU: a training step of
        EfficientNet-Lite0 at 128 px 23 % faster, and a whole fine-tune ~40 % faster.
        """
        on_cuda = device.type == "cuda"
        dtype = None
        if on_cuda and amp in ("auto", True, "bf16", "fp16"):
            bf16_ok = torch.cuda.is_bf16_supported()
            dtype = torch.bfloat16 if (amp == "bf16" or (amp != "fp16" and bf16_ok)) else torch.float16
        use_cl = channels_last is True or (device.type in ("cuda", "cpu") and channels_last == "auto")
        return cls(device, dtype, use_cl)

    def prepare(self, model: nn.Module) -> None:
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def to_device(self, images: torch.Tensor, labels: torch.Tensor):
        images = images.to(self.device, non_blocking=True)
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(self.device, non_blocking=True)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


def _as_loader(data: Any, batch_size: int, shuffle: bool, device: torch.device, name: str) -> DataLoader:
    """``data`` itself if it is a DataLoader, else a DataLoader over it (in-process: no workers).

    Workers are left out on purpose: for the small in-memory data sets of the course they add
    start-up time, and in notebooks on Windows/macOS they can crash.
    """
    if isinstance(data, DataLoader):
        if len(data) == 0:
            raise ValueError(f"The {name} DataLoader yields no batches.")
        return data
    n = len(data)
    if n == 0:
        raise ValueError(f"The {name} data set is empty.")
    if batch_size > n:
        if shuffle:  # only worth a warning for training: it means one step per epoch
            warnings.warn(f"batch_size={batch_size} is larger than the {n} {name} examples; "
                          f"using batch_size={n}.", stacklevel=3)
        batch_size = n
    # A last training batch of one example breaks BatchNorm ("Expected more than 1 value"): drop it.
    drop_last = shuffle and n % batch_size == 1 and n > 1
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=0, pin_memory=device.type == "cuda")


def _check_arguments(epochs, lr, schedule, monitor, warmup, early_stopping) -> None:
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
    if early_stopping is not None and early_stopping < 1:
        raise ValueError(f"early_stopping is a patience in epochs (>= 1) or None, got {early_stopping!r}.")


# ------------------------------------------------------------------------------------- showing
def _bar(total: int, desc: str, enabled: bool, leave: bool = True):
    from .progress import progress_bar

    return progress_bar(total, desc, enabled=enabled, leave=leave, unit="epoch" if desc == "epochs" else "batch")


def _live_plot(enabled: bool):
    from .progress import LivePlot

    return LivePlot(enabled)


def _show_epoch(record: dict, epochs: int, epoch_bar, live, history: History, progress: bool,
                verbose: bool) -> None:
    """Update the epoch bar and live plot; when verbose, print one short line for the epoch."""
    postfix = {"loss": f"{record['train_loss']:.3f}", "acc": f"{record['train_acc']:.3f}"}
    if record["val_acc"] is not None:
        postfix["val_acc"] = f"{record['val_acc']:.3f}"
    epoch_bar.set_postfix(postfix, refresh=False)
    epoch_bar.update(1)
    live.update(history)
    if verbose:
        line = f"epoch {record['epoch']}/{epochs}  train_loss {record['train_loss']:.4f}  " \
               f"train_acc {record['train_acc']:.3f}"
        if record["val_acc"] is not None:
            line += f"  val_loss {record['val_loss']:.4f}  val_acc {record['val_acc']:.3f}"
        _tell(line + f"  ({record['seconds']:.1f}s)", progress, verbose)


def _tell(message: str, progress: bool, verbose: bool, warn: bool = False) -> None:
    from .progress import write

    if warn:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    if verbose:
        write(message, bars_shown=progress)
