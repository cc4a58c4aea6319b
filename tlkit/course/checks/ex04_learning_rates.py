"""Exercise 04: learning rates (lessons/04_learning_rates.ipynb).

q1 (code):   ``pick_lr(lrs, losses)`` chooses an LR from a range-test curve; tried on four curves.
q2 (code):   ``train_step(model, batch, optimizer, loss_fn)``: one optimiser step, checked on a tiny
             model whose parameters start with stale gradients.
q3 (code):   ``discriminative_groups(parts, lr, mult)``: optimiser parameter groups, smaller LRs
             towards the input.
q4 (exercises/04.yaml): the LR three parts before the head with ``lr=2e-3, lr_mult=0.5``.
q5 (exercises/04.yaml): what lesson 04 measured at the LR past the range test's minimum.

Every judge recomputes what is right from constants in this file (synthetic curves, a tiny model
with fixed weights), so the evidence only has to carry the learner's numbers.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

from ..exercises import Exercise, Item, Verdict, quiz_item

# ------------------------------------------------------------------------- q1: pick an LR

# (centre of the fall, its width, where the loss explodes, log10 of the first and last LR)
_CURVES = [(-4.0, 0.35, -2.2, -6, 0), (-2.5, 0.30, -0.9, -5, 1), (-3.2, 0.40, -1.3, -7, 0),
           (-1.8, 0.25, -0.4, -5, 1)]


def _curve(k: int) -> tuple[list[float], list[float], list[float]]:
    """LRs, noise-free losses and (slightly noisy) losses of synthetic range-test curve ``k``."""
    centre, width, blow, lo, hi = _CURVES[k]
    x = np.linspace(lo, hi, 50)
    clean = 2.2 - 1.8 / (1 + np.exp(-(x - centre) / width)) + np.exp((x - blow) * 4)
    noisy = clean + np.random.default_rng(k).normal(0, 0.01, x.size)
    return [float(v) for v in 10**x], [float(v) for v in clean], [float(v) for v in noisy]


def lr_curves() -> list[tuple[list[float], list[float]]]:
    """The (lrs, losses) pairs q1 tries ``pick_lr`` on (fresh lists on every call)."""
    return [_curve(k)[::2] for k in range(len(_CURVES))]


def _band(k: int) -> tuple[float, float, float, float]:
    """(lowest accepted, highest accepted, steepest, lowest-loss) log10 LRs of curve ``k``."""
    lrs, clean, _ = _curve(k)
    x = np.log10(lrs)
    i = int(np.argmin(clean))
    steepest = float(x[int(np.argmin(np.gradient(clean[: i + 1], x[: i + 1])))])
    lowest = float(x[i])
    return steepest - 0.6, min(steepest + 0.6, lowest - math.log10(3)), steepest, lowest


def _collect_pick(pick_lr) -> dict:
    if not callable(pick_lr):
        return {"problem": "pick_lr should be a function of (lrs, losses)"}
    picks = []
    for lrs, losses in lr_curves():
        value = pick_lr(lrs, losses)
        if hasattr(value, "item") and callable(value.item):  # a numpy or 0-d torch number
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return {"problem": f"pick_lr should return a number (an LR), it returned {type(value).__name__}"}
        if not math.isfinite(value) or value <= 0:
            return {"problem": f"pick_lr returned {value!r}; a learning rate is a positive number"}
        picks.append(float(value))
    return {"picks": picks}


def _judge_pick(evidence: dict) -> Verdict:
    picks = evidence.get("picks")
    if type(picks) is not list or len(picks) != len(_CURVES) or not all(type(p) is float for p in picks):
        return Verdict(False, "pick_lr should return one LR (a float) for every curve")
    for k, pick in enumerate(picks):
        low, high, steepest, lowest = _band(k)
        lrs = _curve(k)[0]
        if pick <= 0:
            return Verdict(False, "a learning rate is a positive number")
        x = math.log10(pick)
        if low <= x <= high:
            continue
        where = f"on curve {k + 1} (LRs from {lrs[0]:.0e} to {lrs[-1]:.0e}) you chose {pick:.1e}: "
        if math.isclose(pick, lrs[-1], rel_tol=1e-6) or x > lowest + 0.3:
            return Verdict(False, where + "that is past the minimum, where the loss climbs or has exploded; "
                                          "look only at the LRs before the lowest loss")
        if x >= lowest - 0.3:
            return Verdict(False, where + "that is the lowest point of the loss, already the edge of "
                                          "instability; step back to where the loss falls fastest")
        if x > high:
            return Verdict(False, where + "too close to the minimum; choose where the loss falls fastest "
                                          "(the most negative slope against log(LR)), well below the minimum")
        if math.isclose(pick, lrs[0], rel_tol=1e-6):
            return Verdict(False, where + "the smallest LR tried; the curve is flat there and nothing learns")
        return Verdict(False, where + "the loss has hardly started to fall there; choose where it falls "
                                      "fastest, before the minimum")
    return Verdict(True)


# ---------------------------------------------------------------------- q2: the training step

def _tiny_model() -> nn.Linear:
    """A 3-in, 2-out linear layer with fixed weights (the same in every process)."""
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -0.3, 0.8], [-0.6, 0.2, 0.1]]))
        model.bias.copy_(torch.tensor([0.1, -0.2]))
    return model


def _step_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    x1 = torch.tensor([[1.0, 2.0, -1.0], [0.5, -1.0, 2.0], [-1.5, 0.5, 0.5], [2.0, 1.0, 0.0]])
    x2 = torch.tensor([[0.0, 1.0, 1.0], [1.0, -2.0, 0.5], [-0.5, -0.5, 2.0], [1.5, 0.0, -1.0]])
    return [(x1, torch.tensor([0, 1, 1, 0])), (x2, torch.tensor([1, 0, 1, 0]))]


def _stale_gradients(model: nn.Module) -> None:
    """Gradients left over from an earlier step that nobody cleared."""
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)


def _flat(model: nn.Module) -> list[float]:
    return [float(v) for p in model.parameters() for v in p.detach().reshape(-1)]


def _reference_steps(zero_grad: bool = True, step: bool = True) -> tuple[list[float], list[list[float]]]:
    """Losses and parameters after each of the two steps, done right (or with one thing left out)."""
    model = _tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    _stale_gradients(model)
    losses, params = [], []
    for x, y in _step_batches():
        if zero_grad:
            optimizer.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        if step:
            optimizer.step()
        losses.append(float(loss.item()))
        params.append(_flat(model))
    return losses, params


def _collect_step(train_step) -> dict:
    if not callable(train_step):
        return {"problem": "train_step should be a function of (model, batch, optimizer, loss_fn)"}
    model = _tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    _stale_gradients(model)
    returned, params = [], []
    for x, y in _step_batches():
        value = train_step(model, (x.clone(), y.clone()), optimizer, nn.CrossEntropyLoss())
        if isinstance(value, torch.Tensor):
            return {"problem": "train_step returned a tensor; return the loss as a Python float (loss.item())"}
        if hasattr(value, "item") and callable(value.item):  # a numpy number
            value = value.item()
        if type(value) is not float or not math.isfinite(value):
            return {"problem": f"train_step should return the batch's loss as a float, it returned "
                               f"{type(value).__name__}"}
        returned.append(value)
        params.append(_flat(model))
    return {"returned": returned, "params": params}


def _close(a, b, tol: float = 1e-5) -> bool:
    return len(a) == len(b) and all(abs(u - v) <= tol * (1 + abs(v)) for u, v in zip(a, b))


def _judge_step(evidence: dict) -> Verdict:
    returned, params = evidence.get("returned"), evidence.get("params")
    if (type(returned) is not list or len(returned) != 2 or not all(type(v) is float for v in returned)
            or type(params) is not list or len(params) != 2
            or not all(type(p) is list and all(type(v) is float for v in p) for p in params)):
        return Verdict(False, "train_step should return the loss (a float) and update the model")
    losses, expected = _reference_steps()
    start = _flat(_tiny_model())
    if _close(params[0], start) and _close(params[1], start):
        return Verdict(False, "the weights did not change: call loss.backward() and then optimizer.step() "
                              "(and optimizer.zero_grad() before backward, not between backward and step)")
    if _close(params[0], _reference_steps(zero_grad=False)[1][0]):
        return Verdict(False, "gradients from earlier steps were added to this one: call "
                              "optimizer.zero_grad() before loss.backward()")
    if not (_close(params[0], expected[0]) and _close(params[1], expected[1])):
        return Verdict(False, "the weights after your step are not what one optimizer.step() on this batch "
                              "gives: zero the gradients, compute loss_fn(model(x), y), backward, step once, "
                              "with the optimizer you were given")
    if not _close(returned, losses):
        return Verdict(False, "the weights are right, but return the loss of this batch, computed before "
                              "the step, as a float (loss.item())")
    return Verdict(True)


# ------------------------------------------------------------------- q3: discriminative LRs

def _probe_parts(n: int) -> list[nn.Module]:
    sizes = [3, 4, 5, 4, 2][: n + 1]
    return [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]


_GROUP_CASES = [(3, 1e-3, 0.5), (4, 1e-2, 0.1)]  # (number of parts, lr, mult)
_UNSET = 123.0  # the optimiser's default LR: a group that has none shows this


def _collect_groups(discriminative_groups) -> dict:
    if not callable(discriminative_groups):
        return {"problem": "discriminative_groups should be a function of (parts, lr, mult)"}
    cases = []
    for n, lr, mult in _GROUP_CASES:
        parts = _probe_parts(n)
        groups = discriminative_groups(list(parts), lr, mult)
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
            return {"problem": "discriminative_groups should return a list of dicts like "
                               "{'params': part.parameters(), 'lr': ...}"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a parameter listed twice in one group only warns (for now)
            optimizer = torch.optim.SGD(groups, lr=_UNSET)  # raises if a parameter is in two groups
        lr_of = {id(p): float(g["lr"]) for g in optimizer.param_groups for p in g["params"]}
        cases.append([[lr_of.get(id(p)) for p in part.parameters()] for part in parts])
    return {"cases": cases}


def _judge_groups(evidence: dict) -> Verdict:
    cases = evidence.get("cases")
    if type(cases) is not list or len(cases) != len(_GROUP_CASES):
        return Verdict(False, "discriminative_groups should return parameter groups for every part")
    for found, (n, lr, mult) in zip(cases, _GROUP_CASES):
        if type(found) is not list or len(found) != n or not all(type(p) is list for p in found):
            return Verdict(False, "discriminative_groups should return parameter groups for every part")
        values = [v for part in found for v in part]
        if any(v is None for v in values):
            return Verdict(False, "some parameters are in no group: put every part's parameters in a group")
        if any(type(v) is not float for v in values):
            return Verdict(False, "every group needs a number as its 'lr'")
        if any(math.isclose(v, _UNSET) for v in values):
            return Verdict(False, "a group has no 'lr' of its own: give every group {'params': ..., 'lr': ...}")
        expected = [lr * mult ** (n - 1 - i) for i in range(n)]
        per_part = [part[0] for part in found]
        if any(not all(math.isclose(v, part[0], rel_tol=1e-9) for v in part) for part in found):
            return Verdict(False, "all parameters of one part (weight and bias) should share that part's LR")
        if all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(per_part, expected)):
            continue
        case = f"with {n} parts, lr={lr:g}, mult={mult:g} you gave {[f'{v:.2g}' for v in per_part]}: "
        if all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(per_part, reversed(expected))):
            return Verdict(False, case + "the order is reversed; parts go from the input to the head, and the "
                                         "head (the last part) gets the full lr")
        if all(math.isclose(v, lr, rel_tol=1e-6) for v in per_part):
            return Verdict(False, case + "every part has the same LR; each part before the head gets mult "
                                         "times the LR of the part after it")
        if math.isclose(per_part[-1], lr, rel_tol=1e-6):
            return Verdict(False, case + "the head is right; going back one part multiplies the LR by mult "
                                         "once more (the part k places before the head gets lr * mult**k)")
        return Verdict(False, case + "the last part (the head) gets lr, the one before it lr * mult, "
                                     "then lr * mult**2, ...")
    return Verdict(True)


EXERCISE = Exercise("04_learning_rates", [
    Item("q1", ("pick_lr",), _collect_pick, _judge_pick,
         question="Write pick_lr(lrs, losses): a good LR from an LR range-test curve."),
    Item("q2", ("train_step",), _collect_step, _judge_step,
         question="Write train_step(model, batch, optimizer, loss_fn): one optimiser step; return the loss."),
    Item("q3", ("discriminative_groups",), _collect_groups, _judge_groups,
         question="Write discriminative_groups(parts, lr, mult): parameter groups with smaller LRs "
                  "towards the input."),
    quiz_item("q4", "answer_q4", "exercises/04", "q4"),
    quiz_item("q5", "answer_q5", "exercises/04", "q5"),
])
