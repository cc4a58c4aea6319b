"""Pictures of training and evaluation: curves, confusion matrices, image grids, LR range tests.

Every function returns the matplotlib ``Figure`` it drew, so that a lesson can save it, test it or
add to it. In a notebook the figure appears once below the cell (whether or not it is the cell's
last line); in a script call ``plt.show()`` as usual. Nothing here calls ``plt.show()`` itself.

pyplot is imported inside the functions: importing ``tlkit.plots`` does not pick a backend.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


class NotebookFigure(Figure):
    """A matplotlib Figure that Jupyter shows exactly once.

    Why: with the inline backend, Jupyter shows every open pyplot figure at the end of a cell *and*
    shows the cell's value, so ``history.plot()`` on the last line would appear twice. This figure
    shows itself as a PNG and then leaves pyplot, so the end-of-cell pass skips it.
    """

    def _ipython_display_(self) -> None:
        import matplotlib
        import matplotlib.pyplot as plt

        if "inline" not in matplotlib.get_backend():
            return  # other backends (ipympl widgets) show their figures themselves
        from IPython.display import Image, display

        if any(ax.images for ax in self.axes):
            # Photos compress badly as PNG (hundreds of KB a grid); JPEG keeps notebooks light.
            display(Image(figure_to_jpeg(self, close=False), format="jpeg"))
        else:
            display(Image(figure_to_png(self, close=False)))
        plt.close(self)


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6, 4), *,
               pyplot: bool = True):
    """A new figure and its ``nrows`` x ``ncols`` grid of axes (always a 2-D array: ``axes[row, col]``).

    Every figure in tlkit is made here. By default it is a pyplot figure that a notebook shows once
    below the cell (a :class:`NotebookFigure`). ``pyplot=False`` makes a plain ``Figure`` that pyplot
    never sees: the widgets draw with it from a background thread, where pyplot's global list of
    figures would let a half-drawn figure appear under some other cell. Such a figure is not shown by
    itself; render it (``fig.savefig``) instead.
    """
    if not pyplot:
        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, squeeze=False)
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, FigureClass=NotebookFigure)


def figure_to_jpeg(fig: Figure, close: bool = True, dpi: int = 80, quality: int = 82, tight: bool = True) -> bytes:
    """Render a figure to JPEG bytes (white background): small files for grids of photos."""
    return _render(fig, "jpeg", close, dpi, tight, facecolor="white", pil_kwargs={"quality": quality})


def figure_to_png(fig: Figure, close: bool = True, dpi: int = 80, tight: bool = True) -> bytes:
    """The figure as PNG bytes (used for live plots); closes it by default so it is not shown again.

    ``tight=True`` trims the white margin; a figure laid out with ``tight_layout()`` already has none.
    ``close=False`` for a plain ``Figure`` (``new_figure(pyplot=False)``) keeps pyplot out of it.
    """
    return _render(fig, "png", close, dpi, tight)


def _render(fig: Figure, fmt: str, close: bool, dpi: int, tight: bool, **savefig_kwargs) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None, **savefig_kwargs)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------- history
def plot_history(history) -> Figure:
    """Loss (left) and accuracy (right) per epoch, train vs validation, best epoch marked.

    ``history`` is a ``tlkit.History`` (or anything with ``.records``, a list of per-epoch dicts).
    Each axes holds the train line, the validation line (when there was validation data) and a
    dotted vertical line at the best epoch.
    """
    records = list(getattr(history, "records", history))
    best_epoch = getattr(history, "best_epoch", None)
    epochs = [r["epoch"] for r in records]
    fig, axes = new_figure(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes[0], ("loss", "acc")):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [r.get(f"{split}_{metric}") for r in records]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style, label=split, markersize=4)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best (epoch {best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if metric == "loss" else "accuracy")
        ax.set_title("Loss" if metric == "loss" else "Accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if epochs:
            ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------- confusion
def plot_confusion(cm, classes: Sequence[str] | None = None, normalize: bool = False) -> Figure:
    """The confusion matrix as a heat map: rows are true classes, columns predicted classes.

    ``normalize=True`` divides each row by its total, so the diagonal shows each class's recall
    (useful when classes have different sizes).
    """
    cm = np.asarray(cm)
    n = cm.shape[0]
    classes = [str(c) for c in classes] if classes is not None else [str(i) for i in range(n)]
    values = cm.astype(float)
    if normalize:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    size = min(2.5 + 0.55 * n, 14)
    fig, axes = new_figure(figsize=(size, size * 0.9))
    ax = axes[0, 0]
    ax.imshow(values, cmap="Blues", vmin=0)
    ax.set_xticks(range(n), labels=classes, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels=classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""))
    if n <= 30:  # beyond that the numbers are unreadable anyway
        threshold = values.max() / 2 if values.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{values[i, j]:.2f}" if normalize else f"{cm[i, j]:d}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] > threshold else "black")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------- images
def _to_hwc(image, mean, std) -> np.ndarray:
    """One image as an H x W x C (or H x W) array in [0, 1], undoing the normalisation."""
    array = image.detach().cpu().float().numpy() if hasattr(image, "detach") else np.asarray(image, dtype=float)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)  # C x H x W (PyTorch) -> H x W x C (matplotlib)
    if mean is not None and std is not None:
        array = array * np.asarray(std, dtype=float) + np.asarray(mean, dtype=float)
    elif array.min() < 0 or array.max() > 1.0 + 1e-6:
        # Still normalised and we were not told how: stretch to [0, 1] so that something is visible.
        array = (array - array.min()) / max(float(array.max() - array.min()), 1e-12)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return np.clip(array, 0.0, 1.0)


def _name(label, classes) -> str:
    if classes is not None and not isinstance(label, str):
        return str(classes[int(label)])
    return str(label)


def show_images(images, labels=None, preds=None, classes: Sequence[str] | None = None,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                ncols: int = 8) -> Figure:
    """A grid of images with their labels; with ``preds``, titles read "pred / true" in green or red.

    ``images``: a tensor N x C x H x W (or a list of C x H x W tensors / H x W x C arrays).
    ``mean``/``std``: the normalisation that was applied (e.g. ImageNet's), undone for display.
    Labels and predictions may be class indices (looked up in ``classes``) or names.
    The figure has one axes per image.
    """
    images = list(images)
    if not images:
        raise ValueError("show_images got no images to show.")
    ncols = max(1, min(ncols, len(images)))
    nrows = (len(images) + ncols - 1) // ncols
    fig, axes = new_figure(nrows, ncols, figsize=(1.9 * ncols, 2.1 * nrows))
    for k, ax in enumerate(axes.flat):
        if k >= len(images):
            fig.delaxes(ax)  # an empty slot in the last row
            continue
        picture = _to_hwc(images[k], mean, std)
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        ax.set_axis_off()
        if preds is not None and labels is not None:
            pred, true = _name(preds[k], classes), _name(labels[k], classes)
            ax.set_title(f"{pred} / {true}", fontsize=8, color="green" if pred == true else "red")
        elif labels is not None:
            ax.set_title(_name(labels[k], classes), fontsize=8)
        elif preds is not None:
            ax.set_title(_name(preds[k], classes), fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------ LR finder
def plot_lr_find(result) -> Figure:
    """Loss against learning rate (log scale) from ``tlkit.lr_find``, with the suggestion marked.

    Three lines: the raw loss per step (faint), the smoothed loss, and a dot at the suggestion.
    """
    fig, axes = new_figure(figsize=(6, 4))
    ax = axes[0, 0]
    ax.plot(result.lrs, result.raw_losses, color="tab:blue", alpha=0.25, label="loss per step")
    ax.plot(result.lrs, result.losses, color="tab:blue", label="smoothed loss")
    if result.suggestion is not None:
        k = int(np.argmin(np.abs(np.log(result.lrs) - np.log(result.suggestion))))
        ax.plot([result.lrs[k]], [result.losses[k]], "o", color="tab:red", markersize=8,
                label=f"suggestion: lr={result.suggestion:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test")
    if len(result.losses):
        low, high = min(result.losses), result.losses[0]
        ax.set_ylim(low - 0.1 * abs(high - low) - 1e-3, max(high, low) + 0.5 * abs(high - low) + 1e-3)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- calibration
def plot_reliability(bins, titles: Sequence[str] | None = None) -> Figure:
    """Reliability diagram: accuracy against confidence per bin, with the diagonal and the bin counts.

    ``bins``: a ``tl.reliability_bins`` result, or a list of them (one column each, e.g. before and
    after temperature scaling). Top: one bar per non-empty bin at its accuracy and the dashed
    diagonal; bars below the diagonal are over-confident, above it under-confident. Bottom: how many
    predictions fall in each bin (one bar per bin); a bin with few predictions says little. Guo et
    al. 2017 (Figure 1) draw the same two panels.
    """
    columns = list(bins) if isinstance(bins, (list, tuple)) else [bins]
    titles = list(titles) if titles is not None else [""] * len(columns)
    if not columns or len(titles) != len(columns):
        raise ValueError(f"plot_reliability needs one title per set of bins; got {len(columns)} sets of bins "
                         f"and {len(titles)} titles.")
    fig, axes = new_figure(2, len(columns), figsize=(4.2 * len(columns), 6.4))
    for k, (b, title) in enumerate(zip(columns, titles)):
        top, bottom = axes[0, k], axes[1, k]
        width = np.diff(b.edges)
        full = b.count > 0
        top.bar(b.edges[:-1][full], b.accuracy[full], width=width[full], align="edge", color="tab:blue",
                edgecolor="white", label="accuracy in the bin")
        top.plot([0, 1], [0, 1], "--", color="grey", label="calibrated")
        top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"{title + ': ' if title else ''}ECE {b.ece:.3f}")
        top.legend(fontsize=8, loc="upper left")
        bottom.bar(b.edges[:-1], b.count, width=width, align="edge", color="tab:grey", edgecolor="white")
        bottom.set(xlim=(0, 1), xlabel="confidence (top class's probability)", ylabel="predictions")
    fig.tight_layout()
    return fig


def plot_precision_recall(precision, recall, average_precision: float | None = None,
                          prevalence: float | None = None, operating_point=None, label: str = "model") -> Figure:
    """Precision against recall for one class (from ``tl.precision_recall_curve``), as steps.

    Steps, not straight lines between the points: precision between two thresholds does not change
    linearly (Davis & Goadrich 2006), and the area under the steps is the average precision.
    ``prevalence`` draws the floor of flagging at random (a dashed line); ``operating_point`` marks a
    chosen threshold: a ``tl.screening_report`` result or a (recall, precision) pair.
    """
    precision, recall = np.asarray(precision, dtype=float), np.asarray(recall, dtype=float)
    if precision.ndim != 1 or precision.shape != recall.shape or not precision.size:
        raise ValueError(f"precision and recall should be 1-D arrays of the same length; got shapes "
                         f"{precision.shape} and {recall.shape}.")
    fig, axes = new_figure(figsize=(5.5, 4.2))
    ax = axes[0, 0]
    name = label if average_precision is None else f"{label} (AP {average_precision:.3f})"
    ax.plot(np.r_[0.0, recall], np.r_[precision[0], precision], drawstyle="steps-pre", label=name)
    if prevalence is not None:
        ax.axhline(prevalence, color="grey", linestyle="--", label=f"flagging at random ({prevalence:.2f})")
    if operating_point is not None:
        r, p = ((operating_point.recall, operating_point.precision) if hasattr(operating_point, "recall")
                else operating_point)
        ax.plot([r], [p], "o", color="tab:red", markersize=8, label=f"threshold: recall {r:.2f}, precision {p:.2f}")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall (share of the class found)",
           ylabel="precision (share of flags that are right)", title="Precision-recall")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig
