"""What every widget shares: controls you can set from code, an error box, a Run/Stop pair that
works in a background thread, a progress bar, and a picture for readers without a live kernel.

Why a thread: a cell that trains blocks the kernel, so a click on Stop would only arrive after
training had ended. The Run button starts the work in a thread instead; the kernel stays free to
receive the click (this needs ipykernel >= 7.4, whose widget updates from threads reach the browser).
From code, ``run(...)`` does the same work in the calling thread and returns the result: that is
how lessons, graders and tests drive an explorer, and it needs no browser.

Why a picture: a notebook opened without a running kernel (GitHub, an HTML export, a terminal)
cannot draw a widget and shows "Loading widget..." instead. Every widget here also offers an HTML
summary of its current state (results table and plot), which those readers show instead.
"""
from __future__ import annotations

import html
import threading
from typing import Any, Callable

import ipywidgets as W

ERROR_STYLE = "color:#a00000;border:1px solid #a00000;border-radius:4px;padding:4px 8px;margin:4px 0"


class Panel:
    """A widget with named controls, an error box, and a static fallback (no Run button)."""

    title = "Panel"
    intro = ""
    css_class = "tlkit-widget"

    def __init__(self) -> None:
        self.controls: dict[str, W.ValueWidget] = {}
        self.error_box = W.HTML()
        self.last_error: str | None = None
        self._ui: W.Widget | None = None

    # ---- the Python API: setting controls from code
    def set(self, **values: Any) -> Panel:
        """Set controls by name, e.g. ``explorer.set(lr=1e-2, epochs=3)``; returns the widget.

        Values are checked first: a slider value outside its range raises ``ValueError`` (a
        slider would silently clip it), and so does a choice that is not in a drop-down.
        """
        for name, value in values.items():
            control = self.controls.get(name)
            if control is None:
                raise ValueError(f"{type(self).__name__} has no control {name!r}; "
                                 f"the controls are {sorted(self.controls)}.")
            check_value(name, control, value)
        for name, value in values.items():
            self.controls[name].value = value
        return self

    @property
    def values(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    # ---- errors are shown in the widget (a traceback in a callback would vanish in JupyterLab)
    def show_error(self, err: BaseException | str) -> None:
        message = err if isinstance(err, str) else (str(err) or type(err).__name__)
        self.last_error = message
        kind = "Problem" if isinstance(err, str) else type(err).__name__
        self.error_box.value = f"<div style='{ERROR_STYLE}'><b>{kind}:</b> {html.escape(message)}</div>"

    def clear_error(self) -> None:
        self.last_error = None
        self.error_box.value = ""

    # ---- showing
    @property
    def ui(self) -> W.Widget:
        """The widget tree (built on first use), e.g. to put it inside your own layout."""
        if self._ui is None:
            self._ui = self._build_ui()
            self._ui.add_class(self.css_class)  # e.g. "tlkit-lr": lets a browser test find it
        return self._ui

    def _build_ui(self) -> W.Widget:
        raise NotImplementedError

    def _header(self) -> W.HTML:
        return W.HTML(f"<b>{html.escape(self.title)}</b>"
                      + (f"<br><span style='font-size:90%'>{self.intro}</span>" if self.intro else ""))

    def summary_html(self) -> str:
        """The current state as HTML: what a reader without a live kernel sees."""
        return f"<p><b>{html.escape(self.title)}</b></p>"

    def summary_text(self) -> str:
        return self.title

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs) -> dict:
        # The live view for JupyterLab, plus HTML and text for every frontend that cannot show it.
        bundle = dict(self.ui._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/html"] = self.summary_html()
        bundle["text/plain"] = self.summary_text()
        return bundle

    def display(self) -> None:
        """Show the widget now (in a cell that goes on running, e.g. before ``run()`` calls)."""
        from IPython.display import display

        display(self)


class Explorer(Panel):
    """A Panel with a Run button that works in a background thread, a Stop button and a progress bar.

    Subclasses implement ``_work()``: read the controls, compute, update the view, return a
    result. ``_work`` calls ``self.tick()`` often (every batch); ``tick`` advances the progress
    bar and, after Stop, raises ``KeyboardInterrupt`` — the same signal as Ctrl-C, which
    ``tlkit.fit`` and ``tlkit.lr_find`` already handle by stopping cleanly with what they have.
    """

    def __init__(self) -> None:
        super().__init__()
        self.run_button = W.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="Run with the settings above")
        self.stop_button = W.Button(description="Stop", icon="stop", disabled=True,
                                    tooltip="Stop after the current batch; what was learned is kept")
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info",
                                        layout=W.Layout(width="240px"))
        self.status = W.HTML("Ready.")
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self._stop = threading.Event()
        self._busy = threading.Lock()  # one piece of work at a time
        self._thread: threading.Thread | None = None
        self._total = 1
        self._done = 0
        self.stopped = False  # did the last run end because of Stop (or Ctrl-C)?
        self._failed = False  # did it end with an error?

    # ---- running from code (synchronous) and from the button (thread)
    def run(self, **values: Any):
        """Set the given controls, do one run in this thread, and return its result.

        Errors are shown in the widget *and* raised. Stop (or Ctrl-C) ends the run early; the
        result then holds what was done so far.
        """
        if self.running:  # check before changing any control
            error = RuntimeError("A run is already going: press Stop, or wait for it to finish.")
            self.show_error(error)
            raise error
        self.set(**values)
        return self._execute(raise_errors=True)

    def start(self, work: Callable[[], Any] | None = None) -> threading.Thread | None:
        """What the Run button does: start one run in a background thread and return at once.

        ``work`` is another job for the same thread machinery (e.g. the LR range test button).
        """
        if self.running:
            self.show_error("A run is already going: press Stop, or wait for it to finish.")
            return None
        self._thread = threading.Thread(target=self._execute, kwargs={"raise_errors": False, "work": work},
                                        name=f"tlkit-{type(self).__name__}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Ask the current run to stop after the current batch (what the Stop button does)."""
        if self.running:
            self._stop.set()
            self.status.value = "Stopping..."

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a run started with ``start()``; True when it has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    @property
    def running(self) -> bool:
        return self._busy.locked()

    def _execute(self, raise_errors: bool, work: Callable[[], Any] | None = None):
        if not self._busy.acquire(blocking=False):
            error = RuntimeError("A run is already going: press Stop, or wait for it to finish.")
            self.show_error(error)
            if raise_errors:
                raise error
            return None
        self._stop.clear()
        self.stopped = self._failed = False
        self.clear_error()
        self._set_busy(True)
        try:
            return (work or self._work)()
        except KeyboardInterrupt:  # Stop during a step that does not catch it (e.g. caching features)
            self.stopped = True
            self.status.value = "Stopped."
            return None
        except Exception as err:  # shown in the widget: a traceback in a thread would be lost
            self._failed = True
            self.show_error(err)
            self.status.value = "Failed: see the message below."
            if raise_errors:
                raise
            return None
        finally:
            self._set_busy(False)
            self._busy.release()

    def _set_busy(self, busy: bool) -> None:
        self.run_button.disabled = busy
        self.stop_button.disabled = not busy
        if busy:
            self.begin(1, "Working...")
        else:
            self.progress.bar_style = "danger" if self._failed else "warning" if self.stopped else "success"

    def _work(self):
        raise NotImplementedError

    # ---- progress and Stop, called from inside the work
    def begin(self, total: int, message: str) -> None:
        """Start a new stage of work with ``total`` ticks (e.g. batches) and say what it is."""
        self._total, self._done = max(int(total), 1), 0
        self.progress.value = 0.0
        self.progress.bar_style = "info"
        self.status.value = html.escape(message)

    def tick(self, n: int = 1) -> None:
        """One more unit of work done; raises ``KeyboardInterrupt`` once Stop was pressed."""
        if self._stop.is_set():
            self.stopped = True
            raise KeyboardInterrupt("stopped from the widget")
        self._done += n
        self.progress.value = min(self._done / self._total, 1.0)

    def tick_hook(self, module, inputs, output) -> None:
        """A PyTorch forward hook: every forward pass of the model is one tick."""
        self.tick()

    def _controls_row(self, *extra: W.Widget) -> W.HBox:
        return W.HBox([self.run_button, self.stop_button, *extra, self.progress, self.status],
                      layout=W.Layout(align_items="center", flex_flow="row wrap"))


def check_value(name: str, control: W.ValueWidget, value: Any) -> None:
    """Raise ValueError when ``value`` is not something ``control`` can hold exactly."""
    if isinstance(control, W.FloatLogSlider):
        low, high = control.base ** control.min, control.base ** control.max
        if not isinstance(value, (int, float)) or not low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
            raise ValueError(f"{name}={value!r} is outside the slider's range {low:g} to {high:g}.")
    elif isinstance(control, (W.FloatSlider, W.IntSlider, W.BoundedFloatText, W.BoundedIntText)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}.")
        if isinstance(control, (W.IntSlider, W.BoundedIntText)) and value != int(value):
            raise ValueError(f"{name} must be a whole number, got {value!r}.")
        if not control.min <= value <= control.max:
            raise ValueError(f"{name}={value!r} is outside the slider's range {control.min} to {control.max}.")
    elif isinstance(control, (W.Dropdown, W.SelectionSlider, W.ToggleButtons, W.RadioButtons)):
        choices = [o[1] if isinstance(o, tuple) else o for o in control.options]
        if value not in choices:
            raise ValueError(f"{name}={value!r} is not one of the choices {choices}.")
    elif isinstance(control, (W.Checkbox, W.ToggleButton)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}.")
