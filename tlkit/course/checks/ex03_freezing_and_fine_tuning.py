"""Exercise 03: layer freezing and fine-tuning (lesson 03).

q1 (code): ``unfreeze_last_n(model, n)``: the head and the last ``n`` parts learn, the rest is frozen.
q2 (code): ``frozen_bn_eval(model)``: after ``model.train()``, frozen BatchNorm layers back to eval mode.
q3 (code): ``lr_groups(model, lr, body_factor)``: two optimiser groups, the head at ``lr`` and the
           rest of the trainable body at ``lr * body_factor``.
q4 (exercises/03.yaml): what tl.freeze_batchnorm protects from with one class per batch.
q5 (exercises/03.yaml): what fraction of the parameters unfreeze_last(model, 2) trains.

The learner's functions run on fresh models the checks build (EfficientNet-Lite0 with random
weights and an 8-class head, and a small probe network); the judge rebuilds the same models in its
own process to know the right answer, so the evidence holds only what the learner's code did.
"""
from __future__ import annotations

import copy
import functools
import math

import torch
from torch import nn

from ..exercises import Exercise, Item, Verdict, quiz_item

HEAD = "classifier."


@functools.lru_cache(maxsize=1)
def _template() -> nn.Module:
    """EfficientNet-Lite0, random weights, 8-class head: the freezing plan does not depend on weights."""
    from ...models import load_pretrained
    return load_pretrained("efficientnet_lite0", num_classes=8, pretrained=False)


def _fresh() -> nn.Module:
    return copy.deepcopy(_template())


def _trainable(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


# ---------------------------------------------------------------- q1: unfreeze the last n parts

SCENARIOS = [(0, True), (1, True), (2, True), (4, True), (2, False)]  # (n, model starts all-trainable?)


def _collect_unfreeze(unfreeze_last_n) -> dict:
    if not callable(unfreeze_last_n):
        return {"problem": "unfreeze_last_n should be a function: def unfreeze_last_n(model, n): ..."}
    model = _fresh()
    runs = []
    for n, start_trainable in SCENARIOS:
        for p in model.parameters():
            p.requires_grad = start_trainable
        unfreeze_last_n(model, n)
        runs.append(_trainable(model))
    return {"runs": runs}


@functools.lru_cache(maxsize=1)
def _expected_unfreeze() -> dict:
    from ...freezing import parts, unfreeze_last
    model = _fresh()
    out = {n: _trainable(unfreeze_last(model, n)) for n in range(len(parts(model)) + 1)}
    out["all"] = [name for name, _ in model.named_parameters()]
    return out


def _judge_unfreeze(evidence: dict) -> Verdict:
    runs = evidence.get("runs")
    if type(runs) is not list or len(runs) != len(SCENARIOS) or \
            not all(type(r) is list and all(type(name) is str for name in r) for r in runs):
        return Verdict(False, "unfreeze_last_n should set requires_grad on the model it is given")
    expected = _expected_unfreeze()
    got = [set(r) for r in runs]
    want = [set(expected[n]) for n, _ in SCENARIOS]
    if got == want:
        return Verdict(True)
    if all(g == (set(expected["all"]) if trainable else set()) for g, (_, trainable) in zip(got, SCENARIOS)):
        return Verdict(False, "unfreeze_last_n changed nothing: set requires_grad = False on every parameter, "
                              "then True for the head and the last n parts")
    if all(g == w for g, w, (_, trainable) in zip(got, want, SCENARIOS) if trainable):
        return Verdict(False, "wrong when the model arrives already frozen: set requires_grad = True on the "
                              "parts you unfreeze, do not only freeze the others")
    head = {name for name in expected["all"] if name.startswith(HEAD)}
    if not all(head <= g for g in got):
        return Verdict(False, "the head must learn too: unfreeze the head (`classifier`) as well as the last n parts")
    started = [g for g, (_, trainable) in zip(got, SCENARIOS) if trainable]
    if all(g == set(expected["all"]) for g in started):
        return Verdict(False, "nothing was frozen: first set requires_grad = False on every parameter, then "
                              "switch it back on for the head and the last n parts")
    ns = [n for n, _ in SCENARIOS]
    top = max(k for k in expected if type(k) is int)
    if all(g == set(expected[min(n + 1, top)]) for g, n in zip(got, ns)):
        return Verdict(False, "one part too many: the neck (conv_head + bn2) counts as a part, so n=1 trains "
                              "the neck and the head only — count the parts as tl.parts(model) lists them")
    if all(g == set(expected[max(n - 1, 0)]) for g, n in zip(got, ns) if n > 0):
        return Verdict(False, "one part too few: n=1 should train the last part before the head (the neck) and "
                              "the head; count the parts as tl.parts(model) lists them")
    rest_ok = all(g == w for g, w, (n, _) in zip(got, want, SCENARIOS) if n > 0)
    if rest_ok and got[0] != want[0]:
        return Verdict(False, "right for n >= 1, wrong for n = 0 (only the head learns then): careful, "
                              "body[-0:] is the whole list, not an empty one")
    wrong = next(n for g, w, (n, _) in zip(got, want, SCENARIOS) if g != w)
    return Verdict(False, f"for n = {wrong} the wrong parameters learn: freeze everything, then unfreeze the "
                          "head and the last n entries of tl.parts(model)[:-1] (the parts before the head)")


# ---------------------------------------------------------------- q2: frozen BatchNorm in eval mode

class _Probe(nn.Module):
    """A small network with frozen and learning BatchNorm layers (2-D and 1-D) and a dropout."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.conv2, self.bn2 = nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.5)
        self.fc1, self.bn3 = nn.Linear(6, 5), nn.BatchNorm1d(5)
        self.fc2 = nn.Linear(5, 3)
        for module in (self.conv1, self.bn1, self.fc1, self.bn3):  # frozen: bn1 and bn3
            for p in module.parameters():
                p.requires_grad = False

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.drop(torch.relu(self.bn2(self.conv2(x))))
        return self.fc2(torch.relu(self.bn3(self.fc1(x.mean(dim=(2, 3))))))


def _bn_probes() -> list[nn.Module]:
    from ...freezing import unfreeze_last
    return [_Probe(), unfreeze_last(_fresh(), 1)]  # EfficientNet: only the neck's bn2 and the head learn


def _is_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _frozen(module: nn.Module) -> bool:
    return not any(p.requires_grad for p in module.parameters(recurse=False))


def _collect_bn(frozen_bn_eval) -> dict:
    if not callable(frozen_bn_eval):
        return {"problem": "frozen_bn_eval should be a function: def frozen_bn_eval(model): ..."}
    runs = []
    for k, model in enumerate(_bn_probes()):
        flags = [p.requires_grad for p in model.parameters()]
        model.train()  # what every training loop does first
        frozen_bn_eval(model)
        bns = [(name, m) for name, m in model.named_modules() if _is_bn(m)]
        before = [m.running_mean.clone() for _, m in bns]
        record = {"layers": [[name, bool(m.training)] for name, m in bns],
                  "model_training": bool(model.training),
                  "dropout_training": [bool(m.training) for m in model.modules() if isinstance(m, nn.Dropout)],
                  "grad_flags_kept": [p.requires_grad for p in model.parameters()] == flags}
        g = torch.Generator().manual_seed(k)
        with torch.no_grad():
            model(torch.randn(4, 3, 32, 32, generator=g) * 2 + 1)
        record["moved"] = [not torch.equal(b, m.running_mean) for b, (_, m) in zip(before, bns)]
        runs.append(record)
    return {"runs": runs}


@functools.lru_cache(maxsize=1)
def _expected_bn() -> list[list]:
    """For each probe: [name, frozen, is 1-D] of every BatchNorm layer."""
    return [[[name, _frozen(m), isinstance(m, nn.BatchNorm1d)] for name, m in model.named_modules() if _is_bn(m)]
            for model in _bn_probes()]


def _judge_bn(evidence: dict) -> Verdict:
    runs = evidence.get("runs")
    expected = _expected_bn()
    if type(runs) is not list or len(runs) != len(expected) or not all(type(r) is dict for r in runs):
        return Verdict(False, "frozen_bn_eval should work on the model it is given")
    for run, layers in zip(runs, expected):
        got, moved = run.get("layers"), run.get("moved")
        if type(got) is not list or [g[0] if type(g) is list and g else None for g in got] != \
                [name for name, _, _ in layers] or type(moved) is not list or len(moved) != len(layers):
            return Verdict(False, "frozen_bn_eval should switch modes only, not add, remove or replace layers")
        if run.get("grad_flags_kept") is not True:
            return Verdict(False, "frozen_bn_eval changed which parameters learn: only switch modes "
                                  "(module.eval()), leave requires_grad as it is")
    if not all(r.get("model_training") is True and all(d is True for d in r.get("dropout_training", [None]))
               for r in runs):
        return Verdict(False, "you put the whole model in eval mode: only the frozen BatchNorm layers go to "
                              "eval; dropout and everything else must stay in train mode")
    frozen_train, trainable_eval, frozen_1d_train, stats_moved = [], [], [], []
    for run, layers in zip(runs, expected):
        for (name, training), (_, frozen, one_d), moved in zip(run["layers"], layers, run["moved"]):
            if frozen and training is not False:
                (frozen_1d_train if one_d else frozen_train).append(name)
            if not frozen and training is not True:
                trainable_eval.append(name)
            if frozen and moved is not False:
                stats_moved.append(name)
    if trainable_eval:
        return Verdict(False, "BatchNorm layers whose parameters learn went to eval mode too: switch only the "
                              "frozen ones (no parameter with requires_grad) to eval")
    if frozen_1d_train and not frozen_train:
        return Verdict(False, "right for BatchNorm2d, but a frozen BatchNorm1d stayed in train mode: test "
                              "isinstance(m, nn.modules.batchnorm._BatchNorm), which covers 1d, 2d and 3d")
    if frozen_train or frozen_1d_train:
        return Verdict(False, "frozen BatchNorm layers are still in train mode, so their running statistics "
                              "move: call .eval() on every BatchNorm layer whose parameters are all frozen")
    if stats_moved:
        return Verdict(False, "the running statistics of frozen BatchNorm layers still moved: put those layers "
                              "in eval mode and leave their settings (momentum, buffers) alone")
    return Verdict(True)


# ---------------------------------------------------------------- q3: two learning rates

CALLS = [(1e-3, 0.1), (2e-2, 0.5)]  # (lr, body_factor)
SENTINEL_LR = 123.0  # the optimiser's default: a group without its own "lr" gets this


def _groups_probe() -> nn.Module:
    from ...freezing import unfreeze_last
    return unfreeze_last(_fresh(), 2)  # blocks.6, the neck and the head learn; the rest is frozen


def _collect_groups(lr_groups) -> dict:
    if not callable(lr_groups):
        return {"problem": "lr_groups should be a function: def lr_groups(model, lr, body_factor): ..."}
    runs = []
    for lr, factor in CALLS:
        model = _groups_probe()
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


@functools.lru_cache(maxsize=1)
def _expected_groups() -> dict:
    model = _groups_probe()
    named = list(model.named_parameters())
    return {"head": [n for n, p in named if n.startswith(HEAD)],
            "body": [n for n, p in named if p.requires_grad and not n.startswith(HEAD)],
            "frozen": [n for n, p in named if not p.requires_grad]}


def _close(a, b) -> bool:
    return type(a) is float and math.isclose(a, b, rel_tol=1e-6)


def _judge_groups(evidence: dict) -> Verdict:
    runs = evidence.get("runs")
    if type(runs) is not list or len(runs) != len(CALLS) or not all(type(r) is dict for r in runs):
        return Verdict(False, "lr_groups should return a list of parameter groups (dicts) for every call")
    for run in runs:
        kind = run.get("kind")
        if kind == "duplicated":
            return Verdict(False, "a parameter is in two groups: put the head's parameters in the first group and "
                                  "every other trainable parameter in the second")
        if kind == "invalid":
            return Verdict(False, "the optimiser refused these groups: each group is a dict with 'params' (a list "
                                  "of parameters) and 'lr'")
        if kind != "groups" or type(run.get("lrs")) is not dict:
            return Verdict(False, f"lr_groups returned a {kind}: return a list of dicts like "
                                  "[{'params': [...], 'lr': lr}, {'params': [...], 'lr': lr * body_factor}]")
    exp = _expected_groups()
    results = []
    for run, (lr, factor) in zip(runs, CALLS):
        lrs = run["lrs"]
        if any(_close(v, SENTINEL_LR) for v in lrs.values()):
            return Verdict(False, "a group has no 'lr' of its own: give both groups an 'lr' key")
        if any(name in lrs for name in exp["frozen"]) or "<not a parameter of the model>" in lrs:
            return Verdict(False, "frozen parameters are in the groups: include only parameters with "
                                  "p.requires_grad (the frozen ones cannot learn anyway)")
        missing = [n for n in exp["head"] + exp["body"] if n not in lrs]
        if missing:
            return Verdict(False, f"{len(missing)} trainable parameters are in no group (e.g. {missing[0]}): "
                                  "every parameter that learns must be in one of the two groups")
        head_lrs = {lrs[n] for n in exp["head"]}
        body_lrs = {lrs[n] for n in exp["body"]}
        results.append((head_lrs, body_lrs, lr, factor))

    def right(head_lrs, body_lrs, lr, factor):
        return len(head_lrs) == 1 and len(body_lrs) == 1 and _close(min(head_lrs), lr) and \
            _close(min(body_lrs), lr * factor)

    if all(right(*r) for r in results):
        return Verdict(True)
    if all(right(b, h, lr, f) for h, b, lr, f in results):
        return Verdict(False, "the other way round: the new head learns at the full lr, the pretrained body at "
                              "the smaller lr * body_factor")
    if all(right(h, b, lr, 1.0) for h, b, lr, f in results):
        return Verdict(False, "every parameter learns at lr: the body's group should get lr * body_factor")
    if any(right(*r) for r in results):
        return Verdict(False, "right for one call, wrong for another: use the lr and body_factor arguments, "
                              "not fixed numbers")
    return Verdict(False, "the head's parameters (`classifier`) should learn at lr, all other trainable "
                          "parameters at lr * body_factor")


EXERCISE = Exercise("03_freezing_and_fine_tuning", [
    Item("q1", ("unfreeze_last_n",), _collect_unfreeze, _judge_unfreeze,
         question="Write unfreeze_last_n(model, n): the head and the last n parts learn, the rest is frozen."),
    Item("q2", ("frozen_bn_eval",), _collect_bn, _judge_bn,
         question="Write frozen_bn_eval(model): frozen BatchNorm layers to eval mode, the rest untouched."),
    Item("q3", ("lr_groups",), _collect_groups, _judge_groups,
         question="Write lr_groups(model, lr, body_factor): the head at lr, the trainable body at lr * body_factor."),
    quiz_item("q4", "answer_q4", "exercises/03", "q4"),
    quiz_item("q5", "answer_q5", "exercises/03", "q5"),
])
