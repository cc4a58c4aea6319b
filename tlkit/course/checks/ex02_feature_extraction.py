"""Exercise 02: feature extraction, a frozen body and a new head (lesson 02).

q1 (code):   ``model``: EfficientNet-Lite0 with a new 8-class head, everything but the head frozen.
q2 (number): ``n_trainable``: how many parameters of that model learn.
q3 (code):   ``train_step(head, optimizer, x, y)``: one training step of a head on cached features.
q4 (code):   ``head``: a head trained on cached features that beats 60 % on the held-out test split.
q5 (exercises/02.yaml): which change of plan keeps a feature cache valid.

The judge recomputes what it compares with (parameter counts of a fresh model, a reference training
step on a tiny probe, the test labels); the evidence holds only what the learner's code produced.
"""
from __future__ import annotations

import copy
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..exercises import Exercise, Item, Verdict, quiz_item
from ..probes._shared import head_evidence, pretrained_reference
from ._reference import head_test_accuracy

N_CLASSES = 8
N_FEATURES = 1280
SIZE = 64           # the image size the features are extracted at
PASS_ACCURACY = 0.60


def _pretrained() -> nn.Module:
    """The checks' own pretrained model (eval mode, ImageNet head). Learner code never sees it."""
    return pretrained_reference()


@functools.lru_cache(maxsize=1)
def _course():
    from ...data import course_data
    return course_data("course")


# ---------------------------------------------------------------- q1: a frozen body and a new head

def _probe_batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.rand(2, 3, SIZE, SIZE, generator=g) * 2 - 1


@functools.lru_cache(maxsize=1)
def _reference_body() -> list[float]:
    from ...features import head_removed
    model = _pretrained()
    with head_removed(model), torch.inference_mode():
        return [round(v, 5) for v in model(_probe_batch())[:, :32].flatten().tolist()]


def _collect_model(model) -> dict:
    from ...features import head_removed

    if not isinstance(model, nn.Module):
        return {"problem": f"model should be a model (an nn.Module), got {type(model).__name__}"}
    params = [[name, p.numel(), bool(p.requires_grad)] for name, p in model.named_parameters()]
    probe = copy.deepcopy(model).eval().cpu()
    with torch.inference_mode():
        outputs = list(probe(_probe_batch()).shape)
    body = None
    try:
        with head_removed(probe), torch.inference_mode():
            out = probe(_probe_batch())
        if out.ndim == 2 and out.shape[1] >= 32 and torch.isfinite(out).all():
            body = [round(v, 5) for v in out[:, :32].float().flatten().tolist()]
    except ValueError:  # no head under the usual names
        pass
    return {"params": params, "outputs": outputs, "body": body}


def _judge_model(evidence: dict) -> Verdict:
    outputs, params = evidence.get("outputs"), evidence.get("params")
    if type(params) is not list or not all(type(p) is list and len(p) == 3 and type(p[0]) is str
                                           and type(p[1]) is int and type(p[2]) is bool for p in params):
        return Verdict(False, "model should be a PyTorch model with parameters")
    if outputs == [2, 1000]:
        return Verdict(False, "model still has the 1000-class ImageNet head: replace it with one for the "
                              "8 course classes (tl.replace_head(model, 8))")
    if outputs != [2, N_CLASSES]:
        return Verdict(False, f"model should output {N_CLASSES} scores per image, it outputs shape {outputs}")
    body = evidence.get("body")
    if type(body) is not list or not all(type(v) in (int, float) for v in body) or \
            len(body) != len(_reference_body()) or \
            not torch.allclose(torch.tensor(body), torch.tensor(_reference_body()), rtol=1e-3, atol=1e-3):
        return Verdict(False, "the body is not the pretrained one any more: start from "
                              "tl.load_pretrained('efficientnet_lite0') and change only the head")
    head = [p for p in params if p[0].startswith("classifier.")]
    body_params = [p for p in params if not p[0].startswith("classifier.")]
    if not head:
        return Verdict(False, "the new head should be the model's `classifier`: tl.replace_head(model, 8) puts it there")
    if not any(p[2] for p in params):
        return Verdict(False, "everything is frozen, the new head too: set requires_grad = True on the head's "
                              "parameters after freezing (tl.freeze(model) does both)")
    if not all(p[2] for p in head):
        return Verdict(False, "part of the head is frozen: every parameter of the new head must learn")
    learning = [p[0] for p in body_params if p[2]]
    if len(learning) == len(body_params):
        return Verdict(False, "nothing in the body is frozen: set requires_grad = False on every parameter "
                              "outside the head (or call tl.freeze(model))")
    if learning:
        shown = ", ".join(learning[:3]) + (" ..." if len(learning) > 3 else "")
        return Verdict(False, f"{len(learning)} body parameters still learn ({shown}): freeze everything "
                              "but the head")
    return Verdict(True)


# ---------------------------------------------------------------- q2: how many parameters learn

@functools.lru_cache(maxsize=1)
def _counts() -> dict:
    from ...freezing import count_parameters, freeze
    from ...models import load_pretrained
    model = freeze(load_pretrained("efficientnet_lite0", num_classes=N_CLASSES, pretrained=False))
    imagenet = load_pretrained("efficientnet_lite0", pretrained=False)
    return {"trainable": count_parameters(model, trainable_only=True), "total": count_parameters(model),
            "imagenet_head": count_parameters(imagenet.classifier), "imagenet_total": count_parameters(imagenet)}


def _collect_count(n_trainable) -> dict:
    value = n_trainable
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return {"type": "Tensor", "value": float(value.item())}
    if type(value) is int:
        return {"type": "int", "value": value}
    if type(value) is float and math.isfinite(value):
        return {"type": "float", "value": value}
    return {"type": type(value).__name__}


def _judge_count(evidence: dict) -> Verdict:
    kind, value = evidence.get("type"), evidence.get("value")
    if kind == "Tensor":
        return Verdict(False, "n_trainable is a tensor: make it a Python int (sum of p.numel() is one already)")
    if kind == "float":
        return Verdict(False, "n_trainable should be an int: a count of parameter values, not a float")
    if kind != "int" or type(value) is not int:
        return Verdict(False, "set n_trainable to an int: the number of parameter values that will learn")
    counts = _counts()
    if value == counts["trainable"]:
        return Verdict(True)
    if value == counts["total"] or value == counts["imagenet_total"]:
        return Verdict(False, "you counted every parameter: count only those with p.requires_grad")
    if value == counts["total"] - counts["trainable"]:
        return Verdict(False, "that is the number of frozen parameters: count those with p.requires_grad True")
    if value == counts["imagenet_head"]:
        return Verdict(False, "that is the ImageNet head (1000 outputs): count the trainable parameters of "
                              "the model with its new 8-class head")
    if value == N_FEATURES * N_CLASSES:
        return Verdict(False, "that is the head's weights only: its biases learn too")
    if value == 2:
        return Verdict(False, "you counted parameter tensors: sum p.numel() (the number of values in each)")
    return Verdict(False, f"n_trainable = {value:,} is not right yet: sum p.numel() over the parameters with "
                          "p.requires_grad of your frozen model")


# ---------------------------------------------------------------- q3: one training step

STEP_LR, STEP_IN, STEP_OUT, STEP_BATCH, STEPS = 0.5, 12, 4, 16, 3


def _step_probe():
    """A small seeded head, its SGD optimizer and 3 batches of fake features (the same every time)."""
    g = torch.Generator().manual_seed(7)
    head = nn.Linear(STEP_IN, STEP_OUT)
    with torch.no_grad():
        head.weight.copy_(torch.randn(STEP_OUT, STEP_IN, generator=g) * 0.3)
        head.bias.copy_(torch.randn(STEP_OUT, generator=g) * 0.1)
    xs = torch.randn(STEPS, STEP_BATCH, STEP_IN, generator=g)
    ys = torch.randint(0, STEP_OUT, (STEPS, STEP_BATCH), generator=g)
    return head, torch.optim.SGD(head.parameters(), lr=STEP_LR), xs, ys


def _weights(head: nn.Module) -> list[float]:
    return [round(v, 6) for v in torch.cat([head.weight.flatten(), head.bias.flatten()]).tolist()]


@functools.lru_cache(maxsize=1)
def _reference_steps() -> dict:
    """Weights after the 3 steps: done right, without zero_grad, without step; and the right losses."""
    out = {}
    for variant in ("right", "no_zero_grad", "no_step"):
        head, optimizer, xs, ys = _step_probe()
        losses = []
        for x, y in zip(xs, ys):
            if variant != "no_zero_grad":
                optimizer.zero_grad()
            loss = F.cross_entropy(head(x), y)
            loss.backward()
            if variant != "no_step":
                optimizer.step()
            losses.append(loss.item())
        out[variant] = _weights(head)
        if variant == "right":
            out["losses"] = losses
    return out


def _collect_step(train_step) -> dict:
    if not callable(train_step):
        return {"problem": "train_step should be a function: def train_step(head, optimizer, x, y): ..."}
    head, optimizer, xs, ys = _step_probe()
    returned = []
    for x, y in zip(xs, ys):
        loss = train_step(head, optimizer, x.clone(), y.clone())
        if type(loss) is float and math.isfinite(loss):
            returned.append({"type": "float", "value": loss})
        else:
            returned.append({"type": type(loss).__name__})
    weights = _weights(head)
    if not all(math.isfinite(v) for v in weights):
        return {"returned": returned, "weights": None}
    return {"returned": returned, "weights": weights}


def _same(a, b, tol: float = 1e-4) -> bool:
    return type(a) is list and len(a) == len(b) and all(
        type(u) in (int, float) and math.isclose(u, v, rel_tol=tol, abs_tol=tol) for u, v in zip(a, b))


def _judge_step(evidence: dict) -> Verdict:
    returned, weights = evidence.get("returned"), evidence.get("weights")
    if type(returned) is not list or len(returned) != STEPS or not all(type(r) is dict for r in returned):
        return Verdict(False, "train_step should return the loss of every step")
    ref = _reference_steps()
    if weights is None:
        return Verdict(False, "the head's weights became NaN or infinite: use the optimizer you are given, "
                              "with the loss F.cross_entropy(head(x), y)")
    if _same(weights, ref["no_step"], 1e-7):
        return Verdict(False, "the head's weights did not change: after loss.backward() call optimizer.step() "
                              "(and call optimizer.zero_grad() before backward, not between backward and step)")
    if _same(weights, ref["no_zero_grad"]):
        return Verdict(False, "gradients pile up from step to step: call optimizer.zero_grad() before "
                              "loss.backward() in every step")
    if not _same(weights, ref["right"]):
        return Verdict(False, "the weights after 3 steps are not those of one plain step each: zero_grad, "
                              "loss = F.cross_entropy(head(x), y), backward, optimizer.step() — with the "
                              "optimizer you are given, once per call")
    kinds = [r.get("type") for r in returned]
    if kinds != ["float"] * STEPS:
        shown = next(k for k in kinds if k != "float")
        return Verdict(False, f"train_step returned a {shown}: return the loss as a Python float (loss.item())")
    if not _same([r.get("value") for r in returned], ref["losses"]):
        return Verdict(False, "the weights are right but the returned loss is not: return the batch's "
                              "cross-entropy computed before the step, as loss.item()")
    return Verdict(True)


# ---------------------------------------------------------------- q4: a head trained on cached features

TEST_PER_CLASS = 15  # held-out test images per class the head is measured on


def _test_split():
    from ...data import few_shot
    return few_shot(_course().test, TEST_PER_CLASS, seed=0)


@functools.lru_cache(maxsize=1)
def _test_features() -> torch.Tensor:
    """Held-out test images through the checks' own frozen body, at 64 px (what the notebook uses)."""
    from ...data import eval_transforms
    from ...features import extract_features
    from ...config import get_config
    model = _pretrained()
    test = _test_split().with_transform(eval_transforms(get_config(model), SIZE))
    return extract_features(model, test, device="cpu").tensors[0]


def _collect_head(head) -> dict:
    return head_evidence(head, _test_features(), "nn.Linear(1280, 8)")


def _judge_head(evidence: dict) -> Verdict:
    accuracy, problem = head_test_accuracy(evidence, _test_split().labels.tolist(), N_CLASSES, N_FEATURES,
                                           f"the {N_FEATURES} features of an image")
    if accuracy is None:
        return Verdict(False, problem)
    if accuracy > PASS_ACCURACY:
        return Verdict(True)
    if accuracy < 0.25:
        return Verdict(False, f"test accuracy {accuracy:.0%}, no better than chance (12.5%): the head has not learned — "
                              "train this very head on train_f (the features, not the images), e.g. 100 steps")
    return Verdict(False, f"test accuracy {accuracy:.0%}, it should beat {PASS_ACCURACY:.0%}: train longer or with "
                          "a larger learning rate (Adam, lr=1e-2), on features made with eval_tf at 64 px")


EXERCISE = Exercise("02_feature_extraction", [
    Item("q1", ("model",), _collect_model, _judge_model,
         question="Give model a new 8-class head and freeze everything but the head."),
    Item("q2", ("n_trainable",), _collect_count, _judge_count,
         question="Set n_trainable to the number of parameters of model that will learn."),
    Item("q3", ("train_step",), _collect_step, _judge_step,
         question="Write train_step(head, optimizer, x, y): one training step, returning the loss."),
    Item("q4", ("head",), _collect_head, _judge_head,
         question="Train head on cached features so it beats 60% on the held-out test split."),
    quiz_item("q5", "answer_q5", "exercises/02", "q5"),
])
