"""Exercise 03's probes: randomly initialised networks in random freezing states, random learning rates.

Every check draws its own scenarios from the seed: which n to unfreeze and how the model arrives
(all learning, all frozen, a random mix), which BatchNorm layers of a small network are frozen,
which learning rates and body factors to split. The cases a judge tells apart (n = 0, a model that
arrives frozen, a frozen BatchNorm1d) are in every draw; the numbers around them change.
"""
from __future__ import annotations

import copy
import functools
import random

import torch
from torch import nn

from ..exercises import Ask


@functools.lru_cache(maxsize=1)
def _template() -> nn.Module:
    """EfficientNet-Lite0, random weights, 8-class head: the freezing plan does not depend on weights."""
    from ...models import load_pretrained

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return load_pretrained("efficientnet_lite0", num_classes=8, pretrained=False)


def fresh() -> nn.Module:
    return copy.deepcopy(_template())


def trainable(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def n_body_parts() -> int:
    from ...freezing import parts

    return len(parts(_template())) - 1


# ---------------------------------------------------------------- q1: unfreeze the last n parts

def draw_unfreeze(seed: int) -> list[dict]:
    """Scenarios ``{"n": n, "start": [requires_grad of each parameter before the call]}``.

    Always: n = 0 on a learning model, an n >= 1 on a learning model, an n >= 1 on a frozen one; then
    two random n on random mixes.
    """
    rng = random.Random(seed)
    count = sum(1 for _ in _template().parameters())
    top = n_body_parts()
    # n stays below the number of body parts: "one part too many" must stay distinguishable from right
    scenarios = [(0, "all"), (rng.randint(1, 3), "all"), (rng.randint(1, top - 1), "none"),
                 (rng.randint(1, top - 1), "mix"), (rng.randint(0, top - 1), "mix")]
    out = []
    for n, start in scenarios:
        if start == "mix":
            flags = [rng.random() < 0.5 for _ in range(count)]
        else:
            flags = [start == "all"] * count
        out.append({"n": n, "start": flags})
    return out


def collect_unfreeze(scenarios, unfreeze_last_n) -> dict:
    if not callable(unfreeze_last_n):
        return {"problem": "unfreeze_last_n should be a function: def unfreeze_last_n(model, n): ..."}
    model = fresh()
    runs = []
    for scenario in scenarios:
        for p, flag in zip(model.parameters(), scenario["start"]):
            p.requires_grad = flag
        unfreeze_last_n(model, scenario["n"])
        runs.append(trainable(model))
    return {"runs": runs}


# ---------------------------------------------------------------- q2: frozen BatchNorm in eval mode

class ProbeNet(nn.Module):
    """A small network: ``len(frozen)`` conv + BatchNorm2d blocks, a dropout, then linear + BatchNorm1d + linear.

    ``frozen[k]`` says whether block k (conv and BatchNorm) learns; the BatchNorm1d block is frozen.
    """

    def __init__(self, width: int, frozen: list[bool]):
        super().__init__()
        self.blocks = nn.ModuleList()
        for k, is_frozen in enumerate(frozen):
            block = nn.Sequential(nn.Conv2d(3 if k == 0 else width, width, 3, padding=1), nn.BatchNorm2d(width))
            block.requires_grad_(not is_frozen)
            self.blocks.append(block)
        self.drop = nn.Dropout(0.5)
        self.fc1, self.bn1d = nn.Linear(width, 5), nn.BatchNorm1d(5)
        self.fc1.requires_grad_(False)
        self.bn1d.requires_grad_(False)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        for block in self.blocks:
            x = torch.relu(block(x))
        x = self.drop(x)
        return self.fc2(torch.relu(self.bn1d(self.fc1(x.mean(dim=(2, 3))))))


def draw_bn(seed: int) -> dict:
    """Two networks and the batch each one sees afterwards: the small one with 2-5 blocks (at least one
    frozen and one learning BatchNorm2d, the BatchNorm1d frozen) and EfficientNet-Lite0 with 1-8 parts learning."""
    from ...freezing import unfreeze_last

    rng = random.Random(seed)
    blocks = rng.randint(2, 5)
    frozen = [True, False] + [rng.random() < 0.5 for _ in range(blocks - 2)]
    rng.shuffle(frozen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        small = ProbeNet(rng.randint(4, 12), frozen)
        big = unfreeze_last(fresh(), rng.randint(1, n_body_parts() - 1))
        inputs = [torch.randn(4, 3, 32, 32) * rng.uniform(1.5, 3.0) + rng.uniform(0.5, 2.0) for _ in range(2)]
    return {"models": [small, big], "inputs": inputs}


def is_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def collect_bn(probe, frozen_bn_eval) -> dict:
    if not callable(frozen_bn_eval):
        return {"problem": "frozen_bn_eval should be a function: def frozen_bn_eval(model): ..."}
    runs = []
    for model, x in zip(copy.deepcopy(probe["models"]), probe["inputs"]):
        flags = [p.requires_grad for p in model.parameters()]
        model.train()  # what every training loop does first
        frozen_bn_eval(model)
        bns = [(name, m) for name, m in model.named_modules() if is_bn(m)]
        before = [m.running_mean.clone() for _, m in bns]
        record = {"layers": [[name, bool(m.training)] for name, m in bns],
                  "model_training": bool(model.training),
                  "dropout_training": [bool(m.training) for m in model.modules() if isinstance(m, nn.Dropout)],
                  "grad_flags_kept": [p.requires_grad for p in model.parameters()] == flags}
        with torch.no_grad():
            model(x)
        record["moved"] = [not torch.equal(b, m.running_mean) for b, (_, m) in zip(before, bns)]
        runs.append(record)
    return {"runs": runs}


# ---------------------------------------------------------------- q3: two learning rates

SENTINEL_LR = 123.0  # the optimiser's default: a group without its own "lr" gets this


def draw_groups(seed: int) -> dict:
    """Two calls with random learning rates and body factors, on a model with 1-4 parts learning."""
    rng = random.Random(seed)
    calls = [(10 ** rng.uniform(-5, -1), rng.uniform(0.05, 0.9)) for _ in range(2)]
    return {"n": rng.randint(1, 4), "calls": calls}


def groups_model(n: int) -> nn.Module:
    from ...freezing import unfreeze_last

    return unfreeze_last(fresh(), n)


def collect_groups(probe, lr_groups) -> dict:
    if not callable(lr_groups):
        return {"problem": "lr_groups should be a function: def lr_groups(model, lr, body_factor): ..."}
    runs = []
    for lr, factor in probe["calls"]:
        model = groups_model(probe["n"])
        groups = lr_groups(model, lr, factor)
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
            runs.append({"kind": type(groups).__name__})
            continue
        try:
            optimizer = torch.optim.SGD(list(groups), lr=SENTINEL_LR)
        except (ValueError, TypeError) as err:
            duplicated = "more than one parameter group" in str(err)
            runs.append({"kind": "duplicated" if duplicated else "invalid", "message": str(err)[:160]})
            continue
        names = {id(p): name for name, p in model.named_parameters()}
        lrs = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                lrs[names.get(id(p), "<not a parameter of the model>")] = float(group["lr"])
        runs.append({"kind": "groups", "n_groups": len(groups), "lrs": lrs})
    return {"runs": runs}


ASKS = {
    "q1": Ask(("unfreeze_last_n",), collect_unfreeze, draw_unfreeze),
    "q2": Ask(("frozen_bn_eval",), collect_bn, draw_bn),
    "q3": Ask(("lr_groups",), collect_groups, draw_groups),
}
