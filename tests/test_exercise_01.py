"""The judges of exercise 01 (what a pretrained model knows): right answers pass, each plausible mistake gets its own hint.

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
from tlkit.course.checks.ex01_what_a_pretrained_model_knows import EXERCISE as EX01
from tlkit.course.probes._shared import pretrained_reference

from _exercise_helpers import assert_malformed_evidence_never_passes, hint, judge_on_probe, not_yet  # noqa: F401


def test_the_exercise_is_found_by_number_and_has_enough_items():
    assert tl.exercise("01") is EX01
    assert len(EX01.ids) >= 4 and all(it.question for it in EX01.items)


def test_malformed_evidence_never_passes_and_never_raises():
    assert_malformed_evidence_never_passes(EX01)


def _top5(model, x):
    model.eval()
    with torch.inference_mode():
        return torch.softmax(model(x), dim=1)[0].topk(5).indices.tolist()


def test_ex01_top5():
    assert EX01.verdict("q1", top5=_top5).passed
    assert EX01.verdict("q1", top5=lambda m, x: [g.index for g in tl.top_k(m, x, k=5)]).passed

    def no_eval(model, x):
        with torch.inference_mode():
            return model(x)[0].topk(5).indices.tolist()
    assert "model.eval()" in hint(EX01, "q1", top5=no_eval)
    assert "least likely first" in hint(EX01, "q1", top5=lambda m, x: _top5(m, x)[::-1])
    assert "tensor" in hint(EX01, "q1", top5=lambda m, x: torch.tensor(_top5(m, x)))
    assert "list inside a list" in hint(EX01, "q1", top5=lambda m, x: [_top5(m, x)])
    assert "exactly 5" in hint(EX01, "q1", top5=lambda m, x: _top5(m, x)[:3])
    assert "not the 5 most likely" in hint(EX01, "q1", top5=lambda m, x: [0, 1, 2, 3, 4])
    assert "function" in hint(EX01, "q1", top5="chelsea")

    def blank(model, x):
        raise NotImplementedError("write your code here, then run the check below")
    assert "NotImplementedError" in hint(EX01, "q1", top5=blank)


def _features(model, x):
    model.eval()
    with tl.head_removed(model), torch.inference_mode():
        return model(x)


def test_ex01_features():
    assert EX01.verdict("q2", features=_features).passed

    def no_eval(model, x):
        with tl.head_removed(model), torch.inference_mode():
            return model(x)

    def head_gone(model, x):
        model.eval()
        model.classifier = nn.Identity()
        with torch.inference_mode():
            return model(x)

    def maps(model, x):
        with torch.inference_mode():
            return model.eval().forward_features(x)
    assert "model.eval()" in hint(EX01, "q2", features=no_eval)
    assert "1000 ImageNet class scores" in hint(EX01, "q2", features=lambda m, x: m.eval()(x))
    assert "put the head back" in hint(EX01, "q2", features=head_gone)
    assert "feature maps" in hint(EX01, "q2", features=maps)
    assert "not the pretrained features" in hint(EX01, "q2", features=lambda m, x: torch.zeros(len(x), 1280))


def test_ex01_new_head(lite0_imagenet):
    model8 = copy.deepcopy(lite0_imagenet)
    tl.replace_head(model8, 8)
    assert EX01.verdict("q3", model8=model8).passed
    assert "1000-class ImageNet head" in hint(EX01, "q3", model8=lite0_imagenet)
    random_body = tl.load_pretrained("efficientnet_lite0", num_classes=8, pretrained=False)
    assert "not the pretrained one" in hint(EX01, "q3", model8=random_body)
    assert "shape [1, 8]" in hint(EX01, "q3", model8=tl.replace_head(copy.deepcopy(lite0_imagenet), 7))
    assert "should be a model" in hint(EX01, "q3", model8="efficientnet_lite0")


def test_ex01_quiz_items():
    assert EX01.verdict("q4", answer_q4=9408).passed and not EX01.verdict("q4", answer_q4=864).passed
    assert EX01.verdict("q5", answer_q5="a").passed
    assert "turns a \"b\" into a \"d\"" in hint(EX01, "q5", answer_q5="b")


def test_ex01_checks_never_hand_out_their_own_model():
    seen = []
    EX01.verdict("q1", top5=lambda m, x: seen.append(m) or _top5(m, x))
    EX01.verdict("q2", features=lambda m, x: seen.append(m) or _features(m, x))
    assert seen and all(m is not pretrained_reference() for m in seen)
    assert not pretrained_reference().training and pretrained_reference().classifier.out_features == 1000


def test_ex01_checks_leave_the_learners_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    EX01.verdict("q1", top5=lambda m, x: m(x)[0].topk(5).indices.tolist())   # dropout in train mode
    EX01.verdict("q2", features=_no_eval_features)
    assert torch.equal(torch.rand(3), expected)


def test_ex01_top5_runs_on_a_model_whose_classes_are_shuffled():
    """The right five indices change with every draw: the head's 1000 classes come in a random order."""
    answers = []
    for seed in (1, 2):
        evidence = EX01.collect("q1", {"top5": _top5}, EX01.item("q1").probe(seed))
        answers.append([d["values"] for d in evidence["eval"]])
    assert answers[0] != answers[1]


def test_ex01_answers_are_judged_on_their_own_probe(lite0_imagenet):
    """Evidence from one draw (an honest run replayed) fails on another draw: every code item."""
    right = {"q1": {"top5": _top5}, "q2": {"features": _features},
             "q3": {"model8": tl.replace_head(copy.deepcopy(lite0_imagenet), 8)}}
    for item, values in right.items():
        first, second = EX01.item(item).probe(1), EX01.item(item).probe(2)
        evidence = EX01.collect(item, values, first)
        assert EX01.judge(item, evidence, first).passed
        assert not EX01.judge(item, evidence, second).passed, item


def test_ex01_verdicts_do_not_depend_on_the_draw(lite0_imagenet):
    """Instant feedback must not be a lottery: right stays right and each mistake keeps its hint on every draw."""
    model8 = tl.replace_head(copy.deepcopy(lite0_imagenet), 8)
    random_body = tl.load_pretrained("efficientnet_lite0", num_classes=8, pretrained=False)
    for seed in range(5):
        assert EX01.verdict("q1", seed=seed, top5=_top5).passed
        assert "model.eval()" in EX01.verdict("q1", seed=seed, top5=_no_eval_top5).hint
        assert "least likely first" in EX01.verdict("q1", seed=seed, top5=lambda m, x: _top5(m, x)[::-1]).hint
        assert EX01.verdict("q2", seed=seed, features=_features).passed
        assert "model.eval()" in EX01.verdict("q2", seed=seed, features=_no_eval_features).hint
        assert EX01.verdict("q3", seed=seed, model8=model8).passed
        assert "not the pretrained one" in EX01.verdict("q3", seed=seed, model8=random_body).hint


def _no_eval_top5(model, x):
    with torch.inference_mode():
        return model(x)[0].topk(5).indices.tolist()


def _no_eval_features(model, x):
    with tl.head_removed(model), torch.inference_mode():
        return model(x)


def test_ex01_judges_can_run_side_by_side(lite0_imagenet):
    """`tlkit grade --jobs N` judges several submissions at once, in threads sharing one reference model:
    a judge must never change it (no head taken off for a moment)."""
    from concurrent.futures import ThreadPoolExecutor

    model8 = tl.replace_head(copy.deepcopy(lite0_imagenet), 8)
    values = {"q1": {"top5": _top5}, "q2": {"features": _features}, "q3": {"model8": model8}}
    cases = []
    for seed in range(2):
        for item, v in values.items():
            probe = EX01.item(item).probe(seed)
            cases.append((item, EX01.collect(item, v, probe), probe))
    with ThreadPoolExecutor(max_workers=3) as pool:
        verdicts = list(pool.map(lambda case: EX01.judge(*case), cases * 3))
    assert all(v.passed for v in verdicts), [v.hint for v in verdicts if not v.passed]
