"""The judges of exercise 05 (overfitting and regularisation): right answers pass, plausible wrong ones get their own
hint, and malformed evidence never passes (nor raises).

Code items are checked the way a notebook checks them (``EX05.verdict("qN", fn=...)``), on a freshly
drawn probe each time; the last tests replay evidence on another probe and redraw over several seeds.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

import tlkit as tl
from tlkit.course.exercises import exercise

from _exercise_helpers import assert_malformed_evidence_never_passes, judge_on_probe, not_yet as _not_yet  # noqa: F401

EX05 = exercise("05")


def test_the_exercise_has_code_and_quiz_items():
    assert len(EX05.ids) >= 4
    assert all(item.question for item in EX05.items)


def test_malformed_evidence_never_passes_and_never_raises():
    assert_malformed_evidence_never_passes(EX05)


def _stop(losses, patience):
    return len(losses) > 0 and len(losses) - 1 - int(np.argmin(losses)) >= patience


def _previous_epoch(v, p):
    return len(v) > p and all(v[i] >= v[i - 1] for i in range(len(v) - p, len(v)))


STOP_MISTAKES = {  # a plausible wrong should_stop -> words of the hint it must get
    "one epoch early": lambda v, p: len(v) > 0 and len(v) - 1 - int(np.argmin(v)) >= p - 1,
    "one epoch late": lambda v, p: len(v) > 0 and len(v) - 1 - int(np.argmin(v)) > p,
    "equal to the best": lambda v, p: len(v) > 0 and int(np.argmin(v[::-1])) >= p,
    "lowest loss so far": _previous_epoch,
}


def test_05_should_stop():
    assert EX05.verdict("q1", should_stop=_stop).passed
    assert EX05.verdict("q1", should_stop=lambda v, p: np.bool_(_stop(v, p))).passed
    for words, mistake in STOP_MISTAKES.items():
        _not_yet(EX05.verdict("q1", should_stop=mistake), words)
    _not_yet(EX05.verdict("q1", should_stop=lambda v, p: 1), "True or False")
    _not_yet(EX05.verdict("q1", should_stop=lambda v, p: len(v) - 1 - int(np.argmin(v)) >= p), "raised ValueError")


def test_05_should_stop_histories_cover_the_cases():
    """Every draw has an empty history, ties of the best, and exactly `patience` (and one fewer) epochs since it."""
    for seed in range(10):
        cases = EX05.item("q1").probe(seed)
        since = [len(c["val_losses"]) - 1 - int(np.argmin(c["val_losses"])) if c["val_losses"] else None
                 for c in cases]
        assert any(c["val_losses"] == [] for c in cases)
        assert any(s == c["patience"] for s, c in zip(since, cases))
        assert any(s == c["patience"] - 1 for s, c in zip(since, cases))
        assert any(v.count(min(v)) > 1 for v in (c["val_losses"] for c in cases) if v)


def _dropout(model, p):
    model.classifier = nn.Sequential(nn.Dropout(p), model.classifier)
    return model


def _after(model, p):
    model.classifier = nn.Sequential(model.classifier, nn.Dropout(p))
    return model


def _new_head(model, p):
    model.classifier = nn.Sequential(nn.Dropout(p), nn.Linear(model.classifier.in_features,
                                                              model.classifier.out_features))
    return model


def _on_the_input(model, p):
    model.features = nn.Sequential(nn.Dropout(p), model.features)
    return model


DROPOUT_MISTAKES = {
    "after the head": _after,
    "eval mode": _new_head,
    "directly in front of the head": _on_the_input,
    "use the p": lambda m, p: _dropout(m, 0.5),
    "nothing was dropped": lambda m, p: m,
}


def test_05_add_dropout():
    assert EX05.verdict("q2", add_dropout=_dropout).passed
    assert EX05.verdict("q2", add_dropout=tl.add_head_dropout).passed
    for words, mistake in DROPOUT_MISTAKES.items():
        _not_yet(EX05.verdict("q2", add_dropout=mistake), words)
    _not_yet(EX05.verdict("q2", add_dropout=lambda m, p: None), "return the model")


def _l2sp(model, start, alpha, beta, body_to_start=True, head_to_zero=True, half=True):
    body = sum(((p - (start[n] if body_to_start else 0)) ** 2).sum()
               for n, p in model.named_parameters() if not n.startswith("head."))
    head = sum(((p - (0 if head_to_zero else start[n])) ** 2).sum()
               for n, p in model.named_parameters() if n.startswith("head."))
    factor = 0.5 if half else 1.0
    return factor * (alpha * body + beta * head)


PENALTY_MISTAKES = {
    "twice too big": lambda *a: _l2sp(*a, half=False),
    "towards zero": lambda *a: _l2sp(*a, body_to_start=False),
    "head has no pretrained": lambda *a: _l2sp(*a, head_to_zero=False),
    "no gradient": lambda *a: _l2sp(*a).detach(),
}


def test_05_l2sp_penalty():
    assert EX05.verdict("q3", l2sp_penalty=_l2sp).passed
    for words, mistake in PENALTY_MISTAKES.items():
        _not_yet(EX05.verdict("q3", l2sp_penalty=mistake), words)
    _not_yet(EX05.verdict("q3", l2sp_penalty=lambda *a: _l2sp(*a).item()), "return a tensor")
    _not_yet(EX05.verdict("q3", l2sp_penalty=lambda *a: _l2sp(*a).reshape(1).repeat(2)), "one number")

    def from_copies(model, start, alpha, beta):
        return _l2sp(copy.deepcopy(model), start, alpha, beta)
    _not_yet(EX05.verdict("q3", l2sp_penalty=from_copies), "gradients are not")


def test_05_probes_leave_the_learners_random_state_alone():
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    for item, values in RIGHT.items():
        EX05.verdict(item, **values)
    assert torch.equal(before, torch.random.get_rng_state())


def test_05_quiz_items():
    assert EX05.verdict("q4", answer_q4="b").passed
    _not_yet(EX05.verdict("q4", answer_q4="a"), "inflated the validation score")
    assert EX05.verdict("q5", answer_q5=0.84).passed
    _not_yet(EX05.verdict("q5", answer_q5=0.8), "true class")


RIGHT = {"q1": {"should_stop": _stop}, "q2": {"add_dropout": _dropout}, "q3": {"l2sp_penalty": _l2sp}}


def test_05_answers_are_judged_on_their_own_probe():
    """Evidence from one draw (an honest run replayed) fails on another draw: every code item."""
    for item, values in RIGHT.items():
        for first_seed, second_seed in ((1, 2), (3, 4), (5, 6)):
            first, second = EX05.item(item).probe(first_seed), EX05.item(item).probe(second_seed)
            evidence = EX05.collect(item, values, first)
            assert EX05.judge(item, evidence, first).passed
            assert not EX05.judge(item, evidence, second).passed, (item, first_seed)


def test_05_verdicts_do_not_depend_on_the_draw():
    """Instant feedback must not be a lottery: right stays right and each mistake keeps its hint on every draw."""
    for seed in range(6):
        for item, values in RIGHT.items():
            assert EX05.verdict(item, seed=seed, **values).passed, (item, seed)
        for item, name, mistakes in (("q1", "should_stop", STOP_MISTAKES), ("q2", "add_dropout", DROPOUT_MISTAKES),
                                     ("q3", "l2sp_penalty", PENALTY_MISTAKES)):
            for words, mistake in mistakes.items():
                _not_yet(EX05.verdict(item, seed=seed, **{name: mistake}), words)
