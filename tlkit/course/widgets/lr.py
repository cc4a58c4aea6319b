"""The learning-rate explorer: run short fine-tunes at several learning rates and compare the curves.

What to look for: too small an LR barely moves the loss; a good one brings it down within a few
epochs; too large a one makes it jump about or explode, and when the body trains it can wipe out
what the pretrained network knew. The LR range test (``tlkit.lr_find``) predicts all of this in a
few dozen steps: each run's LR is drawn on its curve.
"""
from __future__ import annotations

import contextlib

import ipywidgets as W

from ...data import DataSplits
from ...freezing import set_trainable
from ...lr_finder import LRFindResult, lr_find
from ...plots import new_figure
from ...train import SCHEDULES, History
from ._draw import colour, draw_lr_find, draw_runs
from ._runs import RunsExplorer
from ._training import ModelSource, TrainingSetup, one_thread


class LRExplorer(RunsExplorer):
    """See ``lr_explorer``."""

    title = "Learning-rate explorer"
    css_class = "tlkit-lr"
    intro = ("Pick a learning rate (log scale) and a schedule, then press <b>Run</b>: every run is added "
             "to the plots. Try a tiny LR, a good one and a huge one, and find each on the LR range test.")

    def __init__(self, data: DataSplits | None = None, model: ModelSource = "efficientnet_lite0", *,
                 train: str | int = "head", image_size: int = 96, per_class: int | None = 10,
                 val_per_class: int | None = 10, epochs: int | None = None, batch_size: int = 16,
                 freeze_bn: bool = True, seed: int = 0):
        super().__init__()
        if not (train in ("head", "all") or (isinstance(train, int) and train >= 0)):
            raise ValueError(f"train must be 'head' (cached features), 'all', or how many parts before the "
                             f"head also train (an int >= 0), got {train!r}.")
        self.setup = TrainingSetup(data, model, image_size=image_size, per_class=per_class,
                                   val_per_class=val_per_class, seed=seed)
        self.train, self.batch_size, self.freeze_bn = train, batch_size, freeze_bn
        head = train == "head"
        self.controls = {
            "lr": W.FloatLogSlider(value=1e-2 if head else 1e-3, base=10, min=-5, max=1 if head else 0, step=0.25,
                                   description="learning rate", readout_format=".1e", continuous_update=False,
                                   style={"description_width": "initial"}),
            "schedule": W.Dropdown(options=list(SCHEDULES), value="onecycle", description="schedule"),
            "epochs": W.IntSlider(value=epochs or (8 if head else 3), min=1, max=40 if head else 10,
                                  description="epochs", continuous_update=False),
        }
        self.lr_find_result: LRFindResult | None = None
        self.lr_find_button = W.Button(description="LR range test", icon="search",
                                       tooltip="Run tlkit.lr_find: the loss while the LR grows step by step")
        self.lr_find_button.on_click(lambda _: self.start(self._find_lr))
        self.last_model = None

    # ---- the Python API
    def find_lr(self) -> LRFindResult | None:
        """Run the LR range test now (in this thread) and add its curve to the plot."""
        return self._execute(raise_errors=True, work=self._find_lr)

    # ---- the work
    def _start_model_and_data(self):
        """A fresh model to train, and its training and validation data."""
        if self.train == "head":
            train, val = self.setup.features(self)
            return self.setup.fresh_head(), train, val
        model = set_trainable(self.setup.fresh_model(), self.train, self.freeze_bn)
        return model, self.setup.train_set(), self.setup.val_set()

    def _find_lr(self, redraw: bool = True) -> LRFindResult | None:
        model, train, _ = self._start_model_and_data()
        if self.stopped:
            return None
        head = self.train == "head"
        steps = 100 if head else 40
        self.begin(steps, "LR range test: the LR grows every step until the loss explodes...")
        handle = model.register_forward_hook(self.tick_hook)
        try:
            with one_thread() if head else contextlib.nullcontext():
                result = lr_find(model, train, start_lr=1e-6, end_lr=10.0 if head else 1.0, num_steps=steps,
                                 batch_size=self.batch_size, progress=False)
        finally:
            handle.remove()
        self.lr_find_result = result
        if redraw:
            self.redraw()
        if self.stopped or result.suggestion is None:
            self.status.value = f"LR range test stopped after {len(result.lrs)} step(s)."
        else:
            self.status.value = f"LR range test done: suggestion {result.suggestion:.1e}."
        return result

    def _work(self) -> History | None:
        lr, schedule, epochs = self.controls["lr"].value, self.controls["schedule"].value, self.controls["epochs"].value
        if self.train == "head" and self.lr_find_result is None:
            self._find_lr(redraw=False)  # costs milliseconds on cached features; drawn with the run
        if self.stopped:
            return None
        model, train, val = self._start_model_and_data()
        if self.stopped:
            return None
        with one_thread() if self.train == "head" else contextlib.nullcontext():
            _, history = self._train(f"lr={lr:.0e} {schedule}", self.values, model, train, val, epochs=epochs,
                                     batch_size=self.batch_size, lr=lr, schedule=schedule, seed=self.setup.seed)
        self.last_model = self.setup.with_head(model) if self.train == "head" else model.eval()
        return history

    # ---- showing
    def row(self, number: int, run: dict) -> dict:
        records, s = run["records"], run["settings"]
        best = max((r["val_acc"] for r in records), default=None)
        return {"run": number, "lr": s["lr"], "schedule": s["schedule"], "epochs": len(records),
                "final train loss": records[-1]["train_loss"] if records else "-",
                "final val loss": records[-1]["val_loss"] if records else "-",
                "best val acc": best if best is not None else "-", "status": run["status"]}

    def figure(self):
        fig, axes = new_figure(2, 2, figsize=(8.4, 6.0), pyplot=False)
        ax_loss, ax_acc, ax_find, ax_sched = axes.flat
        draw_runs(ax_loss, ax_acc, self.runs)
        draw_lr_find(ax_find, self.lr_find_result,
                     [(run["settings"]["lr"], colour(k)) for k, run in enumerate(self.runs)])
        last = next((r for r in reversed(self.runs) if r["history"] is not None), None)
        if last is not None and last["history"].step_lrs:
            k = self.runs.index(last)
            ax_sched.plot(last["history"].step_lrs, color=colour(k))
            ax_sched.set_yscale("log")
            ax_sched.set_xlabel("training step")
            ax_sched.set_ylabel("learning rate (head)")
            ax_sched.set_title(f"Schedule of the last run ({last['settings']['schedule']})")
            ax_sched.grid(alpha=0.3)
        else:
            ax_sched.set_axis_off()
        fig.tight_layout()
        return fig

    def _build_ui(self) -> W.Widget:
        c = self.controls
        what = ("the head on cached features" if self.train == "head" else
                "the whole network" if self.train == "all" else f"the head and the last {self.train} part(s)")
        info = W.HTML(f"<span style='font-size:90%'>Trains {what} on {self.setup.per_class or 'all'} images per "
                      f"class at {self.setup.image_size} px.</span>")
        return self._layout(W.HBox([c["lr"], c["schedule"], c["epochs"]], layout=W.Layout(flex_flow="row wrap")),
                            W.HBox([self.lr_find_button, info], layout=W.Layout(align_items="center")))


def lr_explorer(data: DataSplits | None = None, model: ModelSource = "efficientnet_lite0", *,
                train: str | int = "head", image_size: int = 96, per_class: int | None = 10,
                val_per_class: int | None = 10, epochs: int | None = None, batch_size: int = 16,
                freeze_bn: bool = True, seed: int = 0) -> LRExplorer:
    """An explorer for the learning rate and its schedule (Run / Stop / LR range test buttons).

    ``data``: a ``tlkit.DataSplits`` (default: ``tl.course_data()``); ``model``: a model name, a
    model or a function returning one. ``train="head"`` trains only the new head on cached features
    (a run takes about a second); an int n also trains the last n parts through the body, and
    ``"all"`` the whole network (seconds to minutes: keep ``per_class`` small). From code::

        ex = tl.lr_explorer(data)
        ex.find_lr()                     # the LR range test
        ex.run(lr=1e-3); ex.run(lr=1.0)  # two runs, overlaid
        ex.results                       # the table, as a list of dicts
        ex                               # show it (the last line of a cell)
    """
    return LRExplorer(data, model, train=train, image_size=image_size, per_class=per_class,
                      val_per_class=val_per_class, epochs=epochs, batch_size=batch_size,
                      freeze_bn=freeze_bn, seed=seed)
