"""The overfitting explorer: how data size, regularisation and training time open or close the gap
between training and validation.

A head trained on cached features takes milliseconds per epoch, so you can afford many epochs and
many runs. Overfitting shows as training accuracy near 100% with validation well below it, and as a
validation loss that turns upward while the training loss keeps falling. More images per class
closes the gap most reliably; weight decay, dropout and label smoothing change how confident the
head becomes (watch the losses) more than how often it is right.
"""
from __future__ import annotations

import ipywidgets as W
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ...data import DataSplits
from ...plots import new_figure
from ...train import History
from ._draw import colour, epoch_axis
from ._runs import RunsExplorer
from ._training import ModelSource, TrainingSetup, one_thread

WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def first_per_class(features: TensorDataset, k: int) -> TensorDataset:
    """The first ``k`` examples of every class: growing ``k`` only ever adds examples."""
    x, y = features.tensors
    keep = torch.cat([torch.nonzero(y == c).flatten()[:k] for c in torch.unique(y)]).sort().values
    return TensorDataset(x[keep], y[keep])


class OverfittingExplorer(RunsExplorer):
    """See ``overfitting_explorer``."""

    title = "Overfitting explorer"
    css_class = "tlkit-overfitting"
    intro = ("Few images and many epochs make the head memorise: training accuracy reaches 100% while validation "
             "lags behind (the shaded gap). Change one thing at a time and press <b>Run</b>.")

    def __init__(self, data: DataSplits | None = None, model: ModelSource = "efficientnet_lite0", *,
                 image_size: int = 96, max_per_class: int = 30, val_per_class: int | None = 20,
                 per_class: int = 2, epochs: int = 60, lr: float = 1e-2, batch_size: int = 16, seed: int = 0):
        super().__init__()
        self.setup = TrainingSetup(data, model, image_size=image_size, per_class=max_per_class,
                                   val_per_class=val_per_class, seed=seed)
        self.batch_size, self.lr = batch_size, lr
        self.controls = {
            "per_class": W.IntSlider(value=min(per_class, max_per_class), min=1, max=max_per_class,
                                     description="images per class", continuous_update=False,
                                     style={"description_width": "initial"}),
            "epochs": W.IntSlider(value=epochs, min=1, max=300, description="epochs", continuous_update=False),
            "weight_decay": W.SelectionSlider(options=list(WEIGHT_DECAYS), value=0.0, description="weight decay",
                                              continuous_update=False, style={"description_width": "initial"}),
            "dropout": W.FloatSlider(value=0.0, min=0.0, max=0.9, step=0.1, description="dropout",
                                     continuous_update=False),
            "label_smoothing": W.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.05, description="label smoothing",
                                             continuous_update=False, style={"description_width": "initial"}),
        }
        self.last_model = None

    def _work(self) -> History | None:
        v = self.values
        train_all, val = self.setup.features(self)
        if self.stopped:
            return None
        train = first_per_class(train_all, v["per_class"])
        head = self.setup.fresh_head()
        # Dropout in front of the head: in training, a random share of the features is zeroed.
        model = nn.Sequential(nn.Dropout(v["dropout"]), head) if v["dropout"] > 0 else head
        label = (f"{v['per_class']}/class wd={v['weight_decay']:g} drop={v['dropout']:g} "
                 f"ls={v['label_smoothing']:g}")
        with one_thread():  # a head on features: tiny matrices (see one_thread)
            _, history = self._train(label, {**v, "images": len(train)}, model, train, val, epochs=v["epochs"],
                                     batch_size=self.batch_size, lr=self.lr, weight_decay=v["weight_decay"],
                                     label_smoothing=v["label_smoothing"], restore_best=False,
                                     seed=self.setup.seed)
        self.last_model = self.setup.with_head(model)
        return history

    # ---- showing
    def row(self, number: int, run: dict) -> dict:
        records, s = run["records"], run["settings"]
        last = records[-1] if records else None
        lowest = min(records, key=lambda r: r["val_loss"]) if records else None
        return {"run": number, "images/class": s["per_class"], "weight decay": s["weight_decay"],
                "dropout": s["dropout"], "label smoothing": s["label_smoothing"], "epochs": len(records),
                "train acc": last["train_acc"] if last else "-", "val acc": last["val_acc"] if last else "-",
                "gap": round(last["train_acc"] - last["val_acc"], 4) if last else "-",
                "lowest val loss at epoch": lowest["epoch"] if lowest else "-", "status": run["status"]}

    def figure(self):
        fig, axes = new_figure(1, 2, figsize=(8.8, 3.1), pyplot=False)
        ax_loss, ax_acc = axes.flat
        current = self.runs[-1] if self.runs else None
        for k, run in enumerate(self.runs[:-1]):  # earlier runs: faint validation accuracy only
            ax_acc.plot([r["epoch"] for r in run["records"]], [r["val_acc"] for r in run["records"]],
                        color=colour(k), alpha=0.3, linewidth=1)
        if current and current["records"]:
            k = len(self.runs) - 1
            epochs = [r["epoch"] for r in current["records"]]
            for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
                train = [r[f"train_{metric}"] for r in current["records"]]
                val = [r[f"val_{metric}"] for r in current["records"]]
                ax.plot(epochs, train, "--", color=colour(k), label="train")
                ax.plot(epochs, val, "-", color=colour(k), label="validation")
                ax.fill_between(epochs, train, val, color=colour(k), alpha=0.15, label="gap")
            lowest = min(current["records"], key=lambda r: r["val_loss"])
            ax_loss.axvline(lowest["epoch"], color="grey", linestyle=":", label="lowest val loss")
            ax_loss.legend(fontsize=7)
            ax_acc.legend(fontsize=7, loc="lower right")
            ax_acc.set_title(f"Accuracy: {current['label']}", fontsize=9)
        else:
            ax_acc.set_title("Accuracy")
        ax_loss.set_title("Loss (train dashed, validation solid)", fontsize=9)
        ax_acc.set_ylim(-0.02, 1.02)
        for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
            epoch_axis(ax)
            ax.set_ylabel(name)
        fig.tight_layout()
        return fig

    def _build_ui(self) -> W.Widget:
        c = self.controls
        return self._layout(W.HBox([c["per_class"], c["epochs"]]),
                            W.HBox([c["weight_decay"], c["dropout"], c["label_smoothing"]],
                                   layout=W.Layout(flex_flow="row wrap")))


def overfitting_explorer(data: DataSplits | None = None, model: ModelSource = "efficientnet_lite0", *,
                         image_size: int = 96, max_per_class: int = 30, val_per_class: int | None = 20,
                         per_class: int = 2, epochs: int = 60, lr: float = 1e-2, batch_size: int = 16,
                         seed: int = 0) -> OverfittingExplorer:
    """An explorer for overfitting: images per class, weight decay, dropout, label smoothing, epochs.

    The head trains on features of up to ``max_per_class`` training images per class, computed
    once (a few seconds); every run then takes about a second. From code::

        ex = tl.overfitting_explorer(data)
        ex.run(per_class=2, epochs=100)
        ex.run(per_class=30, epochs=100)
        [(r["images/class"], r["gap"]) for r in ex.results]
    """
    return OverfittingExplorer(data, model, image_size=image_size, max_per_class=max_per_class,
                               val_per_class=val_per_class, per_class=per_class, epochs=epochs, lr=lr,
                               batch_size=batch_size, seed=seed)
