"""The judges of exercise 04 (learning rates): right answers pass, plausible wrong ones get their own
hint, and malformed evidence never passes (nor raises).

Code items are checked the way a notebook checks them (``EX04.verdict("qN", fn=...)``), on a freshly
drawn probe each time; the last tests replay evidence on another probe and redraw over several seeds.
"""
from __future__ import annotations

import numpy as np
import torch

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


def _lowest(lrs, losses):
    return lrs[int(np.argmin(losses))]


PICK_MISTAKES = {  # a plausible wrong pick_lr -> words of the hint it must get
    "lowest point": _lowest,
    "past the minimum": lambda a, b: a[-1],
    "smallest LR": lambda a, b: a[0],
    "too close": lambda a, b: _lowest(a, b) / 2.5,
    "hardly started": lambda a, b: _steepest(a, b) / 10,
}


def test_04_pick_lr():
    assert EX04.verdict("q1", pick_lr=_steepest).passed
    assert EX04.verdict("q1", pick_lr=lambda a, b: _lowest(a, b) / 10).passed  # the rule of thumb
    assert EX04.verdict("q1", pick_lr=lambda a, b: np.float64(_steepest(a, b))).passed
    for words, mistake in PICK_MISTAKES.items():
        _not_yet(EX04.verdict("q1", pick_lr=mistake), words)
    _not_yet(EX04.verdict("q1", pick_lr=lambda a, b: "1e-3"), "number")
    _not_yet(EX04.verdict("q1", pick_lr=lambda a, b: -1.0), "positive")
    _not_yet(judge_on_probe(EX04, "q1", {"picks": [1e-4, 1e-3]}), "one LR")


def test_04_pick_lr_curves_look_like_range_tests():
    """Each drawn curve starts flat, falls, has its lowest loss well inside and ends where the loss has exploded."""
    for seed in range(20):
        for curve in EX04.item("q1").probe(seed):
            lrs, losses = np.asarray(curve["lrs"]), np.asarray(curve["losses"])
            assert np.all(np.diff(lrs) > 0) and len(lrs) >= 20
            lowest = int(np.argmin(losses))
            assert 10 < lowest < len(lrs) - 3
            assert losses[0] - losses[lowest] > 1.0 and abs(losses[1] - losses[0]) < 0.05
            assert losses[-1] > 2 * losses[lowest]


def _step(model, batch, optimizer, loss_fn, zero=True, step=True, as_tensor=False):
    x, y = batch
    if zero:
        optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    if step:
        optimizer.step()
    return loss if as_tensor else loss.item()


def _loss_after(model, batch, optimizer, loss_fn):
    _step(model, batch, optimizer, loss_fn)
    return loss_fn(model(batch[0]), batch[1]).item()


def _own_optimizer(model, batch, optimizer, loss_fn):
    return _step(model, batch, torch.optim.Adam(model.parameters()), loss_fn)


def test_04_train_step():
    assert EX04.verdict("q2", train_step=_step).passed
    _not_yet(EX04.verdict("q2", train_step=lambda *a: _step(*a, zero=False)), "zero_grad")
    _not_yet(EX04.verdict("q2", train_step=lambda *a: _step(*a, step=False)), "did not change")
    _not_yet(EX04.verdict("q2", train_step=lambda *a: _step(*a, as_tensor=True)), "float")
    _not_yet(EX04.verdict("q2", train_step=_loss_after), "before the step")
    _not_yet(EX04.verdict("q2", train_step=_own_optimizer), "optimizer you were given")
    _not_yet(judge_on_probe(EX04, "q2", {"returned": [1.0, 1.0, 1.0], "params": [[0.0], [0.0], [0.0]]}), "")


def test_04_train_step_leaves_the_learners_random_state_alone():
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    EX04.verdict("q2", train_step=_step)
    EX04.verdict("q3", discriminative_groups=_groups)
    assert torch.equal(before, torch.random.get_rng_state())


def _groups(parts, lr, mult):
    return [{"params": p.parameters(), "lr": lr * mult ** (len(parts) - 1 - i)} for i, p in enumerate(parts)]


def _reversed_lrs(parts, lr, mult):
    return [{"params": p.parameters(), "lr": lr * mult**i} for i, p in enumerate(parts)]


def _head_right_only(parts, lr, mult):
    return [{"params": p.parameters(), "lr": lr if i == len(parts) - 1 else lr * mult} for i, p in enumerate(parts)]


def test_04_discriminative_groups():
    assert EX04.verdict("q3", discriminative_groups=_groups).passed
    _not_yet(EX04.verdict("q3", discriminative_groups=_reversed_lrs), "reversed")
    same = lambda parts, lr, mult: [{"params": p.parameters(), "lr": lr} for p in parts]  # noqa: E731
    _not_yet(EX04.verdict("q3", discriminative_groups=same), "same LR")
    _not_yet(EX04.verdict("q3", discriminative_groups=_head_right_only), "the head is right")
    no_lr = lambda parts, lr, mult: [{"params": p.parameters()} for p in parts]  # noqa: E731
    _not_yet(EX04.verdict("q3", discriminative_groups=no_lr), "no 'lr'")
    _not_yet(EX04.verdict("q3", discriminative_groups=lambda parts, lr, mult: _groups(parts, lr, mult)[1:]),
             "no group")
    _not_yet(EX04.verdict("q3", discriminative_groups=lambda parts, lr, mult: {"lr": lr}), "list of dicts")

    def split_weight_and_bias(parts, lr, mult):
        groups = []
        for i, part in enumerate(parts):
            for k, p in enumerate(part.parameters()):
                groups.append({"params": [p], "lr": lr * mult ** (len(parts) - 1 - i) * (1 if k == 0 else 0.5)})
        return groups
    _not_yet(EX04.verdict("q3", discriminative_groups=split_weight_and_bias), "share that part's LR")


def test_04_quiz_items():
    assert EX04.verdict("q4", answer_q4=2.5e-4).passed
    _not_yet(EX04.verdict("q4", answer_q4=5e-4), "Halve")
    assert EX04.verdict("q5", answer_q5="b").passed
    _not_yet(EX04.verdict("q5", answer_q5="c"), "AdamW")


RIGHT = {"q1": {"pick_lr": _steepest}, "q2": {"train_step": _step}, "q3": {"discriminative_groups": _groups}}


def test_04_answers_are_judged_on_their_own_probe():
    """Evidence from one draw (an honest run replayed) fails on another draw: every code item."""
    for item, values in RIGHT.items():
        for first_seed, second_seed in ((1, 2), (3, 4), (5, 6)):
            first, second = EX04.item(item).probe(first_seed), EX04.item(item).probe(second_seed)
            evidence = EX04.collect(item, values, first)
            assert EX04.judge(item, evidence, first).passed
            assert not EX04.judge(item, evidence, second).passed, (item, first_seed)


def test_04_verdicts_do_not_depend_on_the_draw():
    """Instant feedback must not be a lottery: right stays right and each mistake keeps its hint on every draw."""
    for seed in range(6):
        for item, values in RIGHT.items():
            assert EX04.verdict(item, seed=seed, **values).passed, (item, seed)
        assert EX04.verdict("q1", seed=seed, pick_lr=lambda a, b: _lowest(a, b) / 10).passed
        for words, mistake in PICK_MISTAKES.items():
            _not_yet(EX04.verdict("q1", seed=seed, pick_lr=mistake), words)
        _not_yet(EX04.verdict("q2", seed=seed, train_step=lambda *a: _step(*a, zero=False)), "zero_grad")
        _not_yet(EX04.verdict("q2", seed=seed, train_step=_loss_after), "before the step")
        _not_yet(EX04.verdict("q3", seed=seed, discriminative_groups=_reversed_lrs), "reversed")
        _not_yet(EX04.verdict("q3", seed=seed, discriminative_groups=_head_right_only), "the head is right")
