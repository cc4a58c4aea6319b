"""Evaluation: how good is the model, on which classes, and where does it go wrong?

``evaluate`` runs the model once over a data set and turns the predictions into:

- accuracy: the fraction of examples predicted right;
- the confusion matrix: ``confusion[t, p]`` counts examples of true class t predicted as p;
- per class, read straight off that matrix:
  precision = right predictions of the class / all predictions of the class (its column),
  recall    = right predictions of the class / all examples of the class (its row),
  F1        = the harmonic mean of the two;
- the most confident mistakes, which are often mislabelled images or genuinely ambiguous ones.

The metrics are a few lines of NumPy below, so that you can check them by hand.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .data.loaders import make_loader
from .device import Accelerator, place


# ------------------------------------------------------------------------------------ predicting
@contextlib.contextmanager
def keep_modes(model: nn.Module):
    """Run a block and afterwards put every module back in the train/eval mode it was in.

    Why every module: ``fit`` keeps frozen BatchNorm layers in eval mode inside a model in train
    mode; a plain ``model.train()`` afterwards would undo that.
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def model_outputs(model: nn.Module, data: Any, batch_size: int = 64, device: torch.device | str | None = None,
                  *, accel: Accelerator | None = None, progress: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``model`` over ``data`` once; return its outputs (N x C, float32, on the CPU) and the labels.

    The one evaluation loop of tlkit: ``predict``, ``evaluate``, ``fit``'s validation and
    ``extract_features`` all call it. Eval mode (BatchNorm uses its running statistics, dropout is
    off), no gradients, and the modes of the model's layers are restored afterwards. ``data``: a
    DataLoader, a Dataset (labels, when it has them, come back too; else None), a batch of images
    N x C x H x W or one image C x H x W. ``device``: see ``tlkit.device`` (None: the best available,
    and the model moves there); ``fit`` passes its ``accel`` instead (mixed precision, memory layout).
    ``progress``: a description to show a progress bar over the batches under (None: no bar).
    """
    if accel is None:
        accel = Accelerator(place(model, device))
    if isinstance(data, torch.Tensor):
        data = TensorDataset(data.unsqueeze(0) if data.dim() == 3 else data)  # one image -> a batch of one
    outputs, labels = [], []
    loader = make_loader(data, batch_size, shuffle=False)
    if progress is not None:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc=progress, unit="batch", leave=False, dynamic_ncols=True)
    with keep_modes(model), torch.inference_mode():
        model.eval()
        for batch in loader:
            images, targets = (batch[0], batch[1] if len(batch) > 1 else None) \
                if isinstance(batch, (list, tuple)) else (batch, None)
            with accel.autocast():
                outputs.append(model(accel.to_device(images)[0]).float().cpu())
            if targets is not None:
                labels.append(torch.as_tensor(targets).cpu())
    if not outputs:
        raise ValueError("There is nothing to evaluate: the data set is empty.")
    return torch.cat(outputs), (torch.cat(labels).long() if labels else None)


def predict(model: nn.Module, data_or_tensor: Any, batch_size: int = 64,
            device: torch.device | str | None = None) -> torch.Tensor:
    """Class probabilities (softmax of the logits), one row per example, as a CPU tensor.

    Accepts a DataLoader, a Dataset (labels, if any, are ignored), a batch of images N x C x H x W
    or one image C x H x W (giving one row). Runs in eval mode without gradients (``model_outputs``).
    """
    logits, _ = model_outputs(model, data_or_tensor, batch_size, device)
    return torch.softmax(logits, dim=1)


# -------------------------------------------------------------------------------------- metrics
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[t, p]`` = how many examples of true class ``t`` were predicted as class ``p``."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)  # one +1 per example
    return cm


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b element-wise, with 0/0 (a class never predicted, or never present) defined as 0."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def per_class_metrics(cm: np.ndarray, classes: list[str]) -> list[dict]:
    """Precision, recall, F1 and support of every class, from the confusion matrix."""
    right = np.diag(cm)                  # the diagonal: predicted as the class and truly the class
    predicted = cm.sum(axis=0)           # column sums: how often each class was predicted
    present = cm.sum(axis=1)             # row sums: how many examples each class has (support)
    precision = _divide(right, predicted)
    recall = _divide(right, present)
    f1 = _divide(2 * precision * recall, precision + recall)
    return [{"class": name, "precision": float(precision[k]), "recall": float(recall[k]),
             "f1": float(f1[k]), "support": int(present[k])} for k, name in enumerate(classes)]


def most_wrong(probs: np.ndarray, y_true: np.ndarray, classes: list[str], k: int = 12) -> list[dict]:
    """The ``k`` mistakes the model was most sure about, most confident first."""
    y_pred = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:k]
    return [{"index": int(i), "true": classes[y_true[i]], "pred": classes[y_pred[i]],
             "confidence": float(confidence[i])} for i in order]


def class_names(data: Any, num_classes: int, classes=None) -> list[str]:
    """``classes`` if given, else ``data.classes`` (or ``data.dataset.classes``), else "0", "1", ..."""
    if classes is None:
        for source in (data, getattr(data, "dataset", None)):
            if getattr(source, "classes", None) is not None:
                classes = source.classes
                break
    if classes is None:
        return [str(k) for k in range(num_classes)]
    classes = [str(c) for c in classes]
    if len(classes) != num_classes:
        raise ValueError(f"The model predicts {num_classes} classes but {len(classes)} class names were "
                         f"given ({classes[:5]}...). Does the head match the data set?")
    return classes


# --------------------------------------------------------------------------------------- report
@dataclass
class EvalReport:
    """The result of ``evaluate``; print it for a table, or use the fields and plots."""

    accuracy: float
    per_class: list[dict]
    macro_f1: float
    confusion: np.ndarray
    classes: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray
    most_wrong: list[dict] = field(default_factory=list)

    def plot_confusion(self, normalize: bool = False):
        """The confusion matrix as a picture (``tlkit.plots.plot_confusion``); returns the Figure."""
        from .plots import plot_confusion

        return plot_confusion(self.confusion, self.classes, normalize=normalize)

    def show_mistakes(self, dataset: Dataset, n: int | None = None, mean=None, std=None, ncols: int = 6):
        """The most confident mistakes as images titled "pred / true"; returns the Figure.

        ``dataset`` must be the one that was evaluated (same order). The normalisation to undo is
        found in its transform when it has a torchvision ``Normalize``; else pass ``mean``/``std``.
        """
        from .plots import show_images

        mistakes = self.most_wrong[:n] if n else self.most_wrong
        if not mistakes:
            raise ValueError("There are no mistakes to show: every example was predicted right.")
        if mean is None or std is None:
            mean, std = _normalisation(dataset)
        images = [dataset[m["index"]][0] for m in mistakes]
        return show_images(images, labels=[m["true"] for m in mistakes], preds=[m["pred"] for m in mistakes],
                           mean=mean, std=std, ncols=ncols)

    def to_dict(self) -> dict:
        """Plain Python types only (for json.dumps)."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "classes": list(self.classes),
                "per_class": [dict(row) for row in self.per_class], "confusion": self.confusion.tolist(),
                "n": int(len(self.y_true)), "y_true": self.y_true.tolist(), "y_pred": self.y_pred.tolist(),
                "most_wrong": [dict(m) for m in self.most_wrong]}

    def __repr__(self) -> str:
        width = max([len("class")] + [len(c) for c in self.classes])
        lines = [f"accuracy {self.accuracy:.4f} on {len(self.y_true)} examples; macro F1 {self.macro_f1:.4f}",
                 f"{'class':<{width}}  precision  recall      f1  support"]
        for r in self.per_class:
            lines.append(f"{r['class']:<{width}}  {r['precision']:>9.3f}  {r['recall']:>6.3f}  "
                         f"{r['f1']:>6.3f}  {r['support']:>7d}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in ("class", "precision", "recall", "f1", "support"))
        rows = "".join(
            f"<tr><td>{r['class']}</td><td>{r['precision']:.3f}</td><td>{r['recall']:.3f}</td>"
            f"<td>{r['f1']:.3f}</td><td>{r['support']}</td></tr>" for r in self.per_class)
        return (f"<p>accuracy <b>{self.accuracy:.4f}</b> on {len(self.y_true)} examples; "
                f"macro F1 {self.macro_f1:.4f}</p><table><tr>{head}</tr>{rows}</table>")


def _normalisation(dataset) -> tuple[Any, Any]:
    """(mean, std) of a torchvision Normalize in the data set's transform, else (None, None)."""
    for source in (dataset, getattr(dataset, "dataset", None)):
        transform = getattr(source, "transform", None)
        steps = getattr(transform, "transforms", [transform])
        for step in steps:
            if type(step).__name__ == "Normalize" and hasattr(step, "mean"):
                return step.mean, step.std
    return None, None


def evaluate(model: nn.Module, data: DataLoader | Dataset, classes: list[str] | None = None,
             batch_size: int = 64, device: torch.device | str | None = None,
             top_k_wrong: int = 12) -> EvalReport:
    """Run ``model`` over labelled ``data`` and report accuracy, per-class metrics and mistakes.

    ``classes`` (names, in label order) default to ``data.classes`` or ``data.dataset.classes``.
    ``most_wrong`` indexes are positions in ``data`` (for a shuffled DataLoader, in the order seen).
    ``device``: see ``tlkit.device`` (None: the best available device).
    """
    logits, labels = model_outputs(model, data, batch_size, device)
    probs = torch.softmax(logits, dim=1)
    if labels is None:
        raise ValueError("evaluate needs labels: the data should yield (image, label) pairs. "
                         "For images without labels, use tlkit.predict.")
    probs_np = probs.numpy()
    y_true = labels.numpy()
    y_pred = probs_np.argmax(axis=1)
    names = class_names(data, probs_np.shape[1], classes)
    cm = confusion_matrix(y_true, y_pred, len(names))
    per_class = per_class_metrics(cm, names)
    return EvalReport(
        accuracy=float(np.trace(cm) / cm.sum()),
        per_class=per_class,
        macro_f1=float(np.mean([r["f1"] for r in per_class])),  # every class counts the same
        confusion=cm, classes=names, y_true=y_true, y_pred=y_pred, probs=probs_np,
        most_wrong=most_wrong(probs_np, y_true, names, top_k_wrong),
    )


# ------------------------------------------------------------------------------- checking inputs
# The metrics in decisions.py and calibration.py take arrays from the user. A wrong one should
# fail here, in words, not as an IndexError three functions deeper.
def _array(values: Any) -> np.ndarray:
    """A list, NumPy array or tensor (even one on a GPU or with gradients) as a NumPy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
    return np.asarray(values)


def as_outputs(outputs: Any, name: str = "probs", probabilities: bool = True) -> np.ndarray:
    """A model's outputs (N x C: one row per example, one column per class) as a float64 array, checked.

    ``probabilities=True`` also checks that each row is a probability distribution: logits passed
    by mistake would give numbers that look like metrics and mean nothing.
    """
    array = _array(outputs)
    if array.dtype.kind not in "iuf" or array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(f"{name} should be a numeric N x C array (one row per example, at least 2 classes); "
                         f"got {array.dtype} of shape {array.shape}.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds {int(np.sum(~np.isfinite(array)))} NaN or infinite values: "
                         "did training diverge?")
    if probabilities and (array.min() < -1e-6 or array.max() > 1 + 1e-6
                          or not np.allclose(array.sum(axis=1), 1.0, atol=1e-3)):
        raise ValueError(f"{name} should be probabilities (each row in [0, 1], summing to 1). Are these "
                         "logits? tl.predict returns probabilities; or apply torch.softmax(logits, dim=1).")
    return array


def as_labels(labels: Any, name: str = "y_true", num_classes: int | None = None, n: int | None = None) -> np.ndarray:
    """Class indices (0, 1, 2, ...) as a 1-D int64 array, checked against ``num_classes`` and length ``n``."""
    array = _array(labels)
    whole = array.dtype.kind in "iu" or (array.dtype.kind == "f" and np.all(np.isfinite(array))
                                         and np.all(array == np.round(array)))
    if array.ndim != 1 or array.size == 0 or not whole:
        raise ValueError(f"{name} should be a non-empty 1-D sequence of class indices (0, 1, 2, ...); "
                         f"got {array.dtype} of shape {array.shape}.")
    array = array.astype(np.int64)
    if n is not None and len(array) != n:
        raise ValueError(f"{name} has {len(array)} entries but there are {n} predictions: one label per example.")
    if array.min() < 0:
        raise ValueError(f"{name} holds {int(array.min())}, but class indices start at 0.")
    if num_classes is not None and array.max() >= num_classes:
        raise ValueError(f"{name} holds class {int(array.max())}, but there are {num_classes} classes "
                         f"(0..{num_classes - 1}). Do the labels match the model's classes?")
    return array
