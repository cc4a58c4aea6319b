"""Each plot returns a Figure with the axes and lines it promises (Agg backend: nothing is shown)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from tlkit.evaluation import evaluate  # noqa: E402
from tlkit.lr_finder import LRFindResult  # noqa: E402
from tlkit.plots import (NotebookFigure, new_figure, plot_confusion, plot_history,  # noqa: E402
                         plot_lr_find, show_images)
from tlkit.train import History  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def records(with_val: bool = True):
    rows = []
    for epoch, (tl, ta, vl, va) in enumerate([(1.2, 0.5, 1.0, 0.6), (0.8, 0.7, 0.7, 0.8), (0.6, 0.8, 0.75, 0.78)], 1):
        rows.append({"epoch": epoch, "train_loss": tl, "train_acc": ta, "val_loss": vl if with_val else None,
                     "val_acc": va if with_val else None, "lr": 1e-3, "seconds": 1.0})
    return rows


def test_new_figure_makes_a_grid_in_pyplot_or_outside_it():
    """Every figure comes from new_figure; with pyplot=False (widgets draw from a thread) pyplot never sees it."""
    fig, axes = new_figure(2, 3, figsize=(6, 4))
    assert isinstance(fig, NotebookFigure) and axes.shape == (2, 3) and fig.number in plt.get_fignums()
    before = plt.get_fignums()
    fig, axes = new_figure(1, 2, figsize=(8, 3), pyplot=False)
    assert type(fig) is Figure and axes.shape == (1, 2) and plt.get_fignums() == before
    assert tuple(fig.get_size_inches()) == (8, 3)


def test_plot_history_draws_loss_and_accuracy_with_best_epoch():
    history = History(records(), monitor="val_acc")
    fig = plot_history(history)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.lines) == 3  # train, val, best-epoch marker
        assert ax.lines[2].get_xdata()[0] == 2  # the best epoch (val_acc 0.8)
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy"]
    assert isinstance(history.plot(), Figure)


def test_plot_history_without_validation_has_only_train_lines():
    fig = plot_history(History(records(with_val=False), monitor="train_loss"))
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]  # train + best-epoch marker


def test_plot_confusion_writes_every_count():
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    fig = plot_confusion(cm, ["a", "b", "c"])
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    assert [t.get_text() for t in ax.texts] == [str(v) for v in cm.flatten()]
    normalised = plot_confusion(cm, ["a", "b", "c"], normalize=True)
    assert normalised.axes[0].texts[0].get_text() == "0.83"  # 5 / 6


def test_show_images_one_axes_per_image_with_pred_true_titles():
    images = torch.rand(5, 3, 8, 8)
    fig = show_images(images, labels=[0, 1, 2, 0, 1], preds=[0, 2, 2, 0, 0], classes=["x", "y", "z"], ncols=4)
    assert len(fig.axes) == 5
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1] == "z / y"
    assert fig.axes[0].title.get_color() == "green" and fig.axes[1].title.get_color() == "red"


def test_show_images_undoes_normalisation():
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    image = torch.full((3, 4, 4), -2.0)  # normalised black: (0 - 0.5) / 0.25
    fig = show_images([image], mean=mean, std=std)
    shown = fig.axes[0].images[0].get_array()
    assert np.allclose(shown, 0.0)
    assert shown.shape == (4, 4, 3)


def test_plot_lr_find_marks_the_suggestion():
    lrs = list(np.logspace(-5, 0, 20))
    losses = list(np.linspace(2.0, 1.0, 20))
    result = LRFindResult(lrs=lrs, losses=losses, raw_losses=losses, suggestion=lrs[7], min_loss_lr=lrs[-1])
    fig = plot_lr_find(result)
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and len(ax.lines) == 3  # raw, smoothed, suggestion dot
    assert ax.get_xscale() == "log"
    assert ax.lines[2].get_xdata()[0] == pytest.approx(lrs[7])
    assert isinstance(result.plot(), Figure)


def test_eval_report_plots_confusion_and_mistakes():
    torch.manual_seed(0)
    images = torch.rand(12, 3, 6, 6)
    labels = torch.arange(12) % 3
    data = torch.utils.data.TensorDataset(images, labels)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 3))
    report = evaluate(model, data)
    assert len(report.plot_confusion().axes) == 1
    wrong = len(report.most_wrong)
    assert wrong > 0
    fig = report.show_mistakes(data)
    assert len(fig.axes) == wrong
