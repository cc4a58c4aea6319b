"""The judges of exercise 02 (feature extraction): right answers pass, each plausible mistake gets its own hint.

Code items are checked the way a notebook checks them, ``EXERCISE.verdict("qN", fn=...)`` with a
right and a plausible-wrong implementation, on a freshly drawn probe each time; judges are also fed
malformed evidence directly, which must never pass and never raise.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tlkit as tl
from tlkit.course.checks.ex02_feature_extraction import EXERCISE as EX02

from _exercise_helpers import assert_malformed_evidence_never_passes, hint, judge_on_probe, not_yet  # noqa: F401


def test_the_exercise_is_found_by_number_and_has_enough_items():
    assert tl.exercise("02") is EX02
    assert len(EX02.ids) >= 4 and all(it.question for it in EX02.items)


def test_malformed_evidence_never_passes_and_never_raises():
    assert_malformed_evidence_never_passes(EX02)


@pytest.fixture(scope="module")
def frozen_model():
    model = tl.load_pretrained("efficientnet_lite0", num_classes=8)
    return tl.freeze(model)


def test_ex02_frozen_model(frozen_model, lite0_imagenet):
    assert EX02.verdict("q1", model=frozen_model).passed
    assert "ImageNet head" in hint(EX02, "q1", model=lite0_imagenet)
    everything = copy.deepcopy(frozen_model)
    for p in everything.parameters():
        p.requires_grad = False
    assert "the new head too" in hint(EX02, "q1", model=everything)
    assert "nothing in the body is frozen" in hint(EX02, "q1", model=tl.unfreeze(copy.deepcopy(frozen_model)))
    assert "3 body parameters still learn" in hint(EX02, "q1", model=tl.unfreeze_last(copy.deepcopy(frozen_model), 1))
    random_body = tl.freeze(tl.load_pretrained("efficientnet_lite0", num_classes=8, pretrained=False))
    assert "not the pretrained one" in hint(EX02, "q1", model=random_body)


def test_ex02_trainable_count():
    assert EX02.verdict("q2", n_trainable=10248).passed
    assert "counted every parameter" in hint(EX02, "q2", n_trainable=3381256)
    assert "frozen parameters" in hint(EX02, "q2", n_trainable=3381256 - 10248)
    assert "ImageNet head" in hint(EX02, "q2", n_trainable=1281000)
    assert "biases" in hint(EX02, "q2", n_trainable=10240)
    assert "parameter tensors" in hint(EX02, "q2", n_trainable=2)
    assert "should be an int" in hint(EX02, "q2", n_trainable=10248.0)
    assert "tensor" in hint(EX02, "q2", n_trainable=torch.tensor(10248))
    assert "set n_trainable to an int" in hint(EX02, "q2", n_trainable="10248")


def _step(head, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(head(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def test_ex02_train_step():
    assert EX02.verdict("q3", train_step=_step).passed

    def no_zero_grad(head, optimizer, x, y):
        loss = F.cross_entropy(head(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def no_step(head, optimizer, x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(head(x), y)
        loss.backward()
        return loss.item()

    def tensor_loss(head, optimizer, x, y):
        _step(head, optimizer, x, y)
        return F.cross_entropy(head(x), y).item()   # the loss after the step

    def own_optimizer(head, optimizer, x, y):
        return _step(head, torch.optim.Adam(head.parameters(), lr=1e-2), x, y)
    assert "zero_grad" in hint(EX02, "q3", train_step=no_zero_grad)
    assert "did not change" in hint(EX02, "q3", train_step=no_step)
    assert "weights are right but the returned loss" in hint(EX02, "q3", train_step=tensor_loss)
    assert "the optimizer you are given" in hint(EX02, "q3", train_step=own_optimizer)

    def returns_tensor(head, optimizer, x, y):
        optimizer.zero_grad()
        loss = F.cross_entropy(head(x), y)
        loss.backward()
        optimizer.step()
        return loss
    assert "loss.item()" in hint(EX02, "q3", train_step=returns_tensor)


def test_ex02_head_judge_from_predictions():
    from tlkit.course.checks.ex02_feature_extraction import _test_split
    labels = _test_split().labels.tolist()
    n = len(labels)
    assert EX02.judge("q4", {"shape": [n, 8], "predictions": labels}).passed
    assert "no better than chance" in EX02.judge("q4", {"shape": [n, 8], "predictions": [0] * n}).hint
    half = labels[: n // 2] + [(t + 1) % 8 for t in labels[n // 2:]]
    assert "should beat 60%" in EX02.judge("q4", {"shape": [n, 8], "predictions": half}).hint
    assert "N x 8" in EX02.judge("q4", {"shape": [n, 1000], "predictions": labels}).hint
    assert not EX02.judge("q4", {"shape": [n, 8], "predictions": [float(t) for t in labels]}).passed


def test_ex02_head_collects_on_held_out_features(frozen_model):
    untrained = nn.Linear(1280, 8)
    nn.init.zeros_(untrained.weight)
    nn.init.zeros_(untrained.bias)   # every image gets class 0: exactly chance
    assert "no better than chance" in hint(EX02, "q4", head=untrained)
    assert "not the whole model" in hint(EX02, "q4", head=frozen_model)
    assert "should be a model" in hint(EX02, "q4", head=[1, 2])


def test_ex02_quiz_item():
    assert EX02.verdict("q5", answer_q5="b").passed and not EX02.verdict("q5", answer_q5="c").passed
    assert "stored features no longer match" in hint(EX02, "q5", answer_q5="a")


