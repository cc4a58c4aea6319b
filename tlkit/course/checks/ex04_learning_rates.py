"""Exercise 04: learning rates (lessons/04_learning_rates.ipynb).

q1 (code):   ``pick_lr(lrs, losses)`` chooses an LR from a range-test curve; tried on four curves.
q2 (code):   ``train_step(model, batch, optimizer, loss_fn)``: one optimiser step, checked on a tiny
             model whose parameters start with stale gradients.
q3 (code):   ``discriminative_groups(parts, lr, mult)``: optimiser parameter groups, smaller LRs
             towards the input.
q4 (exercises/04.yaml): the LR three parts before the head with ``lr=2e-3, lr_mult=0.5``.
q5 (exercises/04.yaml): what lesson 04 measured at the LR past the range test's minimum.

The learner's functions run on inputs drawn afresh for every check (``tlkit/course/probes/ex04_*``:
range-test curves shifted along the LR axis, with their own depth, width and noise; a linear layer
of random size and weights with random stale gradients and random batches; parts of random sizes
with a random lr and mult). The judges draw the same probe in their own process and work out the
right answer on it, so the evidence holds only what the learner's code did on that probe.
"""
from __future__ import annotations

import math

import numpy as np
from torch import nn

from ..exercises import Exercise, Verdict, probed_item, quiz_item
from ..probes.ex04_learning_rates import ASKS, UNSET, flat, step_model

# ------------------------------------------------------------------------- q1: pick an LR


def _band(curve: dict) -> tuple[float, float, float, float]:
    """(lowest accepted, highest accepted, steepest, lowest-loss) log10 LRs of one curve.

    The steepest point is that of the noise-free curve; the lowest loss is the one the learner sees.
    """
    x = np.log10(np.asarray(curve["lrs"]))
    clean = np.asarray(curve["clean"])
    i = int(np.argmin(clean))
    steepest = float(x[int(np.argmin(np.gradient(clean[: i + 1], x[: i + 1])))])
    lowest = float(x[int(np.argmin(np.asarray(curve["losses"])))])
    return steepest - 0.6, min(steepest + 0.6, lowest - math.log10(3)), steepest, lowest


def _judge_pick(evidence: dict, curves) -> Verdict:
    picks = evidence.get("picks")
    if type(picks) is not list or len(picks) != len(curves) or not all(type(p) is float for p in picks):
        return Verdict(False, "pick_lr should return one LR (a float) for every curve")
    for k, (pick, curve) in enumerate(zip(picks, curves)):
        low, high, steepest, lowest = _band(curve)
        lrs = curve["lrs"]
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

def _reference_steps(probe: dict, zero_grad: bool = True, step: bool = True) -> tuple[list[float], list[list[float]]]:
    """Losses and parameters after each step on the probe's batches, done right (or with one thing left out)."""
    model, optimizer = step_model(probe)
    losses, params = [], []
    for x, y in probe["batches"]:
        if zero_grad:
            optimizer.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        if step:
            optimizer.step()
        losses.append(float(loss.item()))
        params.append(flat(model))
    return losses, params


def _close(a, b, tol: float = 1e-5) -> bool:
    return len(a) == len(b) and all(abs(u - v) <= tol * (1 + abs(v)) for u, v in zip(a, b))


def _judge_step(evidence: dict, probe) -> Verdict:
    returned, params = evidence.get("returned"), evidence.get("params")
    steps = len(probe["batches"])
    if (type(returned) is not list or len(returned) != steps or not all(type(v) is float for v in returned)
            or type(params) is not list or len(params) != steps
            or not all(type(p) is list and all(type(v) is float for v in p) for p in params)):
        return Verdict(False, "train_step should return the loss (a float) and update the model")
    losses, expected = _reference_steps(probe)
    start = flat(step_model(probe)[0])
    if all(_close(p, start) for p in params):
        return Verdict(False, "the weights did not change: call loss.backward() and then optimizer.step() "
                              "(and optimizer.zero_grad() before backward, not between backward and step)")
    if _close(params[0], _reference_steps(probe, zero_grad=False)[1][0]):
        return Verdict(False, "gradients from earlier steps were added to this one: call "
                              "optimizer.zero_grad() before loss.backward()")
    if not all(_close(p, e) for p, e in zip(params, expected)):
        return Verdict(False, "the weights after your step are not what one optimizer.step() on this batch "
                              "gives: zero the gradients, compute loss_fn(model(x), y), backward, step once, "
                              "with the optimizer you were given")
    if not _close(returned, losses):
        return Verdict(False, "the weights are right, but return the loss of this batch, computed before "
                              "the step, as a float (loss.item())")
    return Verdict(True)


# ------------------------------------------------------------------- q3: discriminative LRs

def _judge_groups(evidence: dict, probe) -> Verdict:
    cases = evidence.get("cases")
    if type(cases) is not list or len(cases) != len(probe):
        return Verdict(False, "discriminative_groups should return parameter groups for every part")
    for found, case in zip(cases, probe):
        n, lr, mult = len(case["parts"]), case["lr"], case["mult"]
        counts = [sum(1 for _ in part.parameters()) for part in case["parts"]]
        if type(found) is not list or len(found) != n or not all(type(p) is list for p in found) \
                or [len(p) for p in found] != counts:
            return Verdict(False, "discriminative_groups should return parameter groups for every part")
        values = [v for part in found for v in part]
        if any(v is None for v in values):
            return Verdict(False, "some parameters are in no group: put every part's parameters in a group")
        if any(type(v) is not float for v in values):
            return Verdict(False, "every group needs a number as its 'lr'")
        if any(math.isclose(v, UNSET) for v in values):
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
    probed_item("q1", ASKS["q1"], _judge_pick,
                question="Write pick_lr(lrs, losses): a good LR from an LR range-test curve."),
    probed_item("q2", ASKS["q2"], _judge_step,
                question="Write train_step(model, batch, optimizer, loss_fn): one optimiser step; return the loss."),
    probed_item("q3", ASKS["q3"], _judge_groups,
                question="Write discriminative_groups(parts, lr, mult): parameter groups with smaller LRs "
                         "towards the input."),
    quiz_item("q4", "answer_q4", "exercises/04", "q4"),
    quiz_item("q5", "answer_q5", "exercises/04", "q5"),
])
