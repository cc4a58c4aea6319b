"""Exercise 05: overfitting and regularisation (lessons/05_overfitting_and_regularisation.ipynb).

q1 (code):   ``should_stop(val_losses, patience)``, the early-stopping rule, on sixteen histories.
q2 (code):   ``add_dropout(model, p)`` puts dropout in front of the head; judged from the model's
             outputs in train and eval mode (the head is invertible, so the judge can see which
             features were dropped and how the rest were scaled).
q3 (code):   ``l2sp_penalty(model, start, alpha, beta)``; its value and its gradients.
q4 (exercises/05.yaml): which score to report after choosing among five LRs.
q5 (exercises/05.yaml): the true class's target with label smoothing 0.2 over 5 classes.

The learner's functions run on inputs drawn afresh for every check (``tlkit/course/probes/ex05_*``:
shuffled validation histories with random values and patiences, a model of random sizes and weights
with random inputs and dropout probabilities, a body and head of random sizes with random starting
weights and (alpha, beta)). The judges draw the same probe in their own process and work out the
right answer on it, so the evidence holds only what the learner's code did on that probe.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..exercises import Exercise, Verdict, probed_item, quiz_item
from ..probes.ex05_overfitting_and_regularisation import ASKS, penalty_case

# --------------------------------------------------------------------- q1: early stopping


def _histories(cases) -> list[tuple[list[float], int]]:
    return [(case["val_losses"], case["patience"]) for case in cases]


def _since_best(v: list[float]) -> int:
    return len(v) - 1 - int(np.argmin(v))


def _variant(rule, cases) -> list[bool]:
    return [bool(rule(list(v), p)) for v, p in _histories(cases)]


def _judge_stop(evidence: dict, cases) -> Verdict:
    answers = evidence.get("answers")
    if type(answers) is not list or len(answers) != len(cases) or not all(type(a) is bool for a in answers):
        return Verdict(False, "should_stop should return True or False for every history")
    # stop once `patience` epochs have passed since the lowest loss (its first occurrence)
    expected = _variant(lambda v, p: len(v) > 0 and _since_best(v) >= p, cases)
    if answers == expected:
        return Verdict(True)
    if answers == _variant(lambda v, p: len(v) > 0 and _since_best(v) >= p - 1, cases):
        return Verdict(False, "off by one: you stop one epoch early; stop when `patience` whole epochs have "
                              "passed since the best one")
    if answers == _variant(lambda v, p: len(v) > 0 and _since_best(v) > p, cases):
        return Verdict(False, "off by one: you stop one epoch late; stop as soon as `patience` epochs have "
                              "passed since the best one")
    if answers == _variant(lambda v, p: len(v) > 0 and int(np.argmin(v[::-1])) >= p, cases):
        return Verdict(False, "a loss equal to the best one is not an improvement: count from the first "
                              "time the lowest loss was reached")
    for (losses, patience), got, want in zip(_histories(cases), answers, expected):
        if got != want:
            word = "stop" if want else "go on"
            return Verdict(False, f"for val_losses={losses} and patience={patience} it should {word}: compare "
                                  "with the lowest loss so far, not with the previous epoch, and count the "
                                  "epochs since that lowest loss")
    return Verdict(False, "should_stop is not right yet")


# ------------------------------------------------------------------- q2: dropout before the head

def _floats(values, n: int) -> bool:
    return type(values) is list and len(values) == n and all(type(v) is float and math.isfinite(v) for v in values)


def _judge_dropout(evidence: dict, probe) -> Verdict:
    runs = evidence.get("runs")
    if type(runs) is not list or len(runs) != len(probe["ps"]):
        return Verdict(False, "add_dropout should return the model with dropout in front of its head")
    model = probe["model"]
    rows, width = probe["inputs"].shape[0], model.classifier.out_features
    with torch.no_grad():
        features = model.features(probe["inputs"]).double()
        weight, bias = model.classifier.weight.double(), model.classifier.bias.double()
        plain = features @ weight.T + bias
    for run, p in zip(runs, probe["ps"]):
        if type(run) is not dict or not _floats(run.get("eval"), rows * width) or \
                not _floats(run.get("train"), rows * width):
            return Verdict(False, f"the model should still give {width} outputs per input, like before")
        out_eval = torch.tensor(run["eval"], dtype=torch.float64).reshape(rows, width)
        out_train = torch.tensor(run["train"], dtype=torch.float64).reshape(rows, width)
        if not torch.allclose(out_eval, plain, atol=1e-4):
            return Verdict(False, "in eval mode the model should predict exactly what it did before (dropout does "
                                  "nothing in eval mode): keep the old head and its weights, and put the dropout "
                                  "in front of it")
        if torch.allclose(out_train, plain, atol=1e-4):
            return Verdict(False, f"with p={p:.2f} nothing was dropped in training mode: put nn.Dropout(p) in front "
                                  "of the head")
        zeros = float((out_train.abs() < 1e-7).double().mean())
        if abs(zeros - p) < 0.15:
            return Verdict(False, "whole outputs are zeroed: the dropout comes after the head; put it in front "
                                  "of the head, on the features the head reads")
        ratio = torch.linalg.solve(weight, (out_train - bias).T).T / features  # what the head received
        dropped = ratio.abs() < 0.02
        kept = ratio[~dropped]
        if kept.numel() == 0 or not torch.allclose(kept, kept.mean().expand_as(kept), atol=0.02):
            return Verdict(False, "the head should receive the features with some of them zeroed: put the "
                                  "dropout directly in front of the head (model.classifier), not elsewhere")
        share = float(dropped.double().mean())
        if abs(float(kept.mean()) - 1 / (1 - p)) > 0.02 or abs(share - p) > 0.12:
            return Verdict(False, f"with p={p:.2f}, about {share:.0%} of the features were dropped: use the p "
                                  "that add_dropout was given")
    return Verdict(True)


# ------------------------------------------------------------------------- q3: L2-SP penalty

def _penalty_reference(probe: dict, alpha: float, beta: float, body_target: str = "start", head_target: str = "zero",
                       half: bool = True, squared: bool = True) -> tuple[float, list[float]]:
    """Value and gradients (all parameters, flattened) of the penalty, or of a plausible mistake."""
    model, start = penalty_case(probe)
    parts = {"body": [], "head": []}
    for name, p in model.named_parameters():
        part = "head" if name.startswith("head.") else "body"
        target = start[name] if (body_target if part == "body" else head_target) == "start" else 0.0
        parts[part].append((p - target).pow(2).sum())
    total = torch.zeros((), dtype=torch.float32)
    for part, factor in (("body", alpha), ("head", beta)):
        if parts[part]:
            size = torch.stack(parts[part]).sum()
            size = size if squared else size.sqrt()
            total = total + (factor / 2 if half else factor) * size
    total.backward()
    grads = [float(v) for p in model.parameters()
             for v in (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)]
    return float(total.detach()), grads


def _judge_penalty(evidence: dict, probe) -> Verdict:
    values, grads = evidence.get("values"), evidence.get("grads")
    cases = probe["cases"]
    n = len(cases)
    if (type(values) is not list or len(values) != n or not all(type(v) is float for v in values)
            or type(grads) is not list or len(grads) != n):
        return Verdict(False, "l2sp_penalty should return the penalty as a tensor for every (alpha, beta)")

    def matches(**mistake) -> bool:
        return all(math.isclose(v, _penalty_reference(probe, a, b, **mistake)[0], rel_tol=1e-4, abs_tol=1e-6)
                   for v, (a, b) in zip(values, cases))

    if not matches():
        if matches(half=False):
            return Verdict(False, "your penalty is twice too big: the formula has alpha/2 and beta/2")
        if matches(body_target="zero"):
            return Verdict(False, "that pulls the body towards zero (weight decay); L2-SP pulls each body "
                                  "weight towards its starting value: (w - start[name])**2")
        if matches(head_target="start"):
            return Verdict(False, "the head has no pretrained value to keep: pull the head's weights towards "
                                  "zero with beta, and only the body towards its start with alpha")
        if matches(squared=False):
            return Verdict(False, "use the squared distance (the sum of squares), not its square root")
        for v, (a, b) in zip(values, cases):
            want = _penalty_reference(probe, a, b)[0]
            if not math.isclose(v, want, rel_tol=1e-4, abs_tol=1e-6):
                return Verdict(False, f"with alpha={a:.3g}, beta={b:.3g} the penalty should be "
                                      f"{want:.4g}, yours is {v:.4g}: alpha/2 times the "
                                      "body's squared distance to its start, plus beta/2 times the head's squares")
    for g, (a, b) in zip(grads, cases):
        if g is None:
            return Verdict(False, "the value is right, but it has no gradient: build it from the parameters "
                                  "with tensor operations (no .item(), no .detach(), no torch.no_grad())")
        want = _penalty_reference(probe, a, b)[1]
        if type(g) is not list or len(g) != len(want) or not all(
                type(u) is float and abs(u - v) <= 1e-4 * (1 + abs(v)) for u, v in zip(g, want)):
            return Verdict(False, "the value is right, but its gradients are not: compute it from the model's "
                                  "parameters themselves, not from copies")
    return Verdict(True)


EXERCISE = Exercise("05_overfitting_and_regularisation", [
    probed_item("q1", ASKS["q1"], _judge_stop,
                question="Write should_stop(val_losses, patience): the early-stopping rule."),
    probed_item("q2", ASKS["q2"], _judge_dropout,
                question="Write add_dropout(model, p): dropout in front of model.classifier."),
    probed_item("q3", ASKS["q3"], _judge_penalty,
                question="Write l2sp_penalty(model, start, alpha, beta): the L2-SP penalty as a tensor."),
    quiz_item("q4", "answer_q4", "exercises/05", "q4"),
    quiz_item("q5", "answer_q5", "exercises/05", "q5"),
])
