"""The judges of exercise 06 (data augmentation): right answers pass, plausible wrong ones get their own
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

EX06 = exercise("06")


def test_the_exercise_has_code_and_quiz_items():
    assert len(EX06.ids) >= 4
    assert all(item.question for item in EX06.items)


def test_malformed_evidence_never_passes_and_never_raises():
    assert_malformed_evidence_never_passes(EX06)


CFG = tl.ModelConfig(name="test")


def test_06_safe_augment():
    safe = tl.train_transforms(CFG, 64, augment=["crop", "vflip", "color"], strength=0.5)
    assert EX06.verdict("q1", safe_augment=safe).passed
    assert EX06.verdict("q1", safe_augment=T.Compose([T.RandomVerticalFlip(), T.RandomRotation(8)])).passed
    _not_yet(EX06.verdict("q1", safe_augment=tl.train_transforms(CFG, 64, augment=["crop", "flip"])), "mirrored")
    _not_yet(EX06.verdict("q1", safe_augment=lambda image: image.flip(-1)), "mirrored")
    _not_yet(EX06.verdict("q1", safe_augment=tl.train_transforms(CFG, 64, augment=["rotate"])), "turned too far")
    _not_yet(EX06.verdict("q1", safe_augment=tl.eval_transforms(CFG, 64)), "same picture")
    _not_yet(EX06.verdict("q1", safe_augment=lambda image: image[0]), "(3, H, W)")


def _tta(model, images):
    model.eval()
    with torch.no_grad():
        return (model(images).softmax(1) + model(images.flip(-2)).softmax(1)) / 2


def test_06_tta_probs():
    assert EX06.verdict("q2", tta_probs=_tta).passed
    assert EX06.verdict("q2", tta_probs=lambda m, x: tl.with_tta(m.eval(), ["identity", "vflip"])(x).exp()).passed
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: ((m.eval()(x) + m(x.flip(-2))) / 2).softmax(1)),
             "averaged the logits")
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: (m.eval()(x).softmax(1) + m(x.flip(-1)).softmax(1)) / 2),
             "left↔right")
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: (m(x).softmax(1) + m(x.flip(-2)).softmax(1)) / 2),
             "model.eval()")
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: m.eval()(x).softmax(1)), "upside-down view")
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: m.eval()(x) + m(x.flip(-2))), "sum to 1")
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: _tta(m, x)[:2]), "one row per image")


def _mix(images, labels, lam, num_classes):
    onehot = nn.functional.one_hot(labels, num_classes).float()
    return lam * images + (1 - lam) * images.flip(0), lam * onehot + (1 - lam) * onehot.flip(0)


def test_06_mixup():
    assert EX06.verdict("q3", mixup=_mix).passed
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: _mix(i, y, 1 - lam, n)), "swapped")
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: (_mix(i, y, lam, n)[0],
                                                           nn.functional.one_hot(y, n).float())), "labels are not")
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: (i, _mix(i, y, lam, n)[1])), "images.flip(0)")
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: (_mix(i, y, lam, n)[0], y)), "num_classes")
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: _mix(i, y, lam, n)[0]), "pair")


def test_06_quiz_items():
    assert EX06.verdict("q4", answer_q4="b").passed
    _not_yet(EX06.verdict("q4", answer_q4="a"), "keeps the digit whole")
    assert EX06.verdict("q5", answer_q5=0.4).passed
    _not_yet(EX06.verdict("q5", answer_q5=0.625), "s = 0.8")


