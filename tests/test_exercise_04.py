"""The judges of exercise 04 (learning rates): right answers pass, plausible wrong ones get their own
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

EX04 = exercise("04")


def test_the_exercise_has_code_and_quiz_items():
    assert len(EX04.ids) >= 4
    assert all(item.question for item in EX04.items)


def test_malformed_evidence_never_passes_and_never_raises():
    assert_malformed_evidence_never_passes(EX04)


def _steepest(lrs, losses):
    lrs, losses = np.asarray(lrs), np.asarray(losses)
    lowest = int(np.argmin(losses))
    return float(lrs[int(np.argmin(np.gradient(losses[: lowest + 1], np.log10(lrs[: lowest + 1]))))])


def test_04_pick_lr():
    assert EX04.verdict("q1", pick_lr=_steepest).passed
    assert EX04.verdict("q1", pick_lr=lambda a, b: a[int(np.argmin(b))] / 10).passed  # the rule of thumb
    assert EX04.verdict("q1", pick_lr=lambda a, b: np.float64(_steepest(a, b))).passed
    _not_yet(EX04.verdict("q1", pick_lr=lambda a, b: a[int(np.argmin(b))]), "lowest point")
    _not_yet(EX04.verdict("q1", pick_lr=lambda a, b: a[-1]), "past the minimum")
    _not_yet(EX04.verdict("q1", pick_lr=lambda a, b: a[0]), "smallest LR")
    _not_yet(EX04.verdict("q1", pick_lr=lambda a, b: a[int(np.argmin(b))] / 2.5), "too close")
    _not_yet(EX04.verdict("q1", pick_lr=lambda a, b: "1e-3"), "number")
    _not_yet(EX04.verdict("q1", pick_lr=lambda a, b: -1.0), "positive")
    _not_yet(EX04.judge("q1", {"picks": [1e-4, 1e-3]}), "one LR")


def _step(model, batch, optimizer, loss_fn, zero=True, step=True, as_tensor=False):
    x, y = batch
    if zero:
        optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    if step:
        optimizer.step()
    return loss if as_tensor else loss.item()


def test_04_train_step():
    assert EX04.verdict("q2", train_step=_step).passed
    _not_yet(EX04.verdict("q2", train_step=lambda *a: _step(*a, zero=False)), "zero_grad")
    _not_yet(EX04.verdict("q2", train_step=lambda *a: _step(*a, step=False)), "did not change")
    _not_yet(EX04.verdict("q2", train_step=lambda *a: _step(*a, as_tensor=True)), "float")

    def loss_after(model, batch, optimizer, loss_fn):
        _step(model, batch, optimizer, loss_fn)
        return loss_fn(model(batch[0]), batch[1]).item()
    _not_yet(EX04.verdict("q2", train_step=loss_after), "before the step")

    def own_optimizer(model, batch, optimizer, loss_fn):
        return _step(model, batch, torch.optim.Adam(model.parameters()), loss_fn)
    _not_yet(EX04.verdict("q2", train_step=own_optimizer), "optimizer you were given")
    _not_yet(EX04.judge("q2", {"returned": [1.0, 1.0], "params": [[0.0], [0.0]]}), "")


def _groups(parts, lr, mult):
    return [{"params": p.parameters(), "lr": lr * mult ** (len(parts) - 1 - i)} for i, p in enumerate(parts)]


def test_04_discriminative_groups():
    assert EX04.verdict("q3", discriminative_groups=_groups).passed
    reversed_lrs = lambda parts, lr, mult: [{"params": p.parameters(), "lr": lr * mult**i}  # noqa: E731
                                            for i, p in enumerate(parts)]
    _not_yet(EX04.verdict("q3", discriminative_groups=reversed_lrs), "reversed")
    same = lambda parts, lr, mult: [{"params": p.parameters(), "lr": lr} for p in parts]  # noqa: E731
    _not_yet(EX04.verdict("q3", discriminative_groups=same), "same LR")
    no_lr = lambda parts, lr, mult: [{"params": p.parameters()} for p in parts]  # noqa: E731
    _not_yet(EX04.verdict("q3", discriminative_groups=no_lr), "no 'lr'")
    _not_yet(EX04.verdict("q3", discriminative_groups=lambda parts, lr, mult: _groups(parts, lr, mult)[1:]),
             "no group")
    _not_yet(EX04.verdict("q3", discriminative_groups=lambda parts, lr, mult: {"lr": lr}), "list of dicts")


def test_04_quiz_items():
    assert EX04.verdict("q4", answer_q4=2.5e-4).passed
    _not_yet(EX04.verdict("q4", answer_q4=5e-4), "Halve")
    assert EX04.verdict("q5", answer_q5="b").passed
    _not_yet(EX04.verdict("q5", answer_q5="c"), "AdamW")


