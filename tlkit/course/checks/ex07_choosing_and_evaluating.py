"""Exercise 07: choosing and evaluating a model (lessons/07_choosing_and_evaluating.ipynb).

q1 (code):   ``class_metrics(cm)``: per-class precision, recall and F1 from a confusion matrix, on four
             matrices (one with a class that is never predicted, one with a class that never occurs).
q2 (code):   ``balanced_accuracy(y_true, y_pred)``: the mean recall, on imbalanced label sets.
q3 (code):   ``export_model(model, path, example)`` writes TorchScript; the check loads the file
             itself and compares its outputs with the model's in eval mode (the probe model has
             BatchNorm and dropout, so an export in training mode predicts something else).
q4 (exercises/07.yaml): where a class's precision sits in the confusion matrix.
q5 (exercises/07.yaml): a screening flag's precision from counts.
q6 (code):   ``choose_backbone(rows, budget_ms)``: from a table like ``tl.rank_backbones`` returns,
             the name of the backbone with the best probe score among those fast enough, or None;
             five tables, built so that ignoring the budget, taking the fastest or the smallest,
             and a strict ``<`` each give a different answer.
"""
from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..exercises import Exercise, Item, Verdict, quiz_item

# ----------------------------------------------------------------- q1: metrics from a confusion matrix

MATRICES = [
    [[5, 1, 0], [2, 6, 2], [0, 1, 3]],
    [[10, 0, 0, 0], [3, 0, 0, 0], [1, 0, 4, 1], [0, 0, 2, 5]],  # class 1 is never predicted
    [[0, 0], [1, 9]],                                           # class 0 never occurs
    [[40, 10], [5, 45]],
]


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)


def _metrics(cm, rows_for_precision: bool = False, f1_mean: str = "harmonic") -> list[list[float]]:
    """Precision, recall and F1 per class (cm[t, p]: true t predicted p), or a plausible mistake."""
    cm = np.asarray(cm, dtype=float)
    right = np.diag(cm)
    precision = _divide(right, cm.sum(axis=1 if rows_for_precision else 0))
    recall = _divide(right, cm.sum(axis=0 if rows_for_precision else 1))
    if f1_mean == "harmonic":
        f1 = _divide(2 * precision * recall, precision + recall)
    else:
        f1 = (precision + recall) / 2
    return [precision.tolist(), recall.tolist(), f1.tolist()]


def _as_numbers(values, n: int):
    """A 1-D sequence of ``n`` numbers as a list of floats (None for NaN), or None if it is not one."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return None
    if array.shape != (n,):
        return None
    return [None if math.isnan(v) else float(v) for v in array.tolist()]


def _collect_metrics(class_metrics) -> dict:
    if not callable(class_metrics):
        return {"problem": "class_metrics should be a function of a confusion matrix"}
    results = []
    for cm in MATRICES:
        out = class_metrics(np.array(cm))
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            return {"problem": "class_metrics should return three sequences: (precision, recall, f1)"}
        triple = [_as_numbers(part, len(cm)) for part in out]
        if any(part is None for part in triple):
            return {"problem": f"precision, recall and f1 should each hold one number per class ({len(cm)} for "
                               f"a {len(cm)} x {len(cm)} matrix)"}
        results.append(triple)
    return {"results": results}


def _judge_metrics(evidence: dict) -> Verdict:
    results = evidence.get("results")
    if type(results) is not list or len(results) != len(MATRICES):
        return Verdict(False, "class_metrics should return (precision, recall, f1) for every matrix")
    for k, (found, cm) in enumerate(zip(results, MATRICES)):
        n = len(cm)
        if (type(found) is not list or len(found) != 3 or not all(
                type(part) is list and len(part) == n and all(v is None or type(v) is float for v in part)
                for part in found)):
            return Verdict(False, "class_metrics should return (precision, recall, f1), one number per class each")
        if any(v is None or not math.isfinite(v) for part in found for v in part):
            return Verdict(False, f"matrix {k + 1} gives NaN: a class that is never predicted (or never occurs) "
                                  "divides 0 by 0; define that as 0 (np.divide(..., where=...) or a check)")

        def close(a, b):
            return all(abs(u - v) <= 1e-6 for pa, pb in zip(a, b) for u, v in zip(pa, pb))

        expected = _metrics(cm)
        if close(found, expected):
            continue
        names = ("precision", "recall", "f1")
        swapped = _metrics(cm, rows_for_precision=True)
        if close(found[:2], swapped[:2]):
            return Verdict(False, "precision and recall are swapped: cm[t, p] has true classes in rows, so "
                                  "recall divides the diagonal by the row sums, precision by the column sums")
        for i, name in enumerate(names[:2]):
            if not close([found[i]], [expected[i]]):
                how = "the column sums (how often each class was predicted)" if i == 0 else \
                      "the row sums (how many images each class has)"
                return Verdict(False, f"{name} is not right for matrix {k + 1}: divide the diagonal by {how}")
        if close([found[2]], [_metrics(cm, f1_mean="arithmetic")[2]]):
            return Verdict(False, "F1 is the harmonic mean 2 * p * r / (p + r), not the plain average (p + r) / 2")
        return Verdict(False, f"f1 is not right for matrix {k + 1}: 2 * precision * recall / (precision + recall), "
                              "and 0 where both are 0")
    return Verdict(True)


# ---------------------------------------------------------------------- q2: balanced accuracy

BALANCED_CASES = [
    ([0] * 90 + [1] * 10, [0] * 100),                                       # blind to the rare class
    ([0] * 6 + [1] * 3 + [2], [0, 0, 0, 0, 0, 1, 1, 1, 0, 2]),
    ([0, 0, 1, 1], [0, 1, 1, 1]),
    ([2, 2, 2, 5, 5], [2, 5, 2, 5, 0]),                                      # labels 2 and 5 only
    ([1] * 3 + [0] * 27, [1, 0, 0] + [0] * 25 + [1, 1]),
]


def _balanced(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def _collect_balanced(balanced_accuracy) -> dict:
    if not callable(balanced_accuracy):
        return {"problem": "balanced_accuracy should be a function of (y_true, y_pred)"}
    values = []
    for y_true, y_pred in BALANCED_CASES:
        value = balanced_accuracy(np.array(y_true), np.array(y_pred))
        if hasattr(value, "item") and callable(value.item):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return {"problem": f"balanced_accuracy should return a number, it returned {type(value).__name__}"}
        values.append(None if math.isnan(value) else float(value))
    return {"values": values}


def _judge_balanced(evidence: dict) -> Verdict:
    values = evidence.get("values")
    if type(values) is not list or len(values) != len(BALANCED_CASES) or not all(
            v is None or type(v) is float for v in values):
        return Verdict(False, "balanced_accuracy should return one number for every set of labels")
    if any(v is None or not math.isfinite(v) for v in values):
        return Verdict(False, "you got NaN: average only over the classes that occur in y_true (np.unique(y_true))")

    def all_close(reference) -> bool:
        return all(abs(v - reference(t, p)) <= 1e-6 for v, (t, p) in zip(values, BALANCED_CASES))

    if all_close(_balanced):
        return Verdict(True)
    if all_close(lambda t, p: float(np.mean(np.asarray(t) == np.asarray(p)))):
        return Verdict(False, "that is plain accuracy: average the recall of each class instead, so that a rare "
                              "class counts as much as a common one")
    if all_close(lambda t, p: float(np.mean([np.mean(np.asarray(p)[np.asarray(t) == c] == c) if c in t else 0.0
                                             for c in range(max(max(t), max(p)) + 1)]))):
        return Verdict(False, "you averaged over classes that do not occur in y_true too: average only over "
                              "np.unique(y_true)")
    if all_close(lambda t, p: _balanced(p, t)):
        return Verdict(False, "that is the mean precision (right / predicted); balanced accuracy is the mean "
                              "recall: for each class in y_true, the share of its images predicted as that class")
    for v, (t, p) in zip(values, BALANCED_CASES):
        if abs(v - _balanced(t, p)) > 1e-6:
            return Verdict(False, f"for y_true={t[:12]}{'...' if len(t) > 12 else ''} the balanced accuracy is "
                                  f"{_balanced(t, p):.3f}, yours is {v:.3f}: for each class in y_true, the share "
                                  "of its images predicted as that class; then the mean of those recalls")
    return Verdict(False, "balanced_accuracy is not right yet")


# ------------------------------------------------------------------------ q3: a verified export

class ExportProbe(nn.Module):
    """A small image classifier (3 x 8 x 8, 3 classes) with BatchNorm and dropout, fixed weights."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 4 * 4, 3)
        with torch.no_grad():
            for i, p in enumerate(self.parameters()):
                k = torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape)
                p.copy_(0.5 * torch.sin(0.7 * k + i))
            self.bn.running_mean.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
            self.bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5, 0.8]))

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = nn.functional.max_pool2d(x, 2).flatten(1)
        return self.fc(self.drop(x))


def export_images(n: int, offset: int = 0) -> torch.Tensor:
    k = torch.arange(n * 3 * 8 * 8, dtype=torch.float32).reshape(n, 3, 8, 8) + offset
    return torch.sin(0.13 * k) * 1.5 + torch.cos(0.031 * k)


def _collect_export(export_model) -> dict:
    if not callable(export_model):
        return {"problem": "export_model should be a function of (model, path, example)"}
    model = ExportProbe()
    model.train()  # as it is right after training
    with tempfile.TemporaryDirectory(prefix="tlkit_ex07_") as folder:
        path = Path(folder) / "model.pt"
        with warnings.catch_warnings(), torch.random.fork_rng():
            warnings.simplefilter("ignore")
            torch.manual_seed(0)
            export_model(model, str(path), export_images(4))
        if not path.is_file():
            return {"problem": "export_model wrote no file at `path`: save the exported model there "
                               "(torch.jit.save(traced, path))"}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = torch.jit.load(str(path), map_location="cpu")
        except Exception:
            return {"problem": "the file is not a TorchScript model (torch.jit.load cannot read it): trace the "
                               "model with torch.jit.trace and save that with torch.jit.save"}
        with torch.no_grad():
            out = loaded(export_images(8, offset=1000))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (8, 3):
        return {"problem": "the exported model should return logits (N, 3) for a batch of N images"}
    return {"outputs": out.double().reshape(-1).tolist()}


def _judge_export(evidence: dict) -> Verdict:
    outputs = evidence.get("outputs")
    if type(outputs) is not list or len(outputs) != 24 or not all(type(v) is float for v in outputs):
        return Verdict(False, "the exported model should return logits (N, 3) for a batch of N images")
    model = ExportProbe().eval()
    with torch.no_grad():
        expected = model(export_images(8, offset=1000))
    got = torch.tensor(outputs, dtype=torch.float32).reshape(8, 3)
    if torch.allclose(got, expected, atol=1e-4):
        return Verdict(True)
    return Verdict(False, "the exported model does not predict what the model predicts in eval mode: call "
                          "model.eval() before tracing (BatchNorm and dropout behave differently in training), "
                          "and export the model you were given, with its weights")


# ------------------------------------------------------------ q6: a backbone within a latency budget

def _row(name: str, probe_acc: float, ms_per_image: float, params_m: float) -> dict:
    return {"name": name, "probe_acc": probe_acc, "ms_per_image": ms_per_image, "params_m": params_m}


LITES = [_row("efficientnet_lite2", 0.90, 12.0, 6.09), _row("efficientnet_lite1", 0.88, 8.2, 5.42),
         _row("efficientnet_lite0", 0.85, 7.1, 4.65), _row("efficientnet_lite0 (random weights)", 0.31, 7.0, 4.65)]
ONLINE = [_row("resnet18", 0.84, 12.0, 11.18), _row("mobilenet_v3_small", 0.78, 3.1, 1.53),
          _row("resnet50", 0.93, 45.0, 23.53), _row("efficientnet_lite0", 0.86, 7.0, 4.02),
          _row("efficientnet_b0", 0.89, 25.0, 4.02), _row("mobilenet_v3_large", 0.87, 9.5, 4.21)]
BUDGET_CASES = [
    (LITES, 10.0),    # the best probe is too slow: Lite1
    (LITES, 8.2),     # Lite1 takes exactly the budget, which meets it
    (LITES, 5.0),     # nothing is fast enough: None
    (ONLINE, 30.0),   # an unsorted table: EfficientNet-B0
    (ONLINE, 100.0),  # everything fits: the best probe, ResNet-50
]


def _choose(rows: list[dict], budget_ms: float, fits=lambda ms, budget: ms <= budget,
            key=lambda row: row["probe_acc"]) -> str | None:
    """The right choice (or, with other ``fits``/``key``, a plausible mistake)."""
    fast_enough = [row for row in rows if fits(row["ms_per_image"], budget_ms)]
    return max(fast_enough, key=key)["name"] if fast_enough else None


def _collect_choices(choose_backbone) -> dict:
    import copy

    if not callable(choose_backbone):
        return {"problem": "choose_backbone should be a function of (rows, budget_ms)"}
    choices = []
    for rows, budget in BUDGET_CASES:
        choice = choose_backbone(copy.deepcopy(rows), budget)
        if isinstance(choice, dict):
            return {"problem": "return the backbone's name (row['name']), not the whole row"}
        if choice is not None and not isinstance(choice, str):
            return {"problem": f"choose_backbone should return a name (a str) or None, it returned "
                               f"{type(choice).__name__}"}
        choices.append(choice)
    return {"choices": choices}


def _judge_choices(evidence: dict) -> Verdict:
    choices = evidence.get("choices")
    if type(choices) is not list or len(choices) != len(BUDGET_CASES) or not all(
            c is None or type(c) is str for c in choices):
        return Verdict(False, "choose_backbone should return one name (or None) for every table")

    def matches(**mistake) -> bool:
        return all(c == _choose(rows, budget, **mistake) for c, (rows, budget) in zip(choices, BUDGET_CASES))

    if matches():
        return Verdict(True)
    if matches(fits=lambda ms, budget: True):
        return Verdict(False, "that is the best probe score overall, whatever its speed: first keep only the "
                              "backbones with ms_per_image <= budget_ms, then take the best probe_acc among them")
    anything = dict(fits=lambda ms, budget: True)
    if matches(key=lambda row: -row["ms_per_image"]) or matches(key=lambda row: -row["ms_per_image"], **anything):
        return Verdict(False, "that is the fastest backbone: every backbone within the budget is fast enough, so "
                              "among those pick the one with the best probe_acc")
    if matches(key=lambda row: -row["params_m"]) or matches(key=lambda row: -row["params_m"], **anything):
        return Verdict(False, "that is the smallest backbone: among those within the budget, pick the one with the "
                              "best probe_acc")
    if matches(fits=lambda ms, budget: ms < budget):
        return Verdict(False, "a backbone that takes exactly the budget meets it: keep ms_per_image <= budget_ms, "
                              "not <")
    rows, budget = BUDGET_CASES[2]
    if choices[2] is not None:
        return Verdict(False, f"with a budget of {budget} ms no backbone is fast enough: return None then "
                              f"(you returned {choices[2]!r})")
    for c, (rows, budget) in zip(choices, BUDGET_CASES):
        if c != _choose(rows, budget):
            names = ", ".join(f"{row['name']} ({row['probe_acc']:.2f}, {row['ms_per_image']} ms)" for row in rows)
            return Verdict(False, f"for a budget of {budget} ms and the backbones {names}, the choice is "
                                  f"{_choose(rows, budget)!r}, yours is {c!r}")
    return Verdict(False, "choose_backbone is not right yet")


EXERCISE = Exercise("07_choosing_and_evaluating", [
    Item("q1", ("class_metrics",), _collect_metrics, _judge_metrics,
         question="Write class_metrics(cm): per-class precision, recall and F1 from a confusion matrix."),
    Item("q2", ("balanced_accuracy",), _collect_balanced, _judge_balanced,
         question="Write balanced_accuracy(y_true, y_pred): the mean of the per-class recalls."),
    Item("q3", ("export_model",), _collect_export, _judge_export,
         question="Write export_model(model, path, example): a TorchScript file that predicts what the model does."),
    quiz_item("q4", "answer_q4", "exercises/07", "q4"),
    quiz_item("q5", "answer_q5", "exercises/07", "q5"),
    Item("q6", ("choose_backbone",), _collect_choices, _judge_choices,
         question="Write choose_backbone(rows, budget_ms): the best probe score among the backbones fast enough."),
])
