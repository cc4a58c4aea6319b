"""The judges of exercise 06 (data augmentation): right answers pass, plausible wrong ones get their own
hint, and malformed evidence never passes (nor raises).

Code items are checked the way a notebook checks them, ``EX06.verdict("qN", fn=...)``, on a freshly
drawn probe each time; the replay and draw-stability tests pin the seeds.
"""
from __future__ import annotations

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
SAFE = tl.train_transforms(CFG, 64, augment=["crop", "vflip", "color"], strength=0.5)
MIRRORING = tl.train_transforms(CFG, 64, augment=["crop", "flip"])


def test_06_safe_augment():
    assert EX06.verdict("q1", safe_augment=SAFE).passed
    assert EX06.verdict("q1", safe_augment=T.Compose([T.RandomVerticalFlip(), T.RandomRotation(8)])).passed
    _not_yet(EX06.verdict("q1", safe_augment=MIRRORING), "mirrored")
    _not_yet(EX06.verdict("q1", safe_augment=lambda image: image.flip(-1)), "mirrored")
    _not_yet(EX06.verdict("q1", safe_augment=tl.train_transforms(CFG, 64, augment=["rotate"])), "turned too far")
    _not_yet(EX06.verdict("q1", safe_augment=tl.eval_transforms(CFG, 64)), "same picture")
    _not_yet(EX06.verdict("q1", safe_augment=lambda image: image[0]), "(3, H, W)")
    _not_yet(EX06.verdict("q1", safe_augment="crop"), "function")


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
    _not_yet(EX06.verdict("q2", tta_probs=_tta_train_mode), "model.eval()")
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: m.eval()(x).softmax(1)), "upside-down view")
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: m.eval()(x.flip(-2)).softmax(1)), "only the upside-down")
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: m.eval()(x) + m(x.flip(-2))), "sum to 1")
    _not_yet(EX06.verdict("q2", tta_probs=lambda m, x: _tta(m, x)[:2]), "one row per image")


def _tta_train_mode(model, images):
    return (model(images).softmax(1) + model(images.flip(-2)).softmax(1)) / 2


def _mix(images, labels, lam, num_classes):
    onehot = nn.functional.one_hot(labels, num_classes).float()
    return lam * images + (1 - lam) * images.flip(0), lam * onehot + (1 - lam) * onehot.flip(0)


def _mix_swapped(images, labels, lam, num_classes):
    return _mix(images, labels, 1 - lam, num_classes)


def test_06_mixup():
    assert EX06.verdict("q3", mixup=_mix).passed
    _not_yet(EX06.verdict("q3", mixup=_mix_swapped), "swapped")
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: (_mix(i, y, lam, n)[0],
                                                           nn.functional.one_hot(y, n).float())), "labels are not")
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: (i, _mix(i, y, lam, n)[1])), "images.flip(0)")
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: (_mix(i, y, lam, n)[0], y)), "num_classes")
    # one_hot without num_classes is as wide as the largest label + 1: too narrow for a batch without the last class
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: _mix(i, y, lam, int(y.max()) + 1)), "num_classes")
    _not_yet(EX06.verdict("q3", mixup=lambda i, y, lam, n: _mix(i, y, lam, n)[0]), "pair")


def test_06_quiz_items():
    assert EX06.verdict("q4", answer_q4="b").passed
    _not_yet(EX06.verdict("q4", answer_q4="a"), "keeps the digit whole")
    assert EX06.verdict("q5", answer_q5=0.4).passed
    _not_yet(EX06.verdict("q5", answer_q5=0.625), "s = 0.8")


RIGHT = {"q1": {"safe_augment": SAFE}, "q2": {"tta_probs": _tta}, "q3": {"mixup": _mix}}


def test_06_answers_are_judged_on_their_own_probe():
    """Evidence from one draw (an honest run replayed) fails on another draw: every code item."""
    for item, values in RIGHT.items():
        for first_seed, second_seed in ((1, 2), (3, 4)):
            first, second = EX06.item(item).probe(first_seed), EX06.item(item).probe(second_seed)
            evidence = EX06.collect(item, values, first)
            assert EX06.judge(item, evidence, first).passed, item
            assert not EX06.judge(item, evidence, second).passed, item


def test_06_verdicts_do_not_depend_on_the_draw():
    """Instant feedback must not be a lottery: right stays right and each mistake keeps its hint on every draw."""
    for seed in range(5):
        assert EX06.verdict("q1", seed=seed, safe_augment=SAFE).passed
        assert "mirrored" in EX06.verdict("q1", seed=seed, safe_augment=MIRRORING).hint
        assert "same picture" in EX06.verdict("q1", seed=seed, safe_augment=lambda image: image).hint
        assert EX06.verdict("q2", seed=seed, tta_probs=_tta).passed
        assert "model.eval()" in EX06.verdict("q2", seed=seed, tta_probs=_tta_train_mode).hint
        assert "averaged the logits" in EX06.verdict(
            "q2", seed=seed, tta_probs=lambda m, x: ((m.eval()(x) + m(x.flip(-2))) / 2).softmax(1)).hint
        assert EX06.verdict("q3", seed=seed, mixup=_mix).passed
        assert "swapped" in EX06.verdict("q3", seed=seed, mixup=_mix_swapped).hint
        assert "num_classes" in EX06.verdict("q3", seed=seed,
                                             mixup=lambda i, y, lam, n: _mix(i, y, lam, int(y.max()) + 1)).hint


def test_06_the_same_seed_draws_the_same_probe_and_leaves_the_learners_random_stream_alone():
    for item, values in RIGHT.items():
        torch.manual_seed(5)
        expected = torch.rand(3)
        torch.manual_seed(5)
        first = EX06.collect(item, values, EX06.item(item).probe(9))
        again = EX06.collect(item, values, EX06.item(item).probe(9))
        assert torch.equal(torch.rand(3), expected), item
        assert first == again, item
