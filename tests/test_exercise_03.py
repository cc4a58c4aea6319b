"""The judges of exercise 03 (freezing and fine-tuning): right answers pass, each plausible mistake gets its own hint.

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
from tlkit.course.checks.ex03_freezing_and_fine_tuning import EXERCISE as EX03

from _exercise_helpers import assert_malformed_evidence_never_passes, hint, judge_on_probe, not_yet  # noqa: F401


def test_the_exercise_is_found_by_number_and_has_enough_items():
    assert tl.exercise("03") is EX03
    assert len(EX03.ids) >= 4 and all(it.question for it in EX03.items)


def test_malformed_evidence_never_passes_and_never_raises():
    assert_malformed_evidence_never_passes(EX03)


def _unfreeze(model, n):
    for p in model.parameters():
        p.requires_grad = False
    parts = tl.parts(model)
    for part in parts[len(parts) - 1 - n:]:
        for p in part.parameters(model):
            p.requires_grad = True


def test_ex03_unfreeze_last_n():
    assert EX03.verdict("q1", unfreeze_last_n=_unfreeze).passed
    assert EX03.verdict("q1", unfreeze_last_n=tl.unfreeze_last).passed

    def neck_always(model, n):
        _unfreeze(model, n + 1)

    def only_freezes(model, n):
        parts = tl.parts(model)
        for part in parts[:len(parts) - 1 - n]:
            for p in part.parameters(model):
                p.requires_grad = False

    def head_frozen(model, n):
        _unfreeze(model, n)
        for p in model.classifier.parameters():
            p.requires_grad = False
    assert "body[-0:]" in hint(EX03, "q1", unfreeze_last_n=_minus_zero)
    assert "one part too many" in hint(EX03, "q1", unfreeze_last_n=neck_always)
    assert "one part too few" in hint(EX03, "q1", unfreeze_last_n=lambda m, n: _unfreeze(m, max(n - 1, 0)))
    assert "changed nothing" in hint(EX03, "q1", unfreeze_last_n=lambda m, n: None)

    def unfreezes_only(model, n):
        parts = tl.parts(model)
        for part in parts[len(parts) - 1 - n:]:
            for p in part.parameters(model):
                p.requires_grad = True
    assert "nothing was frozen" in hint(EX03, "q1", unfreeze_last_n=unfreezes_only)
    assert "arrives (partly) frozen" in hint(EX03, "q1", unfreeze_last_n=only_freezes)
    assert "the head must learn too" in hint(EX03, "q1", unfreeze_last_n=head_frozen)


def _bn_eval(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
            m.eval()


def test_ex03_frozen_bn_eval():
    assert EX03.verdict("q2", frozen_bn_eval=_bn_eval).passed
    assert EX03.verdict("q2", frozen_bn_eval=tl.set_frozen_bn_eval).passed

    def only_2d(model):
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and not any(p.requires_grad for p in m.parameters()):
                m.eval()

    def every_bn(model):
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()

    def freeze_bn_params(model):
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                for p in m.parameters():
                    p.requires_grad = False
    assert "BatchNorm1d" in hint(EX03, "q2", frozen_bn_eval=only_2d)
    assert "whose parameters learn went to eval" in hint(EX03, "q2", frozen_bn_eval=every_bn)
    assert "whole model in eval mode" in hint(EX03, "q2", frozen_bn_eval=lambda m: m.eval())
    assert "still in train mode" in hint(EX03, "q2", frozen_bn_eval=lambda m: None)
    assert "changed which parameters learn" in hint(EX03, "q2", frozen_bn_eval=freeze_bn_params)


def test_ex03_frozen_bn_eval_keeps_running_stats_still_on_a_real_model():
    """What the item promises, measured directly: after model.train() + the solution nothing moves."""
    model = tl.freeze(tl.load_pretrained("efficientnet_lite0", num_classes=8, pretrained=False))
    means = [m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.train()
    _bn_eval(model)
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    after = [m.running_mean for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(means, after))


def _groups(model, lr, body_factor=0.1):
    head = [p for p in tl.get_head(model).parameters() if p.requires_grad]
    ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [{"params": head, "lr": lr}, {"params": body, "lr": lr * body_factor}]


def test_ex03_lr_groups():
    assert EX03.verdict("q3", lr_groups=_groups).passed

    def with_frozen(model, lr, body_factor=0.1):
        ids = {id(p) for p in tl.get_head(model).parameters()}
        return [{"params": list(tl.get_head(model).parameters()), "lr": lr},
                {"params": [p for p in model.parameters() if id(p) not in ids], "lr": lr * body_factor}]

    def swapped(model, lr, body_factor=0.1):
        head, body = _groups(model, lr, body_factor)
        return [{"params": head["params"], "lr": body["lr"]}, {"params": body["params"], "lr": head["lr"]}]

    def duplicated(model, lr, body_factor=0.1):
        return [{"params": list(tl.get_head(model).parameters()), "lr": lr},
                {"params": [p for p in model.parameters() if p.requires_grad], "lr": lr * body_factor}]

    def no_lr(model, lr, body_factor=0.1):
        head, body = _groups(model, lr, body_factor)
        return [head, {"params": body["params"]}]
    assert "frozen parameters are in the groups" in hint(EX03, "q3", lr_groups=with_frozen)
    assert "other way round" in hint(EX03, "q3", lr_groups=swapped)
    assert "every parameter learns at lr" in hint(EX03, "q3", lr_groups=lambda m, lr, f=0.1: _groups(m, lr, 1.0))
    assert "in two groups" in hint(EX03, "q3", lr_groups=duplicated)
    assert "no 'lr' of its own" in hint(EX03, "q3", lr_groups=no_lr)
    assert "not fixed numbers" in hint(EX03, "q3", lr_groups=lambda m, lr, f=0.1: _groups(m, 1e-3, 0.1))
    assert "in no group" in hint(EX03, "q3", lr_groups=lambda m, lr, f=0.1: _groups(m, lr, f)[:1])
    assert "returned a generator" in hint(EX03, "q3", lr_groups=lambda m, lr, f=0.1: m.parameters())


def test_ex03_quiz_items():
    assert EX03.verdict("q4", answer_q4="b").passed and not EX03.verdict("q4", answer_q4="a").passed
    assert "shuffling" in hint(EX03, "q4", answer_q4="c")
    assert EX03.verdict("q5", answer_q5=1027848 / 3381256).passed and EX03.verdict("q5", answer_q5="30.4%").passed
    assert not EX03.verdict("q5", answer_q5=10248 / 3381256).passed


def test_ex03_answers_are_judged_on_their_own_probe():
    """Evidence from one draw (an honest run replayed) fails on another draw: every code item."""
    right = {"q1": {"unfreeze_last_n": _unfreeze}, "q2": {"frozen_bn_eval": _bn_eval}, "q3": {"lr_groups": _groups}}
    for item, values in right.items():
        first, second = EX03.item(item).probe(1), EX03.item(item).probe(2)
        evidence = EX03.collect(item, values, first)
        assert EX03.judge(item, evidence, first).passed
        assert not EX03.judge(item, evidence, second).passed, item


def test_ex03_verdicts_do_not_depend_on_the_draw():
    """Instant feedback must not be a lottery: right stays right and each mistake keeps its hint on every draw."""
    mistakes = {"body[-0:]": _minus_zero, "one part too many": lambda m, n: _unfreeze(m, n + 1),
                "one part too few": lambda m, n: _unfreeze(m, max(n - 1, 0)), "changed nothing": lambda m, n: None}
    for seed in range(12):
        assert EX03.verdict("q1", seed=seed, unfreeze_last_n=_unfreeze).passed
        for words, mistake in mistakes.items():
            assert words in EX03.verdict("q1", seed=seed, unfreeze_last_n=mistake).hint, (seed, words)
    for seed in range(6):
        assert EX03.verdict("q2", seed=seed, frozen_bn_eval=_bn_eval).passed
        assert "BatchNorm1d" in EX03.verdict("q2", seed=seed, frozen_bn_eval=_only_2d).hint
        assert EX03.verdict("q3", seed=seed, lr_groups=_groups).passed


def _minus_zero(model, n):
    for p in model.parameters():
        p.requires_grad = False
    parts = tl.parts(model)
    for part in parts[:-1][-n:] + parts[-1:]:
        for p in part.parameters(model):
            p.requires_grad = True


def _only_2d(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and not any(p.requires_grad for p in m.parameters()):
            m.eval()
