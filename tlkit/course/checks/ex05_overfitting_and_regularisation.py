"""Exercise 05: overfitting and regularisation (lessons/05_overfitting_and_regularisation.ipynb).

q1 (code):   ``should_stop(val_losses, patience)``, the early-stopping rule, on a dozen histories.
q2 (code):   ``add_dropout(model, p)`` puts dropout in front of the head; judged from the model's
             outputs in train and eval mode (the head is invertible, so the judge can see which
             features were dropped and how the rest were scaled).
q3 (code):   ``l2sp_penalty(model, start, alpha, beta)``; its value and its gradients.
q4 (exercises/05.yaml): which score to report after choosing among five LRs.
q5 (exercises/05.yaml): the true class's target with label smoothing 0.2 over 5 classes.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..exercises import Exercise, Item, Verdict, quiz_item

# --------------------------------------------------------------------- q1: early stopping

STOP_CASES: list[tuple[list[float], int]] = [
    ([1.0, 0.8, 0.7, 0.72, 0.75, 0.74], 3),   # 3 epochs since the best: stop
    ([1.0, 0.8, 0.7, 0.72, 0.75, 0.74], 4),   # patience not used up yet
    ([1.0, 0.9, 0.8], 2),                     # still improving
    ([], 2),                                  # no epoch yet
    ([0.5], 1),                               # one epoch: it is the best so far
    ([1.0, 0.7, 0.9, 0.8, 0.75, 0.72], 3),    # falls again, but never below 0.7: stop
    ([1.0, 0.6, 0.6, 0.6], 2),                # equal is not better: stop
    ([0.5, 0.6, 0.7], 3),                     # 2 epochs since the best, patience 3
    ([0.5, 0.6, 0.7], 2),                     # patience 2 used up
    ([0.9, 0.8, 0.85, 0.79, 0.8, 0.81], 2),   # a new best at epoch 4, then 2 worse: stop
    ([0.9, 0.8, 0.85, 0.79, 0.8], 2),         # only 1 epoch since the best
    ([2.0, 1.5, 1.2, 1.1, 1.05, 1.04, 1.03], 1),  # improving every epoch, however slowly
]


def expected_stops() -> list[bool]:
    """Stop once ``patience`` epochs have passed since the lowest loss (its first occurrence)."""
    return [len(v) > 0 and len(v) - 1 - int(np.argmin(v)) >= p for v, p in STOP_CASES]


def _variant(rule) -> list[bool]:
    return [bool(rule(list(v), p)) for v, p in STOP_CASES]


def _collect_stop(should_stop) -> dict:
    if not callable(should_stop):
        return {"problem": "should_stop should be a function of (val_losses, patience)"}
    answers = []
    for losses, patience in STOP_CASES:
        value = should_stop(list(losses), patience)
        if isinstance(value, np.bool_):
            value = bool(value)
        if type(value) is not bool:
            return {"problem": f"should_stop should return True or False, it returned {type(value).__name__}"}
        answers.append(value)
    return {"answers": answers}


def _judge_stop(evidence: dict) -> Verdict:
    answers = evidence.get("answers")
    if type(answers) is not list or len(answers) != len(STOP_CASES) or not all(type(a) is bool for a in answers):
        return Verdict(False, "should_stop should return True or False for every history")
    expected = expected_stops()
    if answers == expected:
        return Verdict(True)
    since_best = lambda v: len(v) - 1 - int(np.argmin(v))  # noqa: E731
    if answers == _variant(lambda v, p: len(v) > 0 and since_best(v) >= p - 1):
        return Verdict(False, "off by one: you stop one epoch early; stop when `patience` whole epochs have "
                              "passed since the best one")
    if answers == _variant(lambda v, p: len(v) > 0 and since_best(v) > p):
        return Verdict(False, "off by one: you stop one epoch late; stop as soon as `patience` epochs have "
                              "passed since the best one")
    if answers == _variant(lambda v, p: len(v) > 0 and len(v) - 1 - (len(v) - 1 - int(np.argmin(v[::-1]))) >= p):
        return Verdict(False, "a loss equal to the best one is not an improvement: count from the first "
                              "time the lowest loss was reached")
    for (losses, patience), got, want in zip(STOP_CASES, answers, expected):
        if got != want:
            word = "stop" if want else "go on"
            return Verdict(False, f"for val_losses={losses} and patience={patience} it should {word}: compare "
                                  "with the lowest loss so far, not with the previous epoch, and count the "
                                  "epochs since that lowest loss")
    return Verdict(False, "should_stop is not right yet")


# ------------------------------------------------------------------- q2: dropout before the head

class DropoutProbe(nn.Module):
    """A small model with fixed weights: features (6 values in 0.3..0.7), then an invertible head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 6), nn.Sigmoid())
        self.classifier = nn.Linear(6, 6)
        with torch.no_grad():
            k = torch.arange(24, dtype=torch.float32).reshape(6, 4)
            self.features[0].weight.copy_(0.2 * torch.sin(1.7 * k))
            self.features[0].bias.copy_(0.1 * torch.cos(torch.arange(6.0)))
            w = torch.arange(36, dtype=torch.float32).reshape(6, 6)
            self.classifier.weight.copy_(torch.eye(6) + 0.2 * torch.sin(1.3 * w))
            self.classifier.bias.copy_(0.5 + 0.1 * torch.arange(6.0))

    def forward(self, x):
        return self.classifier(self.features(x))


def _dropout_inputs() -> torch.Tensor:
    k = torch.arange(32 * 4, dtype=torch.float32).reshape(32, 4)
    return torch.sin(0.37 * k) + 0.5 * torch.cos(0.11 * k)


_DROPOUT_PS = (0.5, 0.2)


def _collect_dropout(add_dropout) -> dict:
    if not callable(add_dropout):
        return {"problem": "add_dropout should be a function of (model, p)"}
    runs = []
    x = _dropout_inputs()
    for p in _DROPOUT_PS:
        model = add_dropout(DropoutProbe(), p)
        if not isinstance(model, nn.Module):
            return {"problem": f"add_dropout should return the model, it returned {type(model).__name__}"}
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(0)
            model.eval()
            out_eval = model(x)
            model.train()
            out_train = model(x)
        if not isinstance(out_eval, torch.Tensor) or out_eval.shape != (32, 6) or out_train.shape != (32, 6):
            return {"problem": "the model should still give 6 outputs per input, like before"}
        runs.append({"p": p, "eval": out_eval.double().reshape(-1).tolist(),
                     "train": out_train.double().reshape(-1).tolist()})
    return {"runs": runs}


def _floats(values, n: int) -> bool:
    return type(values) is list and len(values) == n and all(type(v) is float and math.isfinite(v) for v in values)


def _judge_dropout(evidence: dict) -> Verdict:
    runs = evidence.get("runs")
    if type(runs) is not list or len(runs) != len(_DROPOUT_PS):
        return Verdict(False, "add_dropout should return the model with dropout in front of its head")
    probe = DropoutProbe()
    with torch.no_grad():
        features = probe.features(_dropout_inputs()).double()
        weight, bias = probe.classifier.weight.double(), probe.classifier.bias.double()
        plain = features @ weight.T + bias
    for run, p in zip(runs, _DROPOUT_PS):
        if type(run) is not dict or not _floats(run.get("eval"), 192) or not _floats(run.get("train"), 192):
            return Verdict(False, "the model should still give 6 outputs per input, like before")
        out_eval = torch.tensor(run["eval"], dtype=torch.float64).reshape(32, 6)
        out_train = torch.tensor(run["train"], dtype=torch.float64).reshape(32, 6)
        if not torch.allclose(out_eval, plain, atol=1e-4):
            return Verdict(False, "in eval mode the model should predict exactly what it did before (dropout does "
                                  "nothing in eval mode): keep the old head and its weights, and put the dropout "
                                  "in front of it")
        if torch.allclose(out_train, plain, atol=1e-4):
            return Verdict(False, f"with p={p} nothing was dropped in training mode: put nn.Dropout(p) in front "
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
            return Verdict(False, f"with p={p}, about {share:.0%} of the features were dropped: use the p "
                                  "that add_dropout was given")
    return Verdict(True)


# ------------------------------------------------------------------------- q3: L2-SP penalty

class PenaltyProbe(nn.Module):
    """A body and a head whose weights have moved away from where they started (see ``penalty_case``)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


_PENALTY_CASES = [(0.1, 0.01), (0.5, 0.0), (0.0, 0.2)]  # (alpha, beta)


def penalty_case() -> tuple[PenaltyProbe, dict[str, torch.Tensor]]:
    """The probe model after "training" and its starting weights ({name: tensor}, like snapshot_weights)."""
    model = PenaltyProbe()
    start = {}
    with torch.no_grad():
        for i, (name, p) in enumerate(model.named_parameters()):
            k = torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) + 10 * i
            start[name] = 0.5 * torch.sin(0.9 * k)
            p.copy_(start[name] + 0.3 * torch.cos(1.1 * k))
    return model, start


def _penalty_reference(alpha: float, beta: float, body_target: str = "start", head_target: str = "zero",
                       half: bool = True, squared: bool = True) -> tuple[float, list[float]]:
    """Value and gradients (all parameters, flattened) of the penalty, or of a plausible mistake."""
    model, start = penalty_case()
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
    grads = [float(v) for p in model.parameters() for v in (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)]
    return float(total.detach()), grads


def _collect_penalty(l2sp_penalty) -> dict:
    if not callable(l2sp_penalty):
        return {"problem": "l2sp_penalty should be a function of (model, start, alpha, beta)"}
    values, grads = [], []
    for alpha, beta in _PENALTY_CASES:
        model, start = penalty_case()
        value = l2sp_penalty(model, {k: v.clone() for k, v in start.items()}, alpha, beta)
        if not isinstance(value, torch.Tensor):
            return {"problem": f"l2sp_penalty returned {type(value).__name__}; return a tensor (no .item()), so "
                               "that the training loss can backpropagate through it"}
        if value.numel() != 1:
            return {"problem": f"l2sp_penalty should return one number (a 0-d tensor), not shape {tuple(value.shape)}"}
        values.append(float(value.detach().reshape(())))
        if value.requires_grad:
            value.reshape(()).backward()
            grads.append([float(v) for p in model.parameters()
                          for v in (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)])
        else:
            grads.append(None)
    return {"values": values, "grads": grads}


def _judge_penalty(evidence: dict) -> Verdict:
    values, grads = evidence.get("values"), evidence.get("grads")
    n = len(_PENALTY_CASES)
    if (type(values) is not list or len(values) != n or not all(type(v) is float for v in values)
            or type(grads) is not list or len(grads) != n):
        return Verdict(False, "l2sp_penalty should return the penalty as a tensor for every (alpha, beta)")

    def matches(**mistake) -> bool:
        return all(math.isclose(v, _penalty_reference(a, b, **mistake)[0], rel_tol=1e-4, abs_tol=1e-6)
                   for v, (a, b) in zip(values, _PENALTY_CASES))

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
        for v, (a, b) in zip(values, _PENALTY_CASES):
            if not math.isclose(v, _penalty_reference(a, b)[0], rel_tol=1e-4, abs_tol=1e-6):
                return Verdict(False, f"with alpha={a}, beta={b} the penalty should be "
                                      f"{_penalty_reference(a, b)[0]:.4f}, yours is {v:.4f}: alpha/2 times the "
                                      "body's squared distance to its start, plus beta/2 times the head's squares")
    for g, (a, b) in zip(grads, _PENALTY_CASES):
        if g is None:
            return Verdict(False, "the value is right, but it has no gradient: build it from the parameters "
                                  "with tensor operations (no .item(), no .detach(), no torch.no_grad())")
        want = _penalty_reference(a, b)[1]
        if type(g) is not list or len(g) != len(want) or not all(
                type(u) is float and abs(u - v) <= 1e-4 * (1 + abs(v)) for u, v in zip(g, want)):
            return Verdict(False, "the value is right, but its gradients are not: compute it from the model's "
                                  "parameters themselves, not from copies")
    return Verdict(True)


EXERCISE = Exercise("05_overfitting_and_regularisation", [
    Item("q1", ("should_stop",), _collect_stop, _judge_stop,
         question="Write should_stop(val_losses, patience): the early-stopping rule."),
    Item("q2", ("add_dropout",), _collect_dropout, _judge_dropout,
         question="Write add_dropout(model, p): dropout in front of model.classifier."),
    Item("q3", ("l2sp_penalty",), _collect_penalty, _judge_penalty,
         question="Write l2sp_penalty(model, start, alpha, beta): the L2-SP penalty as a tensor."),
    quiz_item("q4", "answer_q4", "exercises/05", "q4"),
    quiz_item("q5", "answer_q5", "exercises/05", "q5"),
])
