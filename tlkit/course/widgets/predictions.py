"""The prediction explorer: page through validation images with what the model said about each.

Accuracy is one number; the mistakes behind it are where the learning is. Filter to mistakes and
sort them by confidence: a confident mistake is often a mislabelled or ambiguous image, or a
systematic confusion (two classes the model cannot tell apart); an unsure one is a hard case.
The numbers come from one ``tlkit.evaluate`` call, so they match the lesson's report.
"""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
from torch import nn
from torch.utils.data import Dataset

from ...data import DataSplits, eval_transforms
from ...evaluation import EvalReport, evaluate
from ._base import Panel
from ._draw import image_grid, img_tag, to_jpeg

SORTS = ("most confident first", "least confident first", "data order")


class PredictionExplorer(Panel):
    """See ``prediction_explorer``."""

    title = "Prediction explorer"
    css_class = "tlkit-predictions"
    intro = ("Each image shows the model's prediction with its confidence, and the true label "
             "(green: right, red: wrong). Start with the mistakes it was most sure about.")

    def __init__(self, model: nn.Module | None, data: Dataset | DataSplits, *, report: EvalReport | None = None,
                 image_size: int = 128, per_page: int = 8, show: str = "mistakes", sort: str = SORTS[0]):
        super().__init__()
        dataset = data.val if isinstance(data, DataSplits) else data
        if getattr(dataset, "transform", "no attribute") is None:
            from ...config import get_config  # raw course images: prepare them as the model expects

            dataset = dataset.with_transform(eval_transforms(get_config(model), image_size))
        if report is None:
            if model is None:
                raise ValueError("Give a model to evaluate, or a report from tlkit.evaluate(model, data).")
            report = evaluate(model, dataset)
        if len(report.y_true) != len(dataset):
            raise ValueError(f"The report covers {len(report.y_true)} examples but the data has {len(dataset)}: "
                             "pass the same data set that was evaluated.")
        self.dataset, self.report, self.per_page = dataset, report, per_page
        self.page = 0
        options = ["mistakes", "all", "right"] + [f"true: {c}" for c in report.classes] + \
                  [f"predicted: {c}" for c in report.classes]
        if show not in options:
            raise ValueError(f"show={show!r} is not one of {options}.")
        self.controls = {
            "show": W.Dropdown(options=options, value=show, description="show"),
            "sort": W.Dropdown(options=list(SORTS), value=sort, description="order"),
        }
        self.prev_button = W.Button(description="Previous", icon="arrow-left")
        self.next_button = W.Button(description="Next", icon="arrow-right")
        self.prev_button.on_click(lambda _: self.turn(-1))
        self.next_button.on_click(lambda _: self.turn(+1))
        self.info = W.HTML()
        self.plot = W.Image(format="jpeg", layout=W.Layout(max_width="100%"))
        self._picture: bytes | None = None
        for control in self.controls.values():
            control.observe(lambda _: self.set_page(0), names="value")
        self.redraw()

    # ---- the Python API
    def selection(self) -> list[dict]:
        """Every example the filter lets through, in the chosen order (not just this page)."""
        r = self.report
        pred, conf = r.probs.argmax(axis=1), r.probs.max(axis=1)
        show = self.controls["show"].value
        keep = np.ones(len(r.y_true), dtype=bool)
        if show == "mistakes":
            keep = pred != r.y_true
        elif show == "right":
            keep = pred == r.y_true
        elif show.startswith("true: "):
            keep = r.y_true == r.classes.index(show[len("true: "):])
        elif show.startswith("predicted: "):
            keep = pred == r.classes.index(show[len("predicted: "):])
        order = np.flatnonzero(keep)
        sort = self.controls["sort"].value
        if sort != "data order":
            sign = -1 if sort == "most confident first" else 1
            order = order[np.argsort(sign * conf[order], kind="stable")]
        return [{"index": int(i), "true": r.classes[r.y_true[i]], "pred": r.classes[pred[i]],
                 "confidence": float(conf[i]), "right": bool(pred[i] == r.y_true[i])} for i in order]

    @property
    def shown(self) -> list[dict]:
        """The examples on the current page."""
        start = self.page * self.per_page
        return self.selection()[start:start + self.per_page]

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.selection()) // self.per_page))

    def set_page(self, page: int) -> None:
        if not isinstance(page, int) or not 0 <= page < self.pages:
            raise ValueError(f"page must be 0 to {self.pages - 1}, got {page!r}.")
        self.page = page
        self.redraw()

    def turn(self, step: int) -> None:
        """Go ``step`` pages forward (or back), staying within the pages there are."""
        self.set_page(min(max(self.page + step, 0), self.pages - 1))

    # ---- showing
    def _image(self, index: int):
        images = getattr(self.dataset, "images", None)  # tlkit's ImageDataset keeps the original pixels
        return images[index] if images is not None else self.dataset[index][0]

    def redraw(self) -> None:
        shown, total = self.shown, len(self.selection())
        r = self.report
        wrong = int((r.probs.argmax(axis=1) != r.y_true).sum())
        start = self.page * self.per_page
        what = self.controls["show"].value
        self.info.value = (f"Accuracy {r.accuracy:.1%} on {len(r.y_true)} images ({wrong} mistakes). "
                           f"Showing <b>{html.escape(what)}</b> {start + 1 if shown else 0}–{start + len(shown)} "
                           f"of {total} (page {self.page + 1} of {self.pages}).")
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.pages - 1
        if not shown:
            self._picture = None
            self.plot.value = b""
            self.info.value += " Nothing to show."
            return
        titles = [f"{s['pred']} {s['confidence']:.0%}\ntrue: {s['true']}" for s in shown]
        colours = ["#1a7f37" if s["right"] else "#c00000" for s in shown]
        self._picture = to_jpeg(image_grid([self._image(s["index"]) for s in shown], titles, colours, ncols=4))
        self.plot.value = self._picture

    def summary_html(self) -> str:
        return f"<p><b>{self.title}</b></p><p>{self.info.value}</p>" + img_tag(self._picture)

    def summary_text(self) -> str:
        return f"{self.title}: " + self.info.value.replace("<b>", "").replace("</b>", "")

    def _build_ui(self) -> W.Widget:
        c = self.controls
        return W.VBox([self._header(), W.HBox([c["show"], c["sort"], self.prev_button, self.next_button],
                                              layout=W.Layout(flex_flow="row wrap")),
                       self.info, self.error_box, self.plot])


def prediction_explorer(model: nn.Module | None, data: Dataset | DataSplits, *, report: EvalReport | None = None,
                        image_size: int = 128, per_page: int = 8, show: str = "mistakes",
                        sort: str = SORTS[0]) -> PredictionExplorer:
    """Browse ``data`` (validation images) with predicted vs true label and confidence.

    ``data``: the data set the model is judged on (a ``DataSplits`` means its ``val``); raw course
    images get the model's eval transform at ``image_size``. ``report``: a ready
    ``tl.evaluate(model, data)`` result (then ``model`` may be None). From code::

        ex = tl.prediction_explorer(model, data.val)
        ex.set(show="mistakes", sort="most confident first")
        ex.shown            # [{"index": 17, "true": "arrow_left", "pred": "arrow_right", "confidence": 0.93, ...}]
        ex.turn(+1)         # next page
    """
    return PredictionExplorer(model, data, report=report, image_size=image_size, per_page=per_page,
                              show=show, sort=sort)
