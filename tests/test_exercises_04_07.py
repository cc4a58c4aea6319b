"""The judges of exercises 04-07: right answers pass, plausible wrong ones get their own hint, and
malformed evidence never passes (nor raises)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms import v2 as T

import tlkit as tl
from tlkit.course.exercises import exercise

EX04, EX05, EX06, EX07 = (exercise(n) for n in ("04", "05", "06", "07"))


def _not_yet(verdict, *words):
    assert not verdict.passed, "a wrong answer passed"
    for word in words:
        assert word in verdict.hint, f"{word!r} not in hint {verdict.hint!r}"


@pytest.mark.parametrize("ex", [EX04, EX05, EX06, EX07], ids=lambda e: e.name)
def test_every_exercise_has_code_and_quiz_items(ex):
    assert len(ex.ids) >= 4
    for item in ex.items:
        assert item.question
        assert not ex.judge(item.id, {}).passed              # no evidence
        assert not ex.judge(item.id, {"problem": "x"}).passed
        assert not ex.judge(item.id, {"answer": None, "value": "1", "picks": "x", "runs": 3}).passed
        assert not ex.judge(item.id, []).passed               # not even a dict


# ------------------------------------------------------------------------------------ 04

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


# ------------------------------------------------------------------------------------ 05

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


# ------------------------------------------------------------------------------------ 06

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


# ------------------------------------------------------------------------------------ 07

def _metrics(cm, harmonic=True, safe=True):
    cm = np.asarray(cm, dtype=float)
    right = np.diag(cm)

    def div(a, b):
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0) if safe else a / b
    precision, recall = div(right, cm.sum(0)), div(right, cm.sum(1))
    f1 = div(2 * precision * recall, precision + recall) if harmonic else (precision + recall) / 2
    return precision, recall, f1


def test_07_class_metrics():
    assert EX07.verdict("q1", class_metrics=_metrics).passed
    assert EX07.verdict("q1", class_metrics=lambda cm: [torch.tensor(v).tolist() for v in _metrics(cm)]).passed
    _not_yet(EX07.verdict("q1", class_metrics=lambda cm: (_metrics(cm)[1], _metrics(cm)[0], _metrics(cm)[2])),
             "swapped")
    with np.errstate(divide="ignore", invalid="ignore"):
        _not_yet(EX07.verdict("q1", class_metrics=lambda cm: _metrics(cm, safe=False)), "0 by 0")
    _not_yet(EX07.verdict("q1", class_metrics=lambda cm: _metrics(cm, harmonic=False)), "harmonic mean")
    _not_yet(EX07.verdict("q1", class_metrics=lambda cm: _metrics(cm)[:2]), "three sequences")
    _not_yet(EX07.verdict("q1", class_metrics=lambda cm: tuple(v[:1] for v in _metrics(cm))), "one number per class")


def _balanced(y_true, y_pred):
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def test_07_balanced_accuracy():
    assert EX07.verdict("q2", balanced_accuracy=_balanced).passed
    _not_yet(EX07.verdict("q2", balanced_accuracy=lambda t, p: float(np.mean(t == p))), "plain accuracy")
    _not_yet(EX07.verdict("q2", balanced_accuracy=lambda t, p: _balanced(p, t)), "mean precision")
    every_label = lambda t, p: float(np.mean([np.mean(p[t == c] == c) if (t == c).any() else 0.0  # noqa: E731
                                              for c in range(max(t.max(), p.max()) + 1)]))
    _not_yet(EX07.verdict("q2", balanced_accuracy=every_label), "do not occur")
    _not_yet(EX07.verdict("q2", balanced_accuracy=lambda t, p: "0.5"), "number")
    _not_yet(EX07.judge("q2", {"values": [0.5]}), "every set")


def _export(model, path, example):
    model.eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    torch.jit.save(traced, path)


@pytest.mark.filterwarnings("ignore")
def test_07_export_model():
    assert EX07.verdict("q3", export_model=_export).passed
    assert EX07.verdict("q3", export_model=lambda m, path, e: tl.export_torchscript(m, path, example=e)).passed

    def in_train_mode(model, path, example):
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model, example, check_trace=False), path)
    _not_yet(EX07.verdict("q3", export_model=in_train_mode), "model.eval()")
    _not_yet(EX07.verdict("q3", export_model=lambda m, path, e: torch.save(m.state_dict(), path)),
             "not a TorchScript model")
    _not_yet(EX07.verdict("q3", export_model=lambda m, path, e: None), "wrote no file")
    _not_yet(EX07.judge("q3", {"outputs": [0.0] * 24}), "eval mode")


def test_07_quiz_items():
    assert EX07.verdict("q4", answer_q4="a").passed
    _not_yet(EX07.verdict("q4", answer_q4="b"), "recall")
    assert EX07.verdict("q5", answer_q5=0.8).passed
    _not_yet(EX07.verdict("q5", answer_q5=0.5), "flagged scans")


def _choose(rows, budget_ms):
    fast = [row for row in rows if row["ms_per_image"] <= budget_ms]
    return max(fast, key=lambda row: row["probe_acc"])["name"] if fast else None


def test_07_choose_backbone():
    assert EX07.verdict("q6", choose_backbone=_choose).passed
    by_sorting = lambda rows, b: next((r["name"] for r in sorted(rows, key=lambda r: -r["probe_acc"])  # noqa: E731
                                       if r["ms_per_image"] <= b), None)
    assert EX07.verdict("q6", choose_backbone=by_sorting).passed
    ignores_budget = lambda rows, b: max(rows, key=lambda r: r["probe_acc"])["name"]  # noqa: E731
    _not_yet(EX07.verdict("q6", choose_backbone=ignores_budget), "whatever its speed")
    fastest = lambda rows, b: min(rows, key=lambda r: r["ms_per_image"])["name"]  # noqa: E731
    _not_yet(EX07.verdict("q6", choose_backbone=fastest), "fastest")
    smallest = lambda rows, b: min((r for r in rows if r["ms_per_image"] <= b),  # noqa: E731
                                   key=lambda r: r["params_m"], default={"name": None})["name"]
    _not_yet(EX07.verdict("q6", choose_backbone=smallest), "smallest")
    strict = lambda rows, b: _choose([r for r in rows if r["ms_per_image"] < b], b)  # noqa: E731
    _not_yet(EX07.verdict("q6", choose_backbone=strict), "exactly the budget")

    def never_none(rows, budget_ms):
        return _choose(rows, budget_ms) or min(rows, key=lambda r: r["ms_per_image"])["name"]
    _not_yet(EX07.verdict("q6", choose_backbone=never_none), "return None")
    row = lambda rows, b: next((r for r in rows if r["name"] == _choose(rows, b)), None)  # noqa: E731
    _not_yet(EX07.verdict("q6", choose_backbone=row), "not the whole row")
    _not_yet(EX07.verdict("q6", choose_backbone=lambda rows, b: 3), "a str")
    _not_yet(EX07.verdict("q6", choose_backbone="efficientnet_lite1"), "function")
    _not_yet(EX07.judge("q6", {"choices": ["efficientnet_lite1"]}), "every table")
    _not_yet(EX07.judge("q6", {"choices": [["efficientnet_lite1"]] * 5}), "every table")
    _not_yet(EX07.judge("q6", {"choices": ["efficientnet_lite1"] * 5}), "return None")
    _not_yet(EX07.judge("q6", {"choices": ["efficientnet_lite1"] * 2 + [None] + ["efficientnet_lite1"] * 2}),
             "'efficientnet_b0'")
