"""Exercise 07: choosing and evaluating a model (lessons/07_choosing_and_evaluating.ipynb).

q1 (code):   ``class_metrics(cm)``: per-class precision, recall and F1 from a confusion matrix, on four
             matrices drawn afresh (one with a class that is never predicted, one with a class that
             never occurs).
q2 (code):   ``balanced_accuracy(y_true, y_pred)``: the mean recall, on imbalanced label sets drawn afresh.
q3 (code):   ``export_model(model, path, example)`` writes TorchScript. The learner's kernel loads the
             file and runs it on the probe's other images (``tlkit/course/probes/ex07_*``); only the
             outputs come back, as tensors. The judge compares them with what the probe's own model
             predicts in eval mode: it draws the same model from the same seed, so it needs nothing
             from the submission but those outputs, and never loads a file a submission wrote. (Not
             the learner's model weights sent back: the task is to export the model *given*, and a
             correct export may well change the model object, e.g. fold BatchNorm into the conv.) The
             probe model has BatchNorm (with running statistics far from the images') and dropout, so
             an export in training mode predicts something else.
q4 (exercises/07.yaml): where a class's precision sits in the confusion matrix.
q5 (exercises/07.yaml): a screening flag's precision from counts.
q6 (code):   ``choose_backbone(rows, budget_ms)``: from a table like ``tl.rank_backbones`` returns,
             the name of the backbone with the best probe score among those fast enough, or None;
             five tables drawn afresh, built so that ignoring the budget, taking the fastest or the
             smallest, a strict ``<`` and never returning None each give a different answer.

Every code item draws its probe afresh for each check; the judges below draw the same probe in
their own process and work out the right answer there.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ..exercises import Exercise, Verdict, probed_item, quiz_item, tensors_from
from ..probes.ex07_choosing_and_evaluating import ASKS

# ----------------------------------------------------------------- q1: metrics from a confusion matrix


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


def _judge_metrics(evidence: dict, matrices) -> Verdict:
    results = evidence.get("results")
    if type(results) is not list or len(results) != len(matrices):
        return Verdict(False, "class_metrics should return (precision, recall, f1) for every matrix")
    for k, (found, cm) in enumerate(zip(results, matrices)):
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

def _balanced(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def _judge_balanced(evidence: dict, cases) -> Verdict:
    values = evidence.get("values")
    if type(values) is not list or len(values) != len(cases) or not all(
            v is None or type(v) is float for v in values):
        return Verdict(False, "balanced_accuracy should return one number for every set of labels")
    if any(v is None or not math.isfinite(v) for v in values):
        return Verdict(False, "you got NaN: average only over the classes that occur in y_true (np.unique(y_true))")

    def all_close(reference) -> bool:
        return all(abs(v - reference(t, p)) <= 1e-6 for v, (t, p) in zip(values, cases))

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
    for v, (t, p) in zip(values, cases):
        if abs(v - _balanced(t, p)) > 1e-6:
            return Verdict(False, f"for y_true={t[:12]}{'...' if len(t) > 12 else ''} the balanced accuracy is "
                                  f"{_balanced(t, p):.3f}, yours is {v:.3f}: for each class in y_true, the share "
                                  "of its images predicted as that class; then the mean of those recalls")
    return Verdict(False, "balanced_accuracy is not right yet")


# ------------------------------------------------------------------------ q3: a verified export

def _judge_export(evidence: dict, probe) -> Verdict:
    n, classes = probe["images"].shape[0], probe["classes"]
    shape_hint = f"the exported model should return logits (N, {classes}) for a batch of N images"
    try:
        logits = tensors_from(evidence.get("outputs")).get("logits")
    except Exception:
        return Verdict(False, shape_hint)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (n, classes) or not logits.is_floating_point():
        return Verdict(False, shape_hint)
    model = copy.deepcopy(probe["model"]).eval()
    with torch.no_grad():
        expected = model(probe["images"])
    if torch.isfinite(logits).all() and torch.allclose(logits.float(), expected, atol=1e-4, rtol=1e-4):
        return Verdict(True)
    return Verdict(False, "the exported model does not predict what the model predicts in eval mode: call "
                          "model.eval() before tracing (BatchNorm and dropout behave differently in training), "
                          "and export the model you were given, with its weights")


# ------------------------------------------------------------ q6: a backbone within a latency budget

NOTHING_FITS = 2  # the probe's third table: no backbone is fast enough


def _choose(rows: list[dict], budget_ms: float, fits=lambda ms, budget: ms <= budget,
            key=lambda row: row["probe_acc"]) -> str | None:
    """The right choice (or, with other ``fits``/``key``, a plausible mistake)."""
    fast_enough = [row for row in rows if fits(row["ms_per_image"], budget_ms)]
    return max(fast_enough, key=key)["name"] if fast_enough else None


def _judge_choices(evidence: dict, cases) -> Verdict:
    choices = evidence.get("choices")
    if type(choices) is not list or len(choices) != len(cases) or not all(
            c is None or type(c) is str for c in choices):
        return Verdict(False, "choose_backbone should return one name (or None) for every table")

    def matches(**mistake) -> bool:
        return all(c == _choose(rows, budget, **mistake) for c, (rows, budget) in zip(choices, cases))

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
    rows, budget = cases[NOTHING_FITS]
    if choices[NOTHING_FITS] is not None:
        return Verdict(False, f"with a budget of {budget} ms no backbone is fast enough: return None then "
                              f"(you returned {choices[NOTHING_FITS]!r})")
    for c, (rows, budget) in zip(choices, cases):
        if c != _choose(rows, budget):
            names = ", ".join(f"{row['name']} ({row['probe_acc']:.3f}, {row['ms_per_image']} ms)" for row in rows)
            return Verdict(False, f"for a budget of {budget} ms and the backbones {names}, the choice is "
                                  f"{_choose(rows, budget)!r}, yours is {c!r}")
    return Verdict(False, "choose_backbone is not right yet")


EXERCISE = Exercise("07_choosing_and_evaluating", [
    probed_item("q1", ASKS["q1"], _judge_metrics,
                question="Write class_metrics(cm): per-class precision, recall and F1 from a confusion matrix."),
    probed_item("q2", ASKS["q2"], _judge_balanced,
                question="Write balanced_accuracy(y_true, y_pred): the mean of the per-class recalls."),
    probed_item("q3", ASKS["q3"], _judge_export,
                question="Write export_model(model, path, example): a TorchScript file that predicts what the model "
                         "does."),
    quiz_item("q4", "answer_q4", "exercises/07", "q4"),
    quiz_item("q5", "answer_q5", "exercises/07", "q5"),
    probed_item("q6", ASKS["q6"], _judge_choices,
                question="Write choose_backbone(rows, budget_ms): the best probe score among the backbones fast "
                         "enough."),
])
