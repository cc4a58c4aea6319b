"""The text explorer: type a sentence, see what a text model predicts and which training texts it is like.

A text classifier built on a pretrained encoder decides from the text's embedding: texts whose
embeddings are close get similar predictions. Showing the prediction next to the nearest training
texts (by cosine similarity of the same embeddings) makes that visible: when the neighbours carry
the predicted label the model is on familiar ground; when they disagree, or are all far away, its
confidence deserves less trust.
"""
from __future__ import annotations

import html

import ipywidgets as W
import torch
import torch.nn.functional as F
from torch import nn

from ._base import Panel


class TextExplorer(Panel):
    """See ``text_explorer``."""

    title = "Text explorer"
    css_class = "tlkit-text"
    intro = ("Type a sentence and press Enter (or Predict): the model's prediction, how sure it is, "
             "and the training texts whose embeddings are closest to it.")

    def __init__(self, model: nn.Module, train, *, text: str = "", neighbours: int = 5, max_chars: int = 160):
        super().__init__()
        if not hasattr(model, "tokenize") or not isinstance(getattr(model, "classifier", None), nn.Linear):
            raise ValueError("text_explorer needs a text model with a trained head: "
                             "tl.load_pretrained('minilm', num_classes=K), then trained (tl.fit).")
        texts, classes = getattr(train, "texts", None), getattr(train, "classes", None)
        if texts is None or classes is None or len(texts) == 0:
            raise ValueError("train must be a TextDataset (texts, labels and class names), e.g. splits.train.")
        if model.classifier.out_features != len(classes):
            raise ValueError(f"The model has {model.classifier.out_features} outputs but the data has "
                             f"{len(classes)} classes: pass the data the model was trained on.")
        if not 1 <= neighbours <= len(texts):
            raise ValueError(f"neighbours must be 1 to {len(texts)}, got {neighbours}.")
        self.model, self.train, self.k, self.max_chars = model, train, neighbours, max_chars
        self.classes = list(classes)
        self._train_emb = self._embed(train)  # once: N x H, unit length
        self.result: dict | None = None
        self.controls = {"text": W.Text(value=text, placeholder="Type a sentence, then press Enter",
                                        description="text", continuous_update=False,
                                        layout=W.Layout(width="95%"))}
        self.predict_button = W.Button(description="Predict", button_style="primary", icon="play")
        self.predict_button.on_click(lambda _: self._show_safely())
        self.controls["text"].observe(lambda _: self._show_safely(), names="value")
        self.view = W.HTML()
        if text.strip():
            self.show(text)
        else:
            self.view.value = "<i>Type a sentence above.</i>"

    def _embed(self, train) -> torch.Tensor:
        """Unit-length embeddings (the head's input) of the training texts: lesson 02's extract_features."""
        from ...features import extract_features
        from ...text import text_transform

        return F.normalize(extract_features(self.model, train.with_transform(text_transform(self.model))).tensors[0],
                           dim=1)

    # ---- the Python API
    def predict(self, text: str) -> dict:
        """What the widget shows for ``text``: prediction, confidence, every class's probability,
        and the nearest training texts with their labels and cosine similarity."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("Type a sentence first: the text is empty.")
        tokens = self.model.tokenize([text])
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                emb = self.model.embed(tokens)
                probs = torch.softmax(self.model.classifier(emb), dim=1)[0]
        finally:
            self.model.train(was_training)
        sims = self._train_emb @ F.normalize(emb, dim=1)[0]
        top = torch.topk(sims, self.k)
        labels = self.train.labels
        best = int(probs.argmax())
        return {"text": text, "prediction": self.classes[best], "confidence": float(probs[best]),
                "probabilities": {c: float(p) for c, p in zip(self.classes, probs)},
                "neighbours": [{"index": int(i), "text": self.train.texts[int(i)],
                                "label": self.classes[int(labels[int(i)])], "similarity": float(s)}
                               for s, i in zip(top.values, top.indices)]}

    def show(self, text: str) -> dict:
        """Predict ``text`` and show it (the same as typing it); returns ``predict(text)``."""
        result = self.predict(text)
        self.result = result
        self.clear_error()
        self.view.value = self._html(result)
        return result

    def _show_safely(self) -> None:
        try:
            self.show(self.controls["text"].value)
        except ValueError as err:
            self.show_error(err)

    # ---- drawing
    def _html(self, r: dict) -> str:
        agree = sum(n["label"] == r["prediction"] for n in r["neighbours"])
        bars = "".join(
            f"<tr><td style='padding-right:8px'>{html.escape(c)}</td><td><div style='background:#4c72b0;"
            f"height:10px;width:{max(1, round(200 * p))}px'></div></td><td style='padding-left:6px'>{p:.0%}</td></tr>"
            for c, p in sorted(r["probabilities"].items(), key=lambda kv: -kv[1])[:5])
        rows = "".join(
            f"<tr><td style='padding-right:8px'>{n['similarity']:.2f}</td>"
            f"<td style='padding-right:8px;color:{'#1a7f37' if n['label'] == r['prediction'] else '#c00000'}'>"
            f"{html.escape(n['label'])}</td><td>{html.escape(_short(n['text'], self.max_chars))}</td></tr>"
            for n in r["neighbours"])
        return (f"<p>Prediction: <b>{html.escape(r['prediction'])}</b> ({r['confidence']:.0%} sure). "
                f"{agree} of the {len(r['neighbours'])} nearest training texts carry that label.</p>"
                f"<table style='font-size:90%'>{bars}</table>"
                f"<p style='margin-top:6px'>Nearest training texts (cosine similarity, label, text):</p>"
                f"<table style='font-size:90%'>{rows}</table>")

    def summary_html(self) -> str:
        body = self._html(self.result) if self.result else "<p>No sentence typed yet.</p>"
        text = f"<p>Text: <i>{html.escape(self.result['text'])}</i></p>" if self.result else ""
        return f"<p><b>{self.title}</b></p>{text}{body}"

    def summary_text(self) -> str:
        if not self.result:
            return f"{self.title}: no sentence typed yet."
        r = self.result
        return f"{self.title}: {r['text']!r} -> {r['prediction']} ({r['confidence']:.0%})"

    def _build_ui(self) -> W.Widget:
        return W.VBox([self._header(), W.HBox([self.controls["text"], self.predict_button]),
                       self.error_box, self.view])


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def text_explorer(model: nn.Module, train, *, text: str = "", neighbours: int = 5) -> TextExplorer:
    """Type a sentence; see ``model``'s prediction, its confidence and the nearest texts of ``train``.

    ``model``: a text classifier with a trained head (``tl.load_pretrained("minilm", num_classes=K)``
    after training); ``train``: the TextDataset it learned from (its texts are embedded once, with
    the same model). ``text``: a sentence to start with. From code::

        ex = tl.text_explorer(model, splits.train, text="my car's brakes squeal")
        ex.result["prediction"], ex.result["neighbours"][0]["label"]
        ex.show("the shuttle reached orbit")
    """
    return TextExplorer(model, train, text=text, neighbours=neighbours)
