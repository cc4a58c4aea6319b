"""What the learner sees while a model trains: progress bars and a live plot.

Kept apart from the training loop so that ``fit()`` stays readable: ``fit`` hands its callbacks
(``tlkit.callbacks.ProgressReport``, ``LivePlot`` below) to the loop, and this module decides how
(and whether) to show things.

- Bars come from ``tqdm.auto``: a widget in Jupyter, a text bar on stderr in a terminal.
- The live plot only draws inside Jupyter; anywhere else it does nothing. Matplotlib is imported
  only when a picture is actually drawn, so ``import tlkit.train`` stays light.
"""
from __future__ import annotations

from typing import Any

from .callbacks import Callback


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Notebook, VS Code), False in a terminal or script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    # Jupyter kernels run a ZMQInteractiveShell; the terminal IPython runs a TerminalInteractiveShell.
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(total: int, desc: str, enabled: bool = True, leave: bool = True, unit: str = "it"):
    """A tqdm bar (widget in Jupyter, text on stderr elsewhere); ``enabled=False`` shows nothing.

    A disabled tqdm bar still accepts ``update``/``set_postfix``/``close``, so the caller never
    needs an ``if progress:`` around each call.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=leave, unit=unit, disable=not enabled, dynamic_ncols=True)


def write(line: str, bars_shown: bool) -> None:
    """Print one line without breaking a text progress bar that is on screen."""
    if bars_shown:
        from tqdm.auto import tqdm

        tqdm.write(line)
    else:
        print(line)


class LivePlot(Callback):
    """Redraws the training curves after each epoch, in one output area of a Jupyter cell.

    The first ``update`` creates a display area (an IPython display handle); later updates replace
    its picture instead of adding a new one, so a 20-epoch run leaves one plot, not twenty.
    Outside Jupyter (terminal, pytest, scripts) ``update`` does nothing.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and in_notebook()
        self._handle: Any = None

    def on_epoch_end(self, run) -> None:
        self.update(run.history)

    def update(self, history) -> None:
        if not self.enabled or len(history) == 0:
            return
        from IPython.display import Image, display

        from .plots import figure_to_png, plot_history

        picture = Image(figure_to_png(plot_history(history)))  # closes the figure
        if self._handle is None:
            self._handle = display(picture, display_id=True)
        else:
            self._handle.update(picture)
