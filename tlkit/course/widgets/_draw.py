"""Pictures for the widgets: curves of several runs, image grids, small HTML tables.

The figures come from the library's one figure helper with ``pyplot=False``
(``tlkit.plots.new_figure``: matplotlib's object API, never ``pyplot``): explorers draw from a
background thread while the learner keeps using the notebook, and pyplot keeps global state that
would let a half-drawn figure appear under some other cell.
"""
from __future__ import annotations

import base64
import html
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ...plots import figure_to_jpeg, figure_to_png, new_figure

DPI = 72


def to_png(fig: Figure) -> bytes:
    """A widget's figure as PNG bytes (``tlkit.plots.figure_to_png`` at the widgets' resolution)."""
    return figure_to_png(fig, close=False, dpi=DPI, tight=False)  # callers lay out with tight_layout()


def to_jpeg(fig: Figure) -> bytes:
    """Photos compress far better as JPEG than as PNG (a grid of 8 images: ~5x smaller)."""
    return figure_to_jpeg(fig, close=False, dpi=DPI, quality=80, tight=False)


def img_tag(picture: bytes | None) -> str:
    """An HTML <img> holding the PNG or JPEG itself (readable in HTML exports and on GitHub)."""
    if not picture:
        return ""
    mime = "image/jpeg" if picture[:2] == b"\xff\xd8" else "image/png"
    return f"<img src='data:{mime};base64,{base64.b64encode(picture).decode()}'/>"


def colour(k: int) -> str:
    return f"C{k % 10}"


def epoch_axis(ax) -> None:
    """Label the x axis "epoch", with whole-number ticks only, and add a light grid."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def draw_runs(ax_loss, ax_acc, runs: Sequence[dict], *, show_train: bool = True) -> None:
    """Loss and accuracy per epoch of several runs: validation solid, training dashed, one colour per run.

    Each run is a dict with ``label`` and ``records`` (per-epoch dicts as in ``tlkit.History``).
    """
    for k, run in enumerate(runs):
        records = run["records"]
        if not records:
            continue
        epochs = [r["epoch"] for r in records]
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            # a loss of exactly 0 has no place on a log scale: show it at 1e-4
            floor = 1e-4 if metric == "loss" else -1.0
            ax.plot(epochs, [max(r[f"val_{metric}"], floor) for r in records], "-o", color=colour(k),
                    markersize=3, label=f"{k + 1}: {run['label']} (val)")
            if show_train:
                ax.plot(epochs, [max(r[f"train_{metric}"], floor) for r in records], "--", color=colour(k),
                        alpha=0.6, label="train" if k == 0 else None)
    for ax, name in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        epoch_axis(ax)
        ax.set_ylabel(name)
    ax_loss.set_title("Loss (dashed: training)")
    ax_acc.set_title("Validation accuracy (solid)")
    ax_acc.set_ylim(-0.02, 1.02)
    if any(run["records"] for run in runs):
        ax_acc.legend(fontsize=7, loc="lower right")
        ax_loss.set_yscale("log")


def draw_lr_find(ax, result, marks: Sequence[tuple[float, str]] = ()) -> None:
    """The LR range test (loss against LR, log scale) with each run's LR marked."""
    if result is None or not result.lrs:
        ax.text(0.5, 0.5, "LR range test not run yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    ax.plot(result.lrs, result.raw_losses, color="grey", alpha=0.3)
    ax.plot(result.lrs, result.losses, color="black", label="smoothed loss")
    if result.suggestion is not None:
        ax.axvline(result.suggestion, color="black", linestyle=":", label=f"suggestion {result.suggestion:.0e}")
    for lr, c in marks:
        ax.axvline(lr, color=c, alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title("LR range test (lines: your runs)")
    low, high = min(result.losses), result.losses[0]
    ax.set_ylim(low - 0.1 * abs(high - low) - 1e-3, max(high, low) + 0.6 * abs(high - low) + 1e-3)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def picture(image: Any) -> np.ndarray:
    """An image tensor (C, H, W; uint8, or float normalised any way) as H x W x 3 floats in [0, 1]."""
    array = image.detach().cpu().float().numpy() if hasattr(image, "detach") else np.asarray(image, dtype=float)
    if array.ndim == 3 and array.shape[0] in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.max() > 1.0 + 1e-6 and array.min() >= 0 and array.max() <= 255:
        array = array / 255.0
    elif array.min() < 0 or array.max() > 1.0 + 1e-6:  # still normalised: stretch to see something
        array = (array - array.min()) / max(float(array.max() - array.min()), 1e-12)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.clip(array, 0.0, 1.0)


def image_grid(images: Sequence[Any], titles: Sequence[str], colours: Sequence[str] | None = None,
               ncols: int = 4, size: float = 1.9) -> Figure:
    """Images in a grid, each with a (possibly coloured) title."""
    n = max(len(images), 1)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = new_figure(nrows, ncols, figsize=(size * ncols, (size + 0.45) * nrows), pyplot=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k < len(images):
            ax.imshow(picture(images[k]))
            ax.set_title(titles[k], fontsize=8, color=(colours[k] if colours else "black"))
    fig.tight_layout()
    return fig


def html_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A small HTML table (floats with 3 decimals); empty string when there are no rows."""
    if not rows:
        return ""
    columns = list(columns or rows[0].keys())

    def cell(value: Any) -> str:
        if isinstance(value, float):
            text = f"{value:.3f}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.0e}"
        else:
            text = str(value)
        return f"<td style='text-align:right;padding:1px 6px'>{html.escape(text)}</td>"

    head = "".join(f"<th style='padding:1px 6px'>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(r.get(c, "")) for c in columns) + "</tr>" for r in rows)
    return f"<table class='tlkit-results'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """The same table as plain text (for terminals and ``print``)."""
    if not rows:
        return "(no runs yet)"
    columns = list(columns or rows[0].keys())

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.0e}"
        return str(value)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
