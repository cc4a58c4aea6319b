"""The freezing explorer: choose how deep fine-tuning reaches, see what that costs and what it buys.

Moving the slider changes which parts of the network learn (``tlkit.unfreeze_last``) and shows how
many parameters that is (``tlkit.freeze_summary``) at once, without training. Run fine-tunes a fresh
copy of the pretrained model with that plan and adds a row to the results table, so that plans can
be compared side by side: accuracy, seconds, parameters trained.
"""
from __future__ import annotations

import ipywidgets as W

from ...data import DataSplits
from ...freezing import count_parameters, freeze_summary, parts, set_trainable
from ...plots import new_figure
from ...train import History
from ._draw import draw_runs
from ._runs import RunsExplorer
from ._training import ModelSource, TrainingSetup


class FreezingExplorer(RunsExplorer):
    """See ``freezing_explorer``."""

    title = "Freezing explorer"
    css_class = "tlkit-freezing"
    intro = ("Slide to choose how many parts before the head also learn (0 = the head only), choose whether "
             "BatchNorm layers stay frozen, and press <b>Run</b>. Each run adds a row to the table.")

    def __init__(self, data: DataSplits | None = None, model: ModelSource = "efficientnet_lite0", *,
                 image_size: int = 96, per_class: int | None = 10, val_per_class: int | None = 10,
                 epochs: int = 3, lr: float = 1e-3, batch_size: int = 16, augment: str | list[str] = "none",
                 seed: int = 0):
        super().__init__()
        self.setup = TrainingSetup(data, model, image_size=image_size, per_class=per_class,
                                   val_per_class=val_per_class, seed=seed)
        self.batch_size, self.augment = batch_size, augment
        self.part_names = [p.name for p in parts(self.setup.base)]  # stem, blocks..., head
        body = len(self.part_names) - 1
        self.controls = {
            "trainable": W.IntSlider(value=0, min=0, max=body, description="parts trained",
                                     continuous_update=False, style={"description_width": "initial"}),
            "freeze_bn": W.Checkbox(value=True, description="keep BatchNorm frozen", indent=False),
            "lr": W.FloatLogSlider(value=lr, base=10, min=-5, max=-1, step=0.25, description="learning rate",
                                   readout_format=".0e", continuous_update=False,
                                   style={"description_width": "initial"}),
            "epochs": W.IntSlider(value=epochs, min=1, max=10, description="epochs", continuous_update=False),
        }
        self.plan_text = W.HTML()
        self.summary_box = W.HTML()
        self._plan_model = self.setup.fresh_model()  # only its requires_grad flags change
        for name in ("trainable", "freeze_bn"):
            self.controls[name].observe(lambda _: self.show_plan(), names="value")
        self.last_model = None
        self.show_plan()

    # ---- the plan, shown without training
    def plan(self) -> dict:
        """What the current settings train: part names and parameter counts."""
        n, freeze_bn = self.controls["trainable"].value, self.controls["freeze_bn"].value
        set_trainable(self._plan_model, n, freeze_bn)
        trained = self.part_names[len(self.part_names) - 1 - n:]
        return {"parts": trained, "trainable_params": count_parameters(self._plan_model, trainable_only=True),
                "total_params": count_parameters(self._plan_model), "freeze_bn": freeze_bn,
                "summary": freeze_summary(self._plan_model)}

    def show_plan(self) -> dict:
        plan = self.plan()
        share = plan["trainable_params"] / max(plan["total_params"], 1)
        self.plan_text.value = (f"Trains <b>{' + '.join(reversed(plan['parts']))}</b>: "
                                f"{plan['trainable_params']:,} of {plan['total_params']:,} parameters "
                                f"({100 * share:.1f}%)" + (", BatchNorm frozen" if plan["freeze_bn"] else
                                                           ", BatchNorm learning"))
        self.summary_box.value = plan["summary"]._repr_html_()
        return plan

    # ---- the work
    def _work(self) -> History | None:
        v = self.values
        plan = self.show_plan()
        model = set_trainable(self.setup.fresh_model(), v["trainable"], v["freeze_bn"])
        train, val = self.setup.train_set(self.augment), self.setup.val_set()
        label = f"{v['trainable']} part(s){'' if v['freeze_bn'] else ', BN learning'}"
        run, history = self._train(label, {**v, "trainable_params": plan["trainable_params"]}, model, train, val,
                                   epochs=v["epochs"], batch_size=self.batch_size, lr=v["lr"], seed=self.setup.seed)
        self.last_model = model.eval()
        return history

    # ---- showing
    def row(self, number: int, run: dict) -> dict:
        records, s = run["records"], run["settings"]
        best = max((r["val_acc"] for r in records), default=None)
        return {"run": number, "parts trained": s["trainable"], "trainable params": f"{s['trainable_params']:,}",
                "BN frozen": "yes" if s["freeze_bn"] else "no", "lr": s["lr"], "epochs": len(records),
                "train acc": records[-1]["train_acc"] if records else "-",
                "best val acc": best if best is not None else "-",
                "seconds": round(sum(r.get("seconds", 0.0) for r in records), 1), "status": run["status"]}

    def figure(self):
        fig, axes = new_figure(1, 2, figsize=(8.4, 3.0), pyplot=False)
        ax_loss, ax_acc = axes.flat
        draw_runs(ax_loss, ax_acc, self.runs)
        fig.tight_layout()
        return fig

    def _build_ui(self) -> W.Widget:
        c = self.controls
        return self._layout(W.HBox([c["trainable"], c["freeze_bn"]], layout=W.Layout(align_items="center")),
                            W.HBox([c["lr"], c["epochs"]]), self.plan_text,
                            W.Accordion(children=[self.summary_box], titles=("Which parts train",)))


def freezing_explorer(data: DataSplits | None = None, model: ModelSource = "efficientnet_lite0", *,
                      image_size: int = 96, per_class: int | None = 10, val_per_class: int | None = 10,
                      epochs: int = 3, lr: float = 1e-3, batch_size: int = 16, augment: str | list[str] = "none",
                      seed: int = 0) -> FreezingExplorer:
    """An explorer for freezing: how many parts train, BatchNorm frozen or not; a row per run.

    Every run fine-tunes a fresh copy of the pretrained ``model`` through the whole network on
    ``per_class`` images per class at ``image_size`` px (a few seconds per epoch on a laptop CPU).
    ``augment``: augmentation names for training (default none; "flip" breaks the course's arrows).
    From code::

        ex = tl.freezing_explorer(data)
        ex.set(trainable=2).plan()["trainable_params"]   # what would train, without training
        ex.run(trainable=0); ex.run(trainable=2)         # two rows in ex.results
    """
    return FreezingExplorer(data, model, image_size=image_size, per_class=per_class,
                            val_per_class=val_per_class, epochs=epochs, lr=lr, batch_size=batch_size,
                            augment=augment, seed=seed)
