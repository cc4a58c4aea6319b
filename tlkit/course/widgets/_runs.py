"""An explorer that keeps every run: curves drawn live, a results table, a picture for static readers."""
from __future__ import annotations

import html
import threading
import time
from typing import Any, Callable

import ipywidgets as W

from ...train import History
from ._base import Explorer
from ._draw import html_table, img_tag, text_table, to_png
from ._training import fit_live


class RunsExplorer(Explorer):
    """Runs are kept in ``self.runs`` (a list of dicts) and shown as curves plus a results table.

    A run dict holds ``label``, ``settings`` (the controls' values), ``records`` (one dict per
    epoch, filled live) and, once finished, ``history`` (the ``tlkit.History``) and ``status``
    (``completed``, ``interrupted``, ``diverged``, ``early_stopping``).
    Subclasses say how to draw (``figure``) and what one row of the table holds (``row``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[dict] = []
        self.plot = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.table = W.HTML()
        self.clear_button = W.Button(description="Clear runs", icon="trash",
                                     tooltip="Forget all runs (the data and cached features stay)")
        self.clear_button.on_click(lambda _: self.clear())
        self._png: bytes | None = None
        self._draw_lock = threading.Lock()
        self._next_draw = 0.0  # perf_counter time after which a live redraw is allowed

    # ---- the runs
    last_model = None  # set by a subclass's run: the model as the last run left it

    @property
    def model(self):
        """The model trained by the last run (in head mode: the pretrained body with the trained head)."""
        if self.last_model is None:
            raise ValueError("No run yet: press Run (or call .run()) first.")
        return self.last_model

    @property
    def results(self) -> list[dict]:
        """The results table: one dict per run (what the widget shows under the plot)."""
        return [self.row(k, run) for k, run in enumerate(self.runs, start=1)]

    def row(self, number: int, run: dict) -> dict:
        raise NotImplementedError

    def clear(self) -> None:
        """Forget all runs."""
        if self.running:
            self.show_error("Stop the current run before clearing.")
            return
        self.runs.clear()
        self.redraw()

    def _new_run(self, label: str, settings: dict[str, Any]) -> dict:
        self._next_draw = time.perf_counter() + 1.0  # a run shorter than a second is drawn once, at its end
        run = {"label": label, "settings": dict(settings), "records": [], "live": [], "history": None,
               "status": "running"}
        self.runs.append(run)
        return run

    def _train(self, label: str, settings: dict[str, Any], model, train, val, **fit_kwargs) -> tuple[dict, History]:
        """One run: a new row, ``tlkit.fit`` with live curves, then fit's own History in the row.

        A run that ends in an error (e.g. a setting that cannot work) leaves no row; the widget shows the error.
        """
        run = self._new_run(label, settings)
        try:
            history = fit_live(self, model, train, val, on_epoch=self._on_epoch(run), **fit_kwargs)
        except Exception:
            self.runs.remove(run)
            raise
        self._finish(run, history)
        return run, history

    def _on_epoch(self, run: dict) -> Callable[[dict], None]:
        """Add each epoch's record to ``run`` and redraw, at most about once a second.

        Drawing a figure costs a fraction of a second on a laptop CPU: more than an epoch of a head
        on cached features. Redrawing after every epoch would spend more time drawing than training.
        """
        def update(record: dict) -> None:
            run["records"].append(record)
            run["live"].append(record)  # kept: the tests compare them with fit's History
            if time.perf_counter() >= self._next_draw:
                self.redraw()
        return update

    def _finish(self, run: dict, history: History) -> None:
        run["history"] = history
        run["records"] = [dict(r) for r in history.records]  # fit's own numbers replace the live ones
        run["status"] = history.stopped_reason
        self.redraw()
        messages = {"completed": "Done", "interrupted": "Stopped", "diverged": "Diverged",
                    "early_stopping": "Stopped early"}
        self.status.value = (f"{messages.get(history.stopped_reason, history.stopped_reason)}: "
                             f"run {len(self.runs)}, {len(history)} epoch(s).")
        if history.stopped_reason == "diverged":
            self.show_error(history.message)

    # ---- drawing
    def figure(self):
        raise NotImplementedError

    def redraw(self) -> None:
        """Redraw the plot and the table from ``self.runs``."""
        with self._draw_lock:
            start = time.perf_counter()
            self._png = to_png(self.figure())
            # the next live redraw waits at least 1 s, and at least twice what this one took
            self._next_draw = time.perf_counter() + max(1.0, 2 * (time.perf_counter() - start))
            self.plot.value = self._png
            self.table.value = html_table(self.results)

    def summary_html(self) -> str:
        if self._png is None:
            self.redraw()
        return (f"<p><b>{html.escape(self.title)}</b> — {len(self.runs)} run(s) so far.</p>"
                + html_table(self.results) + img_tag(self._png))

    def summary_text(self) -> str:
        return f"{self.title}: {len(self.runs)} run(s)\n" + text_table(self.results)

    def _layout(self, *rows: W.Widget) -> W.VBox:
        return W.VBox([self._header(), *rows, self._controls_row(self.clear_button), self.error_box,
                       self.plot, self.table])
