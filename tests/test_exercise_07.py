"""The judges of exercise 07 (choosing and evaluating): right answers pass, plausible wrong ones get their own
hint, and malformed evidence never passes (nor raises).

Code items are checked the way a notebook checks them, ``EX07.verdict("qN", fn=...)``, on a freshly
drawn probe each time; the replay and draw-stability tests pin the seeds.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

import tlkit as tl
from tlkit.course.exercises import exercise, tensor_evidence

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
    _not_yet(judge_on_probe(EX07, "q2", {"values": [0.5]}), "every set")


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
    probe = EX07.item("q3").probe(7)
    zeros = torch.zeros(probe["images"].shape[0], probe["classes"])
    _not_yet(EX07.judge("q3", {"outputs": tensor_evidence({"logits": zeros})}, probe), "eval mode")
    _not_yet(EX07.judge("q3", {"outputs": tensor_evidence({"logits": zeros[:, :2]})}, probe), "logits (N,")
    _not_yet(EX07.judge("q3", {"outputs": [0.0] * 24}, probe), "logits (N,")


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
    _not_yet(judge_on_probe(EX07, "q6", {"choices": ["efficientnet_lite1"]}), "every table")
    _not_yet(judge_on_probe(EX07, "q6", {"choices": [["efficientnet_lite1"]] * 5}), "every table")


def _right_choices(cases):
    return [_choose(rows, budget) for rows, budget in cases]


def test_07_choose_backbone_hints_name_the_table():
    cases = EX07.item("q6").probe(11)
    some_name = cases[2][0][0]["name"]
    _not_yet(EX07.judge("q6", {"choices": [some_name] * 5}, cases), "return None")
    wrong = _right_choices(cases)
    wrong[3] = next(row["name"] for row in cases[3][0] if row["name"] != wrong[3])
    _not_yet(EX07.judge("q6", {"choices": wrong}, cases), repr(_choose(*cases[3])), f"budget of {cases[3][1]} ms")


def test_07_choose_backbone_tables_tell_the_mistakes_apart_on_every_draw():
    """The structure the hints rely on, on many draws: the best is too slow, a backbone takes exactly the
    budget, nothing fits, an unsorted table whose first fitting row is not the answer, everything fits;
    and in every table the best is neither the fastest nor the smallest, nor the smallest the fastest."""
    for seed in range(200):
        cases = EX07.item("q6").probe(seed)
        (slow, b1), (exact, b2), (none, b3), (unsorted, b4), (every, b5) = cases
        best = max(slow, key=lambda r: r["probe_acc"])
        assert best["ms_per_image"] > b1 and _choose(slow, b1) is not None
        assert _choose(exact, b2) != _choose([r for r in exact if r["ms_per_image"] < b2], b2)
        assert any(r["ms_per_image"] == b2 for r in exact)
        assert _choose(none, b3) is None
        assert _choose(unsorted, b4) not in (None, max(unsorted, key=lambda r: r["probe_acc"])["name"])
        assert next(r["name"] for r in unsorted if r["ms_per_image"] <= b4) != _choose(unsorted, b4)
        assert all(r["ms_per_image"] <= b5 for r in every)
        for rows, _ in cases:
            top = max(rows, key=lambda r: r["probe_acc"])
            fastest = min(rows, key=lambda r: r["ms_per_image"])
            smallest = min(rows, key=lambda r: r["params_m"])
            assert top is not fastest and top is not smallest and smallest is not fastest
            assert len({r["name"] for r in rows}) == len(rows)
            assert len({r["probe_acc"] for r in rows}) == len({r["ms_per_image"] for r in rows}) == len(rows)


RIGHT = {"q1": {"class_metrics": _metrics}, "q2": {"balanced_accuracy": _balanced},
         "q3": {"export_model": _export}, "q6": {"choose_backbone": _choose}}


@pytest.mark.filterwarnings("ignore")
def test_07_answers_are_judged_on_their_own_probe():
    """Evidence from one draw (an honest run replayed) fails on another draw: every code item."""
    for item, values in RIGHT.items():
        for first_seed, second_seed in ((1, 2), (3, 4)):
            first, second = EX07.item(item).probe(first_seed), EX07.item(item).probe(second_seed)
            evidence = EX07.collect(item, values, first)
            assert EX07.judge(item, evidence, first).passed, item
            assert not EX07.judge(item, evidence, second).passed, item


def _in_train_mode(model, path, example):
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, example, check_trace=False), path)


def _swapped(cm):
    precision, recall, f1 = _metrics(cm)
    return recall, precision, f1


def _strict(rows, budget_ms):
    return _choose([r for r in rows if r["ms_per_image"] < budget_ms], budget_ms)


def _fastest(rows, budget_ms):
    return min(rows, key=lambda r: r["ms_per_image"])["name"]


def _smallest(rows, budget_ms):
    return min((r for r in rows if r["ms_per_image"] <= budget_ms), key=lambda r: r["params_m"],
               default={"name": None})["name"]


def _never_none(rows, budget_ms):
    return _choose(rows, budget_ms) or min(rows, key=lambda r: r["ms_per_image"])["name"]


@pytest.mark.filterwarnings("ignore")
def test_07_verdicts_do_not_depend_on_the_draw():
    """Instant feedback must not be a lottery: right stays right and each mistake keeps its hint on every draw."""
    ignores_budget = lambda rows, b: max(rows, key=lambda r: r["probe_acc"])["name"]  # noqa: E731
    for seed in range(5):
        assert EX07.verdict("q1", seed=seed, class_metrics=_metrics).passed
        assert "swapped" in EX07.verdict("q1", seed=seed, class_metrics=_swapped).hint
        assert "harmonic mean" in EX07.verdict("q1", seed=seed,
                                               class_metrics=lambda cm: _metrics(cm, harmonic=False)).hint
        with np.errstate(divide="ignore", invalid="ignore"):
            assert "matrix 2 gives NaN" in EX07.verdict("q1", seed=seed,
                                                         class_metrics=lambda cm: _metrics(cm, safe=False)).hint
        assert EX07.verdict("q2", seed=seed, balanced_accuracy=_balanced).passed
        assert "plain accuracy" in EX07.verdict("q2", seed=seed,
                                                balanced_accuracy=lambda t, p: float(np.mean(t == p))).hint
        assert "mean precision" in EX07.verdict("q2", seed=seed, balanced_accuracy=lambda t, p: _balanced(p, t)).hint
        assert "do not occur" in EX07.verdict("q2", seed=seed, balanced_accuracy=_every_label).hint
        assert EX07.verdict("q3", seed=seed, export_model=_export).passed
        assert "model.eval()" in EX07.verdict("q3", seed=seed, export_model=_in_train_mode).hint
        assert EX07.verdict("q6", seed=seed, choose_backbone=_choose).passed
        assert "whatever its speed" in EX07.verdict("q6", seed=seed, choose_backbone=ignores_budget).hint
        assert "fastest" in EX07.verdict("q6", seed=seed, choose_backbone=_fastest).hint
        assert "smallest" in EX07.verdict("q6", seed=seed, choose_backbone=_smallest).hint
        assert "exactly the budget" in EX07.verdict("q6", seed=seed, choose_backbone=_strict).hint
        assert "return None" in EX07.verdict("q6", seed=seed, choose_backbone=_never_none).hint


def _every_label(t, p):
    return float(np.mean([np.mean(p[t == c] == c) if (t == c).any() else 0.0
                          for c in range(max(t.max(), p.max()) + 1)]))


@pytest.mark.filterwarnings("ignore")
def test_07_the_same_seed_draws_the_same_probe_and_leaves_the_learners_random_stream_alone():
    for item, values in RIGHT.items():
        torch.manual_seed(5)
        expected = torch.rand(3)
        torch.manual_seed(5)
        first = EX07.collect(item, values, EX07.item(item).probe(9))
        again = EX07.collect(item, values, EX07.item(item).probe(9))
        assert torch.equal(torch.rand(3), expected), item
        assert first == again, item
