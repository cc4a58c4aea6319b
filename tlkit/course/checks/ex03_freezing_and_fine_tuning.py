"""Exercise 03: layer freezing and fine-tuning (lesson 03).

q1 (code): ``unfreeze_last_n(model, n)``: the head and the last ``n`` parts learn, the rest is frozen.
q2 (code): ``frozen_bn_eval(model)``: after ``model.train()``, frozen BatchNorm layers back to eval mode.
q3 (code): ``lr_groups(model, lr, body_factor)``: two optimiser groups, the head at ``lr`` and the
           rest of the trainable body at ``lr * body_factor``.
q4 (exercises/03.yaml): what tl.freeze_batchnorm protects from with one class per batch.
q5 (exercises/03.yaml): what fraction of the parameters unfreeze_last(model, 2) trains.

The learner's functions run on fresh models drawn for each check (``tlkit/course/probes/ex03_*``:
EfficientNet-Lite0 with random weights in random freezing states, a small network whose frozen
BatchNorm layers change, random learning rates); the judge draws the same probe in its own process
to know the right answer, so the evidence holds only what the learner's code did on that probe.
"""
from __future__ import annotations

import math

from torch import nn

from ..exercises import Exercise, Verdict, probed_item, quiz_item
from ..probes.ex03_freezing_and_fine_tuning import (ASKS, SENTINEL_LR, fresh, groups_model, is_bn, n_body_parts,
                                                    trainable)

HEAD = "classifier."


def _expected_unfreeze() -> dict:
    from ...freezing import unfreeze_last
    model = fresh()
    out = {n: trainable(unfreeze_last(model, n)) for n in range(n_body_parts() + 1)}
    out["all"] = [name for name, _ in model.named_parameters()]
    return out


def _judge_unfreeze(evidence: dict, scenarios) -> Verdict:
    runs = evidence.get("runs")
    if type(runs) is not list or len(runs) != len(scenarios) or \
            not all(type(r) is list and all(type(name) is str for name in r) for r in runs):
        return Verdict(False, "unfreeze_last_n should set requires_grad on the model it is given")
    expected = _expected_unfreeze()
    names = expected["all"]
    got = [set(r) for r in runs]
    want = [set(expected[s["n"]]) for s in scenarios]
    starts = [{name for name, flag in zip(names, s["start"]) if flag} for s in scenarios]
    learning = [all(s["start"]) for s in scenarios]  # the model arrived with every parameter learning
    if got == want:
        return Verdict(True)
    if got == starts:
        return Verdict(False, "unfreeze_last_n changed nothing: set requires_grad = False on every parameter, "
                              "then True for the head and the last n parts")
    if all(g == w for g, w, ok in zip(got, want, learning) if ok):
        return Verdict(False, "wrong when the model arrives (partly) frozen: set requires_grad = True on the "
                              "parts you unfreeze, do not only freeze the others")
    head = {name for name in names if name.startswith(HEAD)}
    if not all(head <= g for g in got):
        return Verdict(False, "the head must learn too: unfreeze the head (`classifier`) as well as the last n parts")
    if all(g == set(names) for g, ok in zip(got, learning) if ok):
        return Verdict(False, "nothing was frozen: first set requires_grad = False on every parameter, then "
                              "switch it back on for the head and the last n parts")
    top = max(k for k in expected if type(k) is int)
    ns = [s["n"] for s in scenarios]
    if all(g == set(expected[min(n + 1, top)]) for g, n in zip(got, ns)):
        return Verdict(False, "one part too many: the neck (conv_head + bn2) counts as a part, so n=1 trains "
                              "the neck and the head only — count the parts as tl.parts(model) lists them")
    if all(g == set(expected[max(n - 1, 0)]) for g, n in zip(got, ns) if n > 0):
        return Verdict(False, "one part too few: n=1 should train the last part before the head (the neck) and "
                              "the head; count the parts as tl.parts(model) lists them")
    rest_ok = all(g == w for g, w, n in zip(got, want, ns) if n > 0)
    if rest_ok and any(g != w for g, w, n in zip(got, want, ns) if n == 0):
        return Verdict(False, "right for n >= 1, wrong for n = 0 (only the head learns then): careful, "
                              "body[-0:] is the whole list, not an empty one")
    wrong = next(n for g, w, n in zip(got, want, ns) if g != w)
    return Verdict(False, f"for n = {wrong} the wrong parameters learn: freeze everything, then unfreeze the "
                          "head and the last n entries of tl.parts(model)[:-1] (the parts before the head)")


# ---------------------------------------------------------------- q2: frozen BatchNorm in eval mode

def _frozen(module: nn.Module) -> bool:
    return not any(p.requires_grad for p in module.parameters(recurse=False))


def _judge_bn(evidence: dict, probe) -> Verdict:
    runs = evidence.get("runs")
    expected = [[[name, _frozen(m), isinstance(m, nn.BatchNorm1d)] for name, m in model.named_modules() if is_bn(m)]
                for model in probe["models"]]
    if type(runs) is not list or len(runs) != len(expected) or not all(type(r) is dict for r in runs):
        return Verdict(False, "frozen_bn_eval should work on the model it is given")
    for run, layers in zip(runs, expected):
        got, moved = run.get("layers"), run.get("moved")
        if type(got) is not list or [g[0] if type(g) is list and g else None for g in got] != \
                [name for name, _, _ in layers] or type(moved) is not list or len(moved) != len(layers) or \
                not all(type(g) is list and len(g) == 2 for g in got):
            return Verdict(False, "frozen_bn_eval should switch modes only, not add, remove or replace layers")
        if run.get("grad_flags_kept") is not True:
            return Verdict(False, "frozen_bn_eval changed which parameters learn: only switch modes "
                                  "(module.eval()), leave requires_grad as it is")
    if not all(r.get("model_training") is True and type(r.get("dropout_training")) is list
               and all(d is True for d in r["dropout_training"]) for r in runs):
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

def _close(a, b) -> bool:
    return type(a) is float and math.isclose(a, b, rel_tol=1e-6)


def _judge_groups(evidence: dict, probe) -> Verdict:
    runs, calls = evidence.get("runs"), probe["calls"]
    if type(runs) is not list or len(runs) != len(calls) or not all(type(r) is dict for r in runs):
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
    named = list(groups_model(probe["n"]).named_parameters())
    exp = {"head": [n for n, p in named if n.startswith(HEAD)],
           "body": [n for n, p in named if p.requires_grad and not n.startswith(HEAD)],
           "frozen": [n for n, p in named if not p.requires_grad]}
    results = []
    for run, (lr, factor) in zip(runs, calls):
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
        results.append(({lrs[n] for n in exp["head"]}, {lrs[n] for n in exp["body"]}, lr, factor))

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
    same_every_call = len({(frozenset(h), frozenset(b)) for h, b, _, _ in results}) == 1
    if any(right(*r) for r in results) or same_every_call:
        return Verdict(False, "the learning rates did not follow the arguments: use the lr and body_factor "
                              "you are given, not fixed numbers")
    return Verdict(False, "the head's parameters (`classifier`) should learn at lr, all other trainable "
                          "parameters at lr * body_factor")


EXERCISE = Exercise("03_freezing_and_fine_tuning", [
    probed_item("q1", ASKS["q1"], _judge_unfreeze,
                question="Write unfreeze_last_n(model, n): the head and the last n parts learn, the rest is frozen."),
    probed_item("q2", ASKS["q2"], _judge_bn,
                question="Write frozen_bn_eval(model): frozen BatchNorm layers to eval mode, the rest untouched."),
    probed_item("q3", ASKS["q3"], _judge_groups,
                question="Write lr_groups(model, lr, body_factor): the head at lr, the trainable body at "
                         "lr * body_factor."),
    quiz_item("q4", "answer_q4", "exercises/03", "q4"),
    quiz_item("q5", "answer_q5", "exercises/03", "q5"),
])
