"""The judges of exercises 01-03: right answers pass, each plausible mistake gets its own hint.

Code items are checked the way a notebook checks them, ``EXERCISE.verdict("qN", fn=...)`` with a
right and a plausible-wrong implementation; judges are also fed malformed evidence directly, which
must never pass and never raise.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tlkit as tl
from tlkit.course.checks import ex01_what_a_pretrained_model_knows as ex01_module
from tlkit.course.checks.ex01_what_a_pretrained_model_knows import EXERCISE as EX01
from tlkit.course.checks.ex02_feature_extraction import EXERCISE as EX02
from tlkit.course.checks.ex03_freezing_and_fine_tuning import EXERCISE as EX03


def hint(ex, item, **values) -> str:
    verdict = ex.verdict(item, **values)
    assert not verdict.passed, f"{item} passed a wrong answer"
    return verdict.hint


def test_the_exercises_are_found_by_number_and_have_enough_items():
    for number, ex in (("01", EX01), ("02", EX02), ("03", EX03)):
        assert tl.exercise(number) is ex
        assert len(ex.ids) >= 4 and all(it.question for it in ex.items)


@pytest.mark.parametrize("ex", [EX01, EX02, EX03], ids=lambda e: e.name)
def test_malformed_evidence_never_passes_and_never_raises(ex):
    for item in ex.ids:
        for evidence in ({}, {"runs": "x"}, {"eval": [1], "train": None}, {"value": "1"}, {"answer": 3},
                         {"params": [["a", 1]], "outputs": [2, 8]}, {"returned": [], "weights": [1.0]},
                         {"shape": [120, 8], "predictions": "all"}, "not a dict", None):
            verdict = ex.judge(item, evidence)
            assert not verdict.passed and verdict.hint, (item, evidence)
        problem = ex.judge(item, {"problem": "`x` is not defined yet"})
        assert not problem.passed and problem.hint == "`x` is not defined yet"


# ---------------------------------------------------------------- 01

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
    assert "not the pretrained features" in hint(EX01, "q2", features=lambda m, x: torch.zeros(2, 1280))


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
    assert seen and all(m is not ex01_module._pretrained() for m in seen)


# ---------------------------------------------------------------- 02

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


# ---------------------------------------------------------------- 03

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

    def minus_zero(model, n):
        for p in model.parameters():
            p.requires_grad = False
        parts = tl.parts(model)
        for part in parts[:-1][-n:] + parts[-1:]:
            for p in part.parameters(model):
                p.requires_grad = True

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
    assert "body[-0:]" in hint(EX03, "q1", unfreeze_last_n=minus_zero)
    assert "one part too many" in hint(EX03, "q1", unfreeze_last_n=neck_always)
    assert "one part too few" in hint(EX03, "q1", unfreeze_last_n=lambda m, n: _unfreeze(m, max(n - 1, 0)))
    assert "changed nothing" in hint(EX03, "q1", unfreeze_last_n=lambda m, n: None)

    def unfreezes_only(model, n):
        parts = tl.parts(model)
        for part in parts[len(parts) - 1 - n:]:
            for p in part.parameters(model):
                p.requires_grad = True
    assert "nothing was frozen" in hint(EX03, "q1", unfreeze_last_n=unfreezes_only)
    assert "arrives already frozen" in hint(EX03, "q1", unfreeze_last_n=only_freezes)
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
