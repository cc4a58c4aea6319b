"""Exercise 01: what a pretrained model knows (lesson 01).

q1 (code): ``top5(model, x)``: the 5 most likely ImageNet class indices for one prepared image.
q2 (code): ``features(model, x)``: the 1280 pooled features the head would receive, head left in place.
q3 (code): ``model8``: the pretrained network with a new head for the course's 8 classes.
q4 (exercises/01.yaml): how many weights ResNet-18's first convolution has (a variant of quiz 01, q2).
q5 (exercises/01.yaml): b vs d with a frozen body: what lesson 01's per-half pooling suggests.

Every check draws fresh pictures (``tlkit/course/probes/ex01_*``: the ``skimage.data`` photos in a
random order, randomly cropped and flipped, prepared at 96 px). ``top5`` and ``features`` run on
fresh copies of the pretrained EfficientNet-Lite0, in eval and in train mode; for ``top5`` the head's
1000 classes come in a random order too. ``model8`` is something the learner made: it looks at a
freshly drawn picture, and its body's features there must be the pretrained body's. The judge draws
the same probe in its own process and computes the right answers with its own copy of the model,
so the evidence holds only what the learner's code returned on that probe.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..exercises import Exercise, Verdict, probed_item, quiz_item
from ..probes._shared import pretrained_reference
from ..probes.ex01_what_a_pretrained_model_knows import ASKS, N_BODY

N_FEATURES = 1280
N_CLASSES = 8


# ---------------------------------------------------------------- shared, trusted helpers

def _pretrained() -> nn.Module:
    """The checks' own pretrained model (eval mode, ImageNet head). Learner code never sees it."""
    return pretrained_reference()


def _reference_features(images: torch.Tensor) -> torch.Tensor:
    """The pooled features under the head, without taking the head off: the grader judges several
    submissions at once (``--jobs``), in threads that share this one model, so judges never change it."""
    model = _pretrained()
    with torch.inference_mode():
        return model.forward_head(model.forward_features(images), pre_logits=True).float()


# ---------------------------------------------------------------- q1: top5

def _reference_probs(probe) -> list[list[float]]:
    """The class probabilities of the probe's shuffled model: output k is ImageNet class order[k]."""
    with torch.inference_mode():
        logits = _pretrained()(probe["images"])[:, torch.tensor(probe["order"])]
        return torch.softmax(logits, dim=1).tolist()


def _is_top5(values, probs: list[float]) -> bool:
    """True when ``values`` are the 5 most probable classes, most probable first (ties allowed)."""
    if type(values) is not list or len(values) != 5 or not all(type(v) is int for v in values):
        return False
    if len(set(values)) != 5 or not all(0 <= v < len(probs) for v in values):
        return False
    ranked = sorted(probs, reverse=True)[:5]
    return all(math.isclose(probs[v], p, rel_tol=1e-4, abs_tol=1e-6) for v, p in zip(values, ranked))


def _judge_top5(evidence: dict, probe) -> Verdict:
    n = len(probe["images"])
    runs = [evidence.get("eval"), evidence.get("train")]
    if not all(type(r) is list and len(r) == n and all(type(d) is dict for d in r) for r in runs):
        return Verdict(False, "top5 should return something for every photo")
    for described in runs[0] + runs[1]:
        kind = described.get("type")
        if kind == "Tensor":
            return Verdict(False, "top5 returned a tensor: return a plain list of ints, e.g. indices.tolist()")
        if kind not in ("list", "tuple"):
            return Verdict(False, f"top5 returned a {kind}: return a list of 5 class indices (ints)")
        if described.get("nested"):
            return Verdict(False, "top5 returned a list inside a list: for one image, return a flat list "
                                  "of 5 ints (take row [0] of the batch)")
        if described.get("length") != 5:
            return Verdict(False, f"top5 returned {described.get('length')} values: return exactly 5 indices")
        if described.get("item_types") != ["int"]:
            return Verdict(False, "top5 should return class indices as Python ints (not probabilities or "
                                  "tensors): use indices.tolist()")
    probs = _reference_probs(probe)
    eval_ok = [_is_top5(d.get("values"), p) for d, p in zip(runs[0], probs)]
    train_ok = [_is_top5(d.get("values"), p) for d, p in zip(runs[1], probs)]
    if all(eval_ok) and all(train_ok):
        return Verdict(True)
    if all(eval_ok):
        return Verdict(False, "right for a model in eval mode, wrong for one in train mode: call model.eval() "
                              "inside top5 (BatchNorm and dropout behave differently in train mode)")
    values = [d.get("values") or [] for d in runs[0]]
    if all(_is_top5(v[::-1], p) for v, p in zip(values, probs)):
        return Verdict(False, "the right 5 classes, but least likely first: put the most likely class first "
                              "(probs.topk(5) sorts from the largest)")
    if all(_is_top5(sorted(v, key=lambda i: -p[i] if 0 <= i < len(p) else 1.0), p) for v, p in zip(values, probs)):
        return Verdict(False, "the right 5 classes in the wrong order: sort them from most to least likely")
    return Verdict(False, "these are not the 5 most likely classes: run the model on x (eval mode, no "
                          "gradients), take the softmax over dim 1 and .topk(5) of row 0")


# ---------------------------------------------------------------- q2: features

def _close_to(rows, ref: torch.Tensor) -> bool:
    if type(rows) is not list or not rows or not all(type(r) is list for r in rows):
        return False
    try:
        got = torch.tensor(rows, dtype=torch.float32)
    except (TypeError, ValueError):
        return False
    return got.shape == ref.shape and torch.allclose(got, ref, rtol=1e-3, atol=1e-3)


def _judge_features(evidence: dict, probe) -> Verdict:
    runs = [evidence.get("eval"), evidence.get("train")]
    if not all(type(r) is dict for r in runs):
        return Verdict(False, "features should return a tensor for every call")
    n = len(probe["images"])
    for described in runs:
        if described.get("type") != "Tensor":
            return Verdict(False, f"features returned a {described.get('type')}: return the tensor the model "
                                  "outputs with its head removed")
        shape = described.get("shape")
        if shape == [n, 1000]:
            return Verdict(False, "these are the 1000 ImageNet class scores: take the head off first "
                                  "(with tl.head_removed(model): ...), so the model outputs the head's input")
        if type(shape) is list and len(shape) == 4 and shape[:2] == [n, N_FEATURES]:
            return Verdict(False, f"these are feature maps {shape}: the head's input is pooled to one value "
                                  "per channel; remove only the head (classifier), keep the pooling")
        if shape != [n, N_FEATURES]:
            return Verdict(False, f"for a batch of {n} images features should return shape [{n}, {N_FEATURES}], "
                                  f"got {shape}")
    if not all(r.get("outputs_after") == [1, 1000] for r in runs):
        return Verdict(False, "after features(...) the model no longer outputs 1000 class scores: put the head "
                              "back (tl.head_removed does it for you, even if something fails)")
    ref = _reference_features(probe["images"])
    eval_ok, train_ok = (_close_to(r.get("rows"), ref) for r in runs)
    if eval_ok and train_ok:
        return Verdict(True)
    if eval_ok:
        return Verdict(False, "right for a model in eval mode, different in train mode: call model.eval() "
                              "inside features (dropout and BatchNorm change the output in train mode)")
    return Verdict(False, "these are not the pretrained features of x: run the whole body on x with only the "
                          "head replaced by nn.Identity, under torch.inference_mode()")


# ---------------------------------------------------------------- q3: a new 8-class head

def _judge_model8(evidence: dict, probe) -> Verdict:
    shape = evidence.get("outputs")
    if shape == [1, 1000]:
        return Verdict(False, "model8 still has the 1000-class ImageNet head: give it a new head with 8 "
                              "outputs (tl.load_pretrained(..., num_classes=8) or tl.replace_head)")
    if shape != [1, N_CLASSES]:
        return Verdict(False, f"model8 should output one score per course class (shape [1, {N_CLASSES}]), "
                              f"it outputs {shape}")
    body = evidence.get("body")
    if type(body) is not list or len(body) != N_BODY or not all(type(v) in (int, float) for v in body):
        return Verdict(False, "model8's body should still output the 1280 pooled features: replace only the head "
                              "(the `classifier`)")
    reference = _reference_features(probe["images"])[0, :N_BODY]
    if not torch.allclose(torch.tensor(body, dtype=torch.float32), reference, rtol=1e-3, atol=1e-3):
        return Verdict(False, "model8's body is not the pretrained one: load it with pretrained weights "
                              "(the default) and change only the head")
    return Verdict(True)


EXERCISE = Exercise("01_what_a_pretrained_model_knows", [
    probed_item("q1", ASKS["q1"], _judge_top5,
                question="Write top5(model, x): the 5 most likely ImageNet class indices, most likely first."),
    probed_item("q2", ASKS["q2"], _judge_features,
                question="Write features(model, x): the pooled features the head receives, shape N x 1280."),
    probed_item("q3", ASKS["q3"], _judge_model8,
                question="Make model8: the pretrained EfficientNet-Lite0 with a new head for 8 classes."),
    quiz_item("q4", "answer_q4", "exercises/01", "q4"),
    quiz_item("q5", "answer_q5", "exercises/01", "q5"),
])
