"""The judges of exercise 07 (choosing and evaluating): right answers pass, plausible wrong ones get their own
hint, and malformed evidence never passes (nor raises)."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms import v2 as T

import tlkit as tl
from tlkit.course.exercises import exercise

from _exercise_helpers import assert_malformed_evidence_never_passes, judge_on_probe, not_yet as _not_yet  # noqa: F401

EX07 = exercise("07")


def test_the_exercise_has_code_and_quiz_items():
    assert len(EX07.ids) >= 4
    assert all(item.question for item in EX07.items)


def test_malformed_evidence_never_passes_and_never_raises():
    assert_malformed_evidence_never_passes(EX07)


def _metrics(cm, harmonic=True, safe=True):
    cm = np.asarray(cm, dtype=float)
    right = np.diag(cm)

    def div(a, b):
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0) if safe else a / b
    precision, recall = div(right, cm.sum(0)), div(right, cm.sum(1))
    f1 = div(2 * precision * recall, precision + recall) if harmonic else (precision + recall) / 2
    return precision, recall, f1


def test_07_class_metrics():
    assert EX07.verdict("q1", class_metrics=_metrics).passed
    assert EX07.verdict("q1", class_metrics=lambda cm: [torch.tensor(v).tolist() for v in _metrics(cm)]).passed
    _not_yet(EX07.verdict("q1", class_metrics=lambda cm: (_metrics(cm)[1], _metrics(cm)[0], _metrics(cm)[2])),
             "swapped")
    with np.errstate(divide="ignore", invalid="ignore"):
        _not_yet(EX07.verdict("q1", class_metrics=lambda cm: _metrics(cm, safe=False)), "0 by 0")
    _not_yet(EX07.verdict("q1", class_metrics=lambda cm: _metrics(cm, harmonic=False)), "harmonic mean")
    _not_yet(EX07.verdict("q1", class_metrics=lambda cm: _metrics(cm)[:2]), "three sequences")
    _not_yet(EX07.verdict("q1", class_metrics=lambda cm: tuple(v[:1] for v in _metrics(cm))), "one number per class")


def _balanced(y_true, y_pred):
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def test_07_balanced_accuracy():
    assert EX07.verdict("q2", balanced_accuracy=_balanced).passed
    _not_yet(EX07.verdict("q2", balanced_accuracy=lambda t, p: float(np.mean(t == p))), "plain accuracy")
    _not_yet(EX07.verdict("q2", balanced_accuracy=lambda t, p: _balanced(p, t)), "mean precision")
    every_label = lambda t, p: float(np.mean([np.mean(p[t == c] == c) if (t == c).any() else 0.0  # noqa: E731
                                              for c in range(max(t.max(), p.max()) + 1)]))
    _not_yet(EX07.verdict("q2", balanced_accuracy=every_label), "do not occur")
    _not_yet(EX07.verdict("q2", balanced_accuracy=lambda t, p: "0.5"), "number")
    _not_yet(EX07.judge("q2", {"values": [0.5]}), "every set")


def _export(model, path, example):
    model.eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    torch.jit.save(traced, path)


@pytest.mark.filterwarnings("ignore")
def test_07_export_model():
    assert EX07.verdict("q3", export_model=_export).passed
    assert EX07.verdict("q3", export_model=lambda m, path, e: tl.export_torchscript(m, path, example=e)).passed

    def in_train_mode(model, path, example):
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model, example, check_trace=False), path)
    _not_yet(EX07.verdict("q3", export_model=in_train_mode), "model.eval()")
    _not_yet(EX07.verdict("q3", export_model=lambda m, path, e: torch.save(m.state_dict(), path)),
             "not a TorchScript model")
    _not_yet(EX07.verdict("q3", export_model=lambda m, path, e: None), "wrote no file")
    _not_yet(EX07.judge("q3", {"outputs": [0.0] * 24}), "eval mode")


def test_07_quiz_items():
    assert EX07.verdict("q4", answer_q4="a").passed
    _not_yet(EX07.verdict("q4", answer_q4="b"), "recall")
    assert EX07.verdict("q5", answer_q5=0.8).passed
    _not_yet(EX07.verdict("q5", answer_q5=0.5), "flagged scans")


def _choose(rows, budget_ms):
    fast = [row for row in rows if row["ms_per_image"] <= budget_ms]
    return max(fast, key=lambda row: row["probe_acc"])["name"] if fast else None


def test_07_choose_backbone():
    assert EX07.verdict("q6", choose_backbone=_choose).passed
    by_sorting = lambda rows, b: next((r["name"] for r in sorted(rows, key=lambda r: -r["probe_acc"])  # noqa: E731
                                       if r["ms_per_image"] <= b), None)
    assert EX07.verdict("q6", choose_backbone=by_sorting).passed
    ignores_budget = lambda rows, b: max(rows, key=lambda r: r["probe_acc"])["name"]  # noqa: E731
    _not_yet(EX07.verdict("q6", choose_backbone=ignores_budget), "whatever its speed")
    fastest = lambda rows, b: min(rows, key=lambda r: r["ms_per_image"])["name"]  # noqa: E731
    _not_yet(EX07.verdict("q6", choose_backbone=fastest), "fastest")
    smallest = lambda rows, b: min((r for r in rows if r["ms_per_image"] <= b),  # noqa: E731
                                   key=lambda r: r["params_m"], default={"name": None})["name"]
    _not_yet(EX07.verdict("q6", choose_backbone=smallest), "smallest")
    strict = lambda rows, b: _choose([r for r in rows if r["ms_per_image"] < b], b)  # noqa: E731
    _not_yet(EX07.verdict("q6", choose_backbone=strict), "exactly the budget")

    def never_none(rows, budget_ms):
        return _choose(rows, budget_ms) or min(rows, key=lambda r: r["ms_per_image"])["name"]
    _not_yet(EX07.verdict("q6", choose_backbone=never_none), "return None")
    row = lambda rows, b: next((r for r in rows if r["name"] == _choose(rows, b)), None)  # noqa: E731
    _not_yet(EX07.verdict("q6", choose_backbone=row), "not the whole row")
    _not_yet(EX07.verdict("q6", choose_backbone=lambda rows, b: 3), "a str")
    _not_yet(EX07.verdict("q6", choose_backbone="efficientnet_lite1"), "function")
    _not_yet(EX07.judge("q6", {"choices": ["efficientnet_lite1"]}), "every table")
    _not_yet(EX07.judge("q6", {"choices": [["efficientnet_lite1"]] * 5}), "every table")
    _not_yet(EX07.judge("q6", {"choices": ["efficientnet_lite1"] * 5}), "return None")
    _not_yet(EX07.judge("q6", {"choices": ["efficientnet_lite1"] * 2 + [None] + ["efficientnet_lite1"] * 2}),
             "'efficientnet_b0'")
