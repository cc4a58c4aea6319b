"""Exercise 05's probes: fresh validation histories, a fresh model with an invertible head, fresh weights to pull back.

Every check draws its own inputs from the seed:

- q1: sixteen validation-loss histories with their patience, in a random order. Every draw has the
  cases the judge tells apart: exactly ``patience`` epochs since the best (stop) and one fewer (go
  on), a best value reached again later (equal is not better), a loss that falls again without
  beating the best, no epoch yet, one epoch, a loss still improving; their lengths, values and
  patiences change, and four more histories are random.
- q2: a small model (random sizes and weights: sigmoid features, then a well-conditioned square
  head, so the judge can see what the head received), a batch of random inputs, two dropout
  probabilities (one in 0.4..0.65, one in 0.2..0.3) and the seed of the dropout masks.
- q3: a body of one or two linear layers and a linear head of random sizes, their starting weights
  and how far they moved, and three (alpha, beta) pairs: both non-zero, beta = 0, alpha = 0.
"""
from __future__ import annotations

import copy
import random

import numpy as np
import torch
from torch import nn

from ..exercises import Ask

# ---------------------------------------------------------------- q1: early stopping


def _history(rng: random.Random, before: int, after: int, level: int, ties: tuple[int, ...] = (),
             falls_again: bool = False, falling: bool = False) -> list[float]:
    """A history: ``before`` epochs above the best, the best (``level`` thousandths), ``after`` epochs above it.

    The epochs before the best mostly fall towards it (always, with ``falling``). ``ties``: positions
    after the best (1 = the next epoch) that reach the best value again. ``falls_again``: after the
    best the loss climbs, then falls every epoch, still above the best.
    """
    head = sorted((level + rng.randint(20, 900) for _ in range(before)), reverse=falling or rng.random() < 0.8)
    if falls_again:
        peak = level + rng.randint(150, 400)
        tail = [peak - k * (peak - level - 10) // max(after, 1) for k in range(after)]
    else:
        tail = [level + rng.randint(5, 300) for _ in range(after)]
    for t in ties:
        tail[t - 1] = level
    return [v / 1000 for v in head + [level] + tail]


def draw_histories(seed: int) -> list[dict]:
    """``{"val_losses": [...], "patience": p}`` cases, shuffled (see the module docstring)."""
    rng = random.Random(seed)
    level = lambda: rng.randint(200, 1500)  # noqa: E731  the best loss, in thousandths
    cases = []
    for _ in range(2):  # exactly `patience` epochs since the best: stop
        p = rng.randint(1, 5)
        cases.append((_history(rng, rng.randint(1, 6), p, level()), p))
    for _ in range(2):  # one epoch fewer: go on
        p = rng.randint(2, 5)
        cases.append((_history(rng, rng.randint(1, 6), p - 1, level()), p))
    p = rng.randint(1, 4)  # well past the patience: stop
    cases.append((_history(rng, rng.randint(0, 4), p + rng.randint(1, 3), level()), p))
    p = rng.randint(3, 5)  # far from it: go on
    cases.append((_history(rng, rng.randint(1, 4), rng.randint(0, p - 2), level()), p))
    p = rng.randint(2, 4)  # the best reached again later: counted from its first time, stop
    cases.append((_history(rng, rng.randint(1, 4), p + rng.randint(0, 1), level(), ties=(p,)), p))
    p = rng.randint(2, 3)  # the same best on consecutive epochs: stop
    cases.append((_history(rng, rng.randint(1, 3), p, level(), ties=tuple(range(1, p + 1))), p))
    p = rng.randint(2, 4)  # climbs, then falls again without beating the best: stop
    cases.append((_history(rng, rng.randint(1, 4), p + rng.randint(1, 2), level(), falls_again=True), p))
    cases.append(([], rng.randint(1, 4)))  # no epoch yet: go on
    cases.append((_history(rng, 0, 0, level()), rng.randint(1, 3)))  # one epoch: the best so far
    cases.append((_history(rng, rng.randint(4, 8), 0, level(), falling=True), 1))  # improving every epoch
    for _ in range(4):  # anything
        p = rng.randint(1, 5)
        cases.append((_history(rng, rng.randint(0, 6), rng.randint(0, 7), level()), p))
    rng.shuffle(cases)
    return [{"val_losses": losses, "patience": p} for losses, p in cases]


def collect_stop(cases, should_stop) -> dict:
    if not callable(should_stop):
        return {"problem": "should_stop should be a function of (val_losses, patience)"}
    answers = []
    for case in cases:
        value = should_stop(list(case["val_losses"]), case["patience"])
        if isinstance(value, np.bool_):
            value = bool(value)
        if type(value) is not bool:
            return {"problem": f"should_stop should return True or False, it returned {type(value).__name__}"}
        answers.append(value)
    return {"answers": answers}


# ---------------------------------------------------------------- q2: dropout before the head

class DropoutProbe(nn.Module):
    """Features (``width`` sigmoids), then an invertible square head in ``classifier``."""

    def __init__(self, n_in: int, width: int):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(n_in, width), nn.Sigmoid())
        self.classifier = nn.Linear(width, width)

    def forward(self, x):
        return self.classifier(self.features(x))


def draw_dropout(seed: int) -> dict:
    """A ``DropoutProbe`` of random sizes and weights, 64-96 random inputs, two p and the masks' seed."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    n_in, width, rows = rng.randint(3, 8), rng.randint(6, 10), rng.randint(64, 96)
    with torch.random.fork_rng(devices=[]):  # nn.Linear draws its first weights from the global RNG
        model = DropoutProbe(n_in, width)
    x = torch.randn(rows, n_in, generator=g)
    with torch.no_grad():
        model.features[0].weight.copy_(torch.randn(width, n_in, generator=g) * 0.6 / n_in**0.5)
        model.features[0].bias.copy_(torch.randn(width, generator=g) * 0.2)
        # a rotation times a diagonal in 0.7..1.4: invertible, with a condition number of at most 2
        q, _ = torch.linalg.qr(torch.randn(width, width, generator=g))
        model.classifier.weight.copy_(q * (0.7 + 0.7 * torch.rand(width, generator=g)))
        model.classifier.bias.copy_(torch.randn(width, generator=g) * 0.5 + 0.5)
    return {"model": model, "inputs": x, "ps": [rng.uniform(0.4, 0.65), rng.uniform(0.2, 0.3)],
            "mask_seed": rng.getrandbits(62)}


def collect_dropout(probe, add_dropout) -> dict:
    if not callable(add_dropout):
        return {"problem": "add_dropout should be a function of (model, p)"}
    runs = []
    x = probe["inputs"]
    width = probe["model"].classifier.out_features
    for k, p in enumerate(probe["ps"]):
        model = add_dropout(copy.deepcopy(probe["model"]), p)
        if not isinstance(model, nn.Module):
            return {"problem": f"add_dropout should return the model, it returned {type(model).__name__}"}
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(probe["mask_seed"] + k)
            model.eval()
            out_eval = model(x.clone())
            model.train()
            out_train = model(x.clone())
        shape = (x.shape[0], width)
        if not isinstance(out_eval, torch.Tensor) or not isinstance(out_train, torch.Tensor) \
                or out_eval.shape != shape or out_train.shape != shape:
            return {"problem": f"the model should still give {width} outputs per input, like before"}
        runs.append({"p": p, "eval": out_eval.double().reshape(-1).tolist(),
                     "train": out_train.double().reshape(-1).tolist()})
    return {"runs": runs}


# ---------------------------------------------------------------- q3: L2-SP penalty

class PenaltyProbe(nn.Module):
    """A body (one or two linear layers) and a linear head."""

    def __init__(self, sizes: list[int]):
        super().__init__()
        layers = [nn.Linear(a, b) for a, b in zip(sizes[:-2], sizes[1:-1])]
        self.body = layers[0] if len(layers) == 1 else nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-2], sizes[-1])

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def draw_penalty(seed: int) -> dict:
    """The model's sizes, its starting weights and where "training" moved them, and three (alpha, beta)."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    sizes = [rng.randint(2, 6) for _ in range(rng.choice([3, 4]))]
    with torch.random.fork_rng(devices=[]):
        names = [(name, tuple(p.shape)) for name, p in PenaltyProbe(sizes).named_parameters()]
    start = {name: torch.randn(shape, generator=g) * 0.5 for name, shape in names}
    moved = {name: t + torch.randn(t.shape, generator=g) * rng.uniform(0.1, 0.4) for name, t in start.items()}
    alphas = [10 ** rng.uniform(-2, 0) for _ in range(2)]
    betas = [10 ** rng.uniform(-3, -0.5) for _ in range(2)]
    return {"sizes": sizes, "start": start, "moved": moved,
            "cases": [(alphas[0], betas[0]), (alphas[1], 0.0), (0.0, betas[1])]}


def penalty_case(probe: dict) -> tuple[PenaltyProbe, dict[str, torch.Tensor]]:
    """The probe's model after "training" and its starting weights ({name: tensor}, like snapshot_weights)."""
    with torch.random.fork_rng(devices=[]):
        model = PenaltyProbe(probe["sizes"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(probe["moved"][name])
    return model, {name: t.clone() for name, t in probe["start"].items()}


def gradients(model: nn.Module) -> list[float]:
    return [float(v) for p in model.parameters()
            for v in (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)]


def collect_penalty(probe, l2sp_penalty) -> dict:
    if not callable(l2sp_penalty):
        return {"problem": "l2sp_penalty should be a function of (model, start, alpha, beta)"}
    values, grads = [], []
    for alpha, beta in probe["cases"]:
        model, start = penalty_case(probe)
        value = l2sp_penalty(model, start, alpha, beta)
        if not isinstance(value, torch.Tensor):
            return {"problem": f"l2sp_penalty returned {type(value).__name__}; return a tensor (no .item()), so "
                               "that the training loss can backpropagate through it"}
        if value.numel() != 1:
            return {"problem": f"l2sp_penalty should return one number (a 0-d tensor), not shape {tuple(value.shape)}"}
        values.append(float(value.detach().reshape(())))
        if value.requires_grad:
            value.reshape(()).backward()
            grads.append(gradients(model))
        else:
            grads.append(None)
    return {"values": values, "grads": grads}


ASKS = {
    "q1": Ask(("should_stop",), collect_stop, draw_histories),
    "q2": Ask(("add_dropout",), collect_dropout, draw_dropout),
    "q3": Ask(("l2sp_penalty",), collect_penalty, draw_penalty),
}
