"""Callbacks: code that runs at fixed moments of ``tlkit.fit`` without changing the loop itself.

``fit`` keeps the textbook loop short; everything that only *watches* training, or decides when
to stop, is a callback. ``fit`` calls these methods on each callback, in order:

    on_fit_start(run)    once, before the first batch
    on_batch_end(run)    after every training step (``run.step``, ``run.batch_loss``, ``run.lr``)
    on_epoch_end(run)    after validation; ``run.record`` is the epoch's row of ``run.history``
    on_fit_end(run)      once, however training ended (``run.history.stopped_reason`` says how)

To stop training after the current epoch, set ``run.stop`` to a reason (e.g. ``"early_stopping"``).
Raising ``KeyboardInterrupt`` stops at once, like Ctrl-C (the widgets' Stop button does that).

Write your own by subclassing ``Callback`` and passing ``tl.fit(..., callbacks=[MyCallback()])``.
The ones ``fit`` itself uses: ``ProgressReport`` (bars and one line per epoch), ``LivePlot``
(``tlkit.progress``) and ``EarlyStopping``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from .train import History


@dataclass
class Run:
    """What a callback can see of a ``fit`` in progress."""

    model: nn.Module
    epochs: int
    steps_per_epoch: int
    history: History
    epoch: int = 0                  # the epoch in progress (1-based), or the one just finished
    step: int = 0                   # training steps done so far, over all epochs
    batch_loss: float | None = None  # the data loss of the last step
    lr: float | None = None         # the learning rate of the first parameter group at the last step
    record: dict | None = None      # the last finished epoch's record
    stop: str | None = None         # set by a callback: stop after this epoch, for this reason
    callbacks: list = field(default_factory=list)

    def event(self, name: str) -> None:
        """Call ``on_<name>(self)`` on every callback, in order."""
        for callback in self.callbacks:
            getattr(callback, f"on_{name}")(self)


class Callback:
    """Does nothing at every moment of ``fit``; override the methods you need."""

    def on_fit_start(self, run: Run) -> None:
        pass

    def on_batch_end(self, run: Run) -> None:
        pass

    def on_epoch_end(self, run: Run) -> None:
        pass

    def on_fit_end(self, run: Run) -> None:
        pass


class EarlyStopping(Callback):
    """Stop once ``patience`` epochs in a row brought no improvement of the history's monitored metric."""

    def __init__(self, patience: int):
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"early_stopping is a patience in epochs (>= 1) or None, got {patience!r}.")
        self.patience = patience

    def on_epoch_end(self, run: Run) -> None:
        if run.epoch - (run.history.best_epoch or 0) >= self.patience:
            run.stop = "early_stopping"


class ProgressReport(Callback):
    """Progress bars for epochs and batches (``progress``) and one printed line per epoch (``verbose``).

    The bars come from ``tlkit.progress.progress_bar`` (a widget in Jupyter, text elsewhere); a
    disabled bar accepts every call and shows nothing. The final message (finished, stopped early,
    diverged) is printed too; a divergence is also raised as a ``RuntimeWarning``.
    """

    def __init__(self, progress: bool = True, verbose: bool = True):
        self.progress, self.verbose = progress, verbose

    def on_fit_start(self, run: Run) -> None:
        from .progress import progress_bar

        self.epoch_bar = progress_bar(run.epochs, "epochs", enabled=self.progress, unit="epoch")
        self.batch_bar = progress_bar(run.steps_per_epoch, "batches", enabled=self.progress, leave=False,
                                      unit="batch")
        self._loss_sum, self._seen = 0.0, 0

    def on_batch_end(self, run: Run) -> None:
        if self._seen == run.steps_per_epoch:  # a new epoch
            self.batch_bar.reset(total=run.steps_per_epoch)
            self._loss_sum, self._seen = 0.0, 0
        self._loss_sum, self._seen = self._loss_sum + run.batch_loss, self._seen + 1
        self.batch_bar.set_postfix(loss=f"{self._loss_sum / self._seen:.3f}", refresh=False)
        self.batch_bar.update(1)

    def on_epoch_end(self, run: Run) -> None:
        r = run.record
        postfix = {"loss": f"{r['train_loss']:.3f}", "acc": f"{r['train_acc']:.3f}"}
        line = f"epoch {r['epoch']}/{run.epochs}  train_loss {r['train_loss']:.4f}  train_acc {r['train_acc']:.3f}"
        if r["val_acc"] is not None:
            postfix["val_acc"] = f"{r['val_acc']:.3f}"
            line += f"  val_loss {r['val_loss']:.4f}  val_acc {r['val_acc']:.3f}"
        self.epoch_bar.set_postfix(postfix, refresh=False)
        self.epoch_bar.update(1)
        self._seen = run.steps_per_epoch  # the next batch starts a new epoch
        self.say(line + f"  ({r['seconds']:.1f}s)")

    def on_fit_end(self, run: Run) -> None:
        self.batch_bar.close()
        self.epoch_bar.close()
        if run.history.stopped_reason == "diverged":
            warnings.warn(run.history.message, RuntimeWarning, stacklevel=4)
        self.say(run.history.message)

    def say(self, line: str) -> None:
        from .progress import write

        if self.verbose and line:
            write(line, bars_shown=self.progress)
