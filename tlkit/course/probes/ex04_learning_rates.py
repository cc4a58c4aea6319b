"""Exercise 04's probes: fresh LR range-test curves, a fresh tiny model with stale gradients, fresh parts.

Every check draws its own inputs from the seed:

- q1: four range-test curves (falling loss, then an explosion), each shifted along the LR axis, with
  its own LR range, number of steps, depth and width of the fall, noise, and sometimes cut short
  where the loss diverges (as ``tl.lr_find`` stops). Every curve starts flat well below its steepest
  point and ends past its minimum, so every hint of the judge can be told apart on every draw.
- q2: a linear layer of random size and weights whose parameters carry random stale gradients, an
  SGD optimiser with a random LR, and three random batches.
- q3: two lists of 3-6 parts (random layers, some without a bias), each with a random lr and mult.
"""
from __future__ import annotations

import copy
import math
import random
import warnings

import numpy as np
import torch
from torch import nn

from ..exercises import Ask

# ---------------------------------------------------------------- q1: pick an LR from a curve

N_CURVES = 6


def curve_loss(x: np.ndarray, c: dict) -> np.ndarray:
    """The noise-free loss at log10(LR) ``x`` of the curve with parameters ``c``: a fall, then an explosion."""
    return c["top"] - c["drop"] / (1 + np.exp(-(x - c["centre"]) / c["width"])) + np.exp((x - c["blow"]) * c["rate"])


def draw_curves(seed: int) -> list[dict]:
    """``N_CURVES`` curves ``{"lrs", "losses" (what the learner sees, a little noisy), "clean", "params"}``."""
    rng = random.Random(seed)
    curves = []
    for _ in range(N_CURVES):
        lo = rng.uniform(-8.0, -4.5)
        centre = lo + rng.uniform(1.8, 4.0)
        blow = centre + rng.uniform(1.65, 2.1)
        hi = blow + rng.uniform(0.8, 1.8)
        drop = rng.uniform(1.2, 2.0)
        params = {"centre": centre, "width": rng.uniform(0.22, 0.36), "blow": blow, "rate": rng.uniform(3.0, 5.0),
                  "drop": drop, "top": drop + rng.uniform(0.2, 1.2)}
        x = np.linspace(lo, hi, rng.randint(45, 80))
        clean = curve_loss(x, params)
        noisy = clean + np.random.default_rng(rng.getrandbits(64)).normal(0, rng.uniform(0.002, 0.008), x.size)
        if rng.random() < 0.5:  # stopped early, the way tl.lr_find stops once the loss has diverged
            over = np.flatnonzero(noisy > rng.uniform(3.0, 6.0) * np.minimum.accumulate(noisy))
            if over.size:
                x, clean, noisy = x[: over[0] + 1], clean[: over[0] + 1], noisy[: over[0] + 1]
        curves.append({"lrs": [float(v) for v in 10**x], "losses": [float(v) for v in noisy],
                       "clean": [float(v) for v in clean], "params": params})
    return curves


def collect_pick(curves, pick_lr) -> dict:
    if not callable(pick_lr):
        return {"problem": "pick_lr should be a function of (lrs, losses)"}
    picks = []
    for curve in curves:
        value = pick_lr(list(curve["lrs"]), list(curve["losses"]))
        if hasattr(value, "item") and callable(value.item):  # a numpy or 0-d torch number
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return {"problem": f"pick_lr should return a number (an LR), it returned {type(value).__name__}"}
        if not math.isfinite(value) or value <= 0:
            return {"problem": f"pick_lr returned {value!r}; a learning rate is a positive number"}
        picks.append(float(value))
    return {"picks": picks}


# ---------------------------------------------------------------- q2: the training step

def draw_step(seed: int) -> dict:
    """A linear layer (random sizes and weights), its stale gradients, an SGD LR and three batches."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    n_in, n_out = rng.randint(3, 7), rng.randint(2, 5)
    state = {"weight": torch.randn(n_out, n_in, generator=g) * 0.5, "bias": torch.randn(n_out, generator=g) * 0.2}
    stale = {name: torch.randn(t.shape, generator=g) * rng.uniform(0.3, 1.0) for name, t in state.items()}
    batches = []
    for _ in range(3):
        size = rng.randint(3, 8)
        batches.append((torch.randn(size, n_in, generator=g) * rng.uniform(0.5, 2.0),
                        torch.randint(0, n_out, (size,), generator=g)))
    return {"sizes": (n_in, n_out), "state": state, "stale": stale, "lr": rng.uniform(0.05, 0.5), "batches": batches}


def step_model(probe: dict) -> tuple[nn.Linear, torch.optim.Optimizer]:
    """The probe's layer with its stale gradients, and the SGD optimiser the learner's step is given."""
    n_in, n_out = probe["sizes"]
    with torch.random.fork_rng(devices=[]):  # nn.Linear draws its first weights from the global RNG
        model = nn.Linear(n_in, n_out)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(probe["state"][name])
            p.grad = probe["stale"][name].clone()
    return model, torch.optim.SGD(model.parameters(), lr=probe["lr"])


def flat(model: nn.Module) -> list[float]:
    return [float(v) for p in model.parameters() for v in p.detach().reshape(-1)]


def collect_step(probe, train_step) -> dict:
    if not callable(train_step):
        return {"problem": "train_step should be a function of (model, batch, optimizer, loss_fn)"}
    model, optimizer = step_model(probe)
    returned, params = [], []
    for x, y in probe["batches"]:
        value = train_step(model, (x.clone(), y.clone()), optimizer, nn.CrossEntropyLoss())
        if isinstance(value, torch.Tensor):
            return {"problem": "train_step returned a tensor; return the loss as a Python float (loss.item())"}
        if hasattr(value, "item") and callable(value.item):  # a numpy number
            value = value.item()
        if type(value) is not float or not math.isfinite(value):
            return {"problem": f"train_step should return the batch's loss as a float, it returned "
                               f"{type(value).__name__}"}
        returned.append(value)
        params.append(flat(model))
    return {"returned": returned, "params": params}


# ---------------------------------------------------------------- q3: discriminative LRs

UNSET = 123.0  # the optimiser's default LR: a group that has none shows this


def draw_parts(seed: int) -> list[dict]:
    """Two cases ``{"parts": [modules from the input to the head], "lr", "mult"}`` with 3-6 parts each."""
    rng = random.Random(seed)
    cases = []
    with torch.random.fork_rng(devices=[]):  # the layers' first weights come from the global RNG
        torch.manual_seed(seed)
        for _ in range(2):
            n = rng.randint(3, 6)
            sizes = [rng.randint(2, 6) for _ in range(n + 1)]
            parts = []
            for k, (a, b) in enumerate(zip(sizes, sizes[1:])):
                if k < n - 1 and rng.random() < 0.3:  # a body part of two layers
                    parts.append(nn.Sequential(nn.Linear(a, b, bias=rng.random() < 0.5), nn.ReLU(), nn.Linear(b, b)))
                else:
                    parts.append(nn.Linear(a, b, bias=k == n - 1 or rng.random() < 0.7))
            cases.append({"parts": parts, "lr": 10 ** rng.uniform(-5, -1), "mult": rng.uniform(0.1, 0.9)})
    return cases


def collect_groups(cases, discriminative_groups) -> dict:
    if not callable(discriminative_groups):
        return {"problem": "discriminative_groups should be a function of (parts, lr, mult)"}
    found = []
    for case in cases:
        parts = copy.deepcopy(case["parts"])
        groups = discriminative_groups(list(parts), case["lr"], case["mult"])
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
            return {"problem": "discriminative_groups should return a list of dicts like "
                               "{'params': part.parameters(), 'lr': ...}"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a parameter listed twice in one group only warns (for now)
            optimizer = torch.optim.SGD(groups, lr=UNSET)  # raises if a parameter is in two groups
        lr_of = {id(p): float(g["lr"]) for g in optimizer.param_groups for p in g["params"]}
        found.append([[lr_of.get(id(p)) for p in part.parameters()] for part in parts])
    return {"cases": found}


ASKS = {
    "q1": Ask(("pick_lr",), collect_pick, draw_curves),
    "q2": Ask(("train_step",), collect_step, draw_step),
    "q3": Ask(("discriminative_groups",), collect_groups, draw_parts),
}
