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


def _count(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_ex02_trainable_count():
    assert EX02.verdict("q2", trainable_count=_count).passed
    assert EX02.verdict("q2", trainable_count=lambda m: tl.count_parameters(m, trainable_only=True)).passed
    every = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert "counted every parameter" in hint(EX02, "q2", trainable_count=every)
    assert "frozen parameters" in hint(EX02, "q2", trainable_count=lambda m: every(m) - _count(m))
    assert "biases" in hint(EX02, "q2", trainable_count=lambda m: sum(
        p.numel() for n, p in m.named_parameters() if p.requires_grad and not n.endswith("bias")))
    assert "parameter tensors" in hint(EX02, "q2", trainable_count=lambda m: sum(
        1 for p in m.parameters() if p.requires_grad))
    assert "head alone" in hint(EX02, "q2", trainable_count=lambda m: sum(p.numel() for p in m.classifier.parameters()))
    assert "not a float" in hint(EX02, "q2", trainable_count=lambda m: float(_count(m)))
    assert "tensor" in hint(EX02, "q2", trainable_count=lambda m: torch.tensor(_count(m)))
    assert "return an int" in hint(EX02, "q2", trainable_count=lambda m: str(_count(m)))
    assert "should be a function" in hint(EX02, "q2", trainable_count=10248)


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
    from tlkit.course.probes.ex02_feature_extraction import fresh_test_split
    probe = EX02.item("q4").probe(5)
    made = fresh_test_split(probe["data_seed"]).labels.tolist()
    labels = [made[i] for i in probe["order"]]
    n = len(labels)
    assert EX02.judge("q4", {"shape": [n, 8], "predictions": labels}, probe).passed
    assert "no better than chance" in EX02.judge("q4", {"shape": [n, 8], "predictions": [0] * n}, probe).hint
    half = labels[: n // 2] + [(t + 1) % 8 for t in labels[n // 2:]]
    assert "should beat 60%" in EX02.judge("q4", {"shape": [n, 8], "predictions": half}, probe).hint
    assert "N x 8" in EX02.judge("q4", {"shape": [n, 1000], "predictions": labels}, probe).hint
    assert not EX02.judge("q4", {"shape": [n, 8], "predictions": [float(t) for t in labels]}, probe).passed
    assert not EX02.judge("q4", {"shape": [n, 8], "predictions": labels}, EX02.item("q4").probe(6)).passed


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


@pytest.fixture(scope="module")
def trained_head():
    """The notebook's answer to q4: 100 Adam steps on the cached features of 10 training images per class."""
    model = tl.load_pretrained("efficientnet_lite0")
    data = tl.course_data("course")
    eval_tf = tl.eval_transforms(model.tlkit_config, 64)
    features, labels = tl.extract_features(model, tl.few_shot(data.train, 10, seed=0).with_transform(eval_tf)).tensors
    torch.manual_seed(0)
    head = nn.Linear(1280, 8)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(100):
        _step(head, optimizer, features, labels)
    return head


def test_ex02_answers_are_judged_on_their_own_probe(frozen_model, trained_head):
    """Evidence from one draw (an honest run replayed) fails on another draw: every code item with a probe."""
    right = {"q1": {"model": frozen_model}, "q2": {"trainable_count": _count}, "q3": {"train_step": _step},
             "q4": {"head": trained_head}}
    for item, values in right.items():
        first, second = EX02.item(item).probe(1), EX02.item(item).probe(2)
        evidence = EX02.collect(item, values, first)
        assert EX02.judge(item, evidence, first).passed
        assert not EX02.judge(item, evidence, second).passed, item


def test_ex02_verdicts_do_not_depend_on_the_draw(frozen_model, trained_head):
    """Instant feedback must not be a lottery: right stays right and each mistake keeps its hint on every draw."""
    random_body = tl.freeze(tl.load_pretrained("efficientnet_lite0", num_classes=8, pretrained=False))
    for seed in range(5):
        assert EX02.verdict("q1", seed=seed, model=frozen_model).passed
        assert "not the pretrained one" in EX02.verdict("q1", seed=seed, model=random_body).hint
        assert EX02.verdict("q3", seed=seed, train_step=_step).passed
        assert "zero_grad" in EX02.verdict("q3", seed=seed, train_step=_no_zero_grad).hint
        assert "did not change" in EX02.verdict("q3", seed=seed, train_step=_no_step).hint
        assert "weights are right but the returned loss" in \
            EX02.verdict("q3", seed=seed, train_step=_loss_after_the_step).hint
        assert EX02.verdict("q4", seed=seed, head=trained_head).passed
        assert "no better than chance" in EX02.verdict("q4", seed=seed, head=_class_zero_head()).hint


def test_ex02_checks_leave_the_learners_random_stream_alone(trained_head):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    EX02.verdict("q3", train_step=_step)
    EX02.verdict("q4", head=trained_head)
    assert torch.equal(torch.rand(3), expected)


def _no_zero_grad(head, optimizer, x, y):
    loss = F.cross_entropy(head(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _no_step(head, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(head(x), y)
    loss.backward()
    return loss.item()


def _loss_after_the_step(head, optimizer, x, y):
    _step(head, optimizer, x, y)
    return F.cross_entropy(head(x), y).item()


def _class_zero_head():
    head = nn.Linear(1280, 8)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)   # every image gets class 0: exactly chance
    return head
