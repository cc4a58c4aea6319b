"""The judges of exercise 05 (overfitting and regularisation): right answers pass, plausible wrong ones get their own
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

EX05 = exercise("05")


def test_the_exercise_has_code_and_quiz_items():
    assert len(EX05.ids) >= 4
    assert all(item.question for item in EX05.items)


def test_malformed_evidence_never_passes_and_never_raises():
    assert_malformed_evidence_never_passes(EX05)


def _stop(losses, patience):
    return len(losses) > 0 and len(losses) - 1 - int(np.argmin(losses)) >= patience


def test_05_should_stop():
    assert EX05.verdict("q1", should_stop=_stop).passed
    assert EX05.verdict("q1", should_stop=lambda v, p: np.bool_(_stop(v, p))).passed
    _not_yet(EX05.verdict("q1", should_stop=lambda v, p: len(v) > 0 and len(v) - 1 - int(np.argmin(v)) >= p - 1),
             "one epoch early")
    _not_yet(EX05.verdict("q1", should_stop=lambda v, p: len(v) > 0 and len(v) - 1 - int(np.argmin(v)) > p),
             "one epoch late")
    _not_yet(EX05.verdict("q1", should_stop=lambda v, p: len(v) > 0 and int(np.argmin(v[::-1])) >= p),
             "equal to the best")

    def previous_epoch(v, p):
        return len(v) > p and all(v[i] >= v[i - 1] for i in range(len(v) - p, len(v)))
    _not_yet(EX05.verdict("q1", should_stop=previous_epoch), "lowest loss so far")
    _not_yet(EX05.verdict("q1", should_stop=lambda v, p: 1), "True or False")


def _dropout(model, p):
    model.classifier = nn.Sequential(nn.Dropout(p), model.classifier)
    return model


def test_05_add_dropout():
    assert EX05.verdict("q2", add_dropout=_dropout).passed
    assert EX05.verdict("q2", add_dropout=tl.add_head_dropout).passed

    def after(model, p):
        model.classifier = nn.Sequential(model.classifier, nn.Dropout(p))
        return model
    _not_yet(EX05.verdict("q2", add_dropout=after), "after the head")

    def new_head(model, p):
        model.classifier = nn.Sequential(nn.Dropout(p), nn.Linear(6, 6))
        return model
    _not_yet(EX05.verdict("q2", add_dropout=new_head), "eval mode")

    def on_the_input(model, p):
        model.features = nn.Sequential(nn.Dropout(p), model.features)
        return model
    _not_yet(EX05.verdict("q2", add_dropout=on_the_input), "directly in front of the head")
    _not_yet(EX05.verdict("q2", add_dropout=lambda m, p: _dropout(m, 0.5)), "use the p")
    _not_yet(EX05.verdict("q2", add_dropout=lambda m, p: m), "nothing was dropped")
    _not_yet(EX05.verdict("q2", add_dropout=lambda m, p: None), "return the model")


def _l2sp(model, start, alpha, beta, body_to_start=True, head_to_zero=True, half=True):
    body = sum(((p - (start[n] if body_to_start else 0)) ** 2).sum()
               for n, p in model.named_parameters() if not n.startswith("head."))
    head = sum(((p - (0 if head_to_zero else start[n])) ** 2).sum()
               for n, p in model.named_parameters() if n.startswith("head."))
    factor = 0.5 if half else 1.0
    return factor * (alpha * body + beta * head)


def test_05_l2sp_penalty():
    assert EX05.verdict("q3", l2sp_penalty=_l2sp).passed
    _not_yet(EX05.verdict("q3", l2sp_penalty=lambda *a: _l2sp(*a, half=False)), "twice too big")
    _not_yet(EX05.verdict("q3", l2sp_penalty=lambda *a: _l2sp(*a, body_to_start=False)), "towards zero")
    _not_yet(EX05.verdict("q3", l2sp_penalty=lambda *a: _l2sp(*a, head_to_zero=False)), "head has no pretrained")
    _not_yet(EX05.verdict("q3", l2sp_penalty=lambda *a: _l2sp(*a).item()), "return a tensor")
    _not_yet(EX05.verdict("q3", l2sp_penalty=lambda *a: _l2sp(*a).detach()), "no gradient")
    _not_yet(EX05.verdict("q3", l2sp_penalty=lambda *a: _l2sp(*a).reshape(1).repeat(2)), "one number")


def test_05_quiz_items():
    assert EX05.verdict("q4", answer_q4="b").passed
    _not_yet(EX05.verdict("q4", answer_q4="a"), "inflated the validation score")
    assert EX05.verdict("q5", answer_q5=0.84).passed
    _not_yet(EX05.verdict("q5", answer_q5=0.8), "true class")


