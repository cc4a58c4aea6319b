"""Exercise 01: what a pretrained model knows (lesson 01).

q1 (code): ``top5(model, x)``: the 5 most likely ImageNet class indices for one prepared image.
q2 (code): ``features(model, x)``: the 1280 pooled features the head would receive, head left in place.
q3 (code): ``model8``: the pretrained network with a new head for the course's 8 classes.
q4 (exercises/01.yaml): how many weights ResNet-18's first convolution has (a variant of quiz 01, q2).
q5 (exercises/01.yaml): b vs d with a frozen body: what lesson 01's per-half pooling suggests.

The code items run the learner's functions on real photos from ``skimage.data`` (prepared at 96 px)
with a fresh copy of the pretrained EfficientNet-Lite0 each time. The judge computes its own
reference answers with its own copy of the model, so the evidence holds only what the learner's
code returned.
"""
from __future__ import annotations

import copy
import functools
import math

import torch
from torch import nn

from ..exercises import Exercise, Item, Verdict, quiz_item
from ..probes._shared import pretrained_reference

PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")  # skimage.data pictures the checks run on
SIZE = 96
N_FEATURES = 1280
N_CLASSES = 8


# ---------------------------------------------------------------- shared, trusted helpers

def _pretrained() -> nn.Module:
    """The checks' own pretrained model (eval mode, ImageNet head). Learner code never sees it."""
    return pretrained_reference()


def _fresh_model(train: bool) -> nn.Module:
    model = copy.deepcopy(_pretrained())
    return model.train(train)


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> torch.Tensor:
    """One skimage.data photo as a prepared batch of one (1 x 3 x 96 x 96)."""
    from skimage import data as photos

    from ...inspection import prepare_image
    return prepare_image(_pretrained(), getattr(photos, name)(), SIZE)


def _batch() -> torch.Tensor:
    return torch.cat([_photo(name) for name in PHOTOS[:2]])


@functools.lru_cache(maxsize=1)
def _reference_probs() -> list[list[float]]:
    with torch.inference_mode():
        model = _pretrained().eval()
        return [torch.softmax(model(_photo(name)), dim=1)[0].tolist() for name in PHOTOS]


@functools.lru_cache(maxsize=1)
def _reference_features() -> torch.Tensor:
    from ...features import head_removed
    model = _pretrained().eval()
    with head_removed(model), torch.inference_mode():
        return model(_batch()).float()


def _describe(value) -> dict:
    """What a learner's function returned, as plain JSON: its type, shape and (int) values."""
    if isinstance(value, torch.Tensor):
        out = {"type": "Tensor", "shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
        if not value.is_floating_point() and value.numel() <= 50:
            out["values"] = [int(v) for v in value.flatten().tolist()]
        return out
    if isinstance(value, (list, tuple)):
        out = {"type": type(value).__name__, "length": len(value),
               "item_types": sorted({type(v).__name__ for v in value})}
        if all(type(v) is int for v in value) and len(value) <= 50:
            out["values"] = list(value)
        elif len(value) == 1 and isinstance(value[0], (list, tuple, torch.Tensor)):
            out["nested"] = True
        return out
    return {"type": type(value).__name__}


# ---------------------------------------------------------------- q1: top5

def _collect_top5(top5) -> dict:
    if not callable(top5):
        return {"problem": "top5 should be a function: def top5(model, x): ..."}
    runs = {}
    for mode in ("eval", "train"):  # "train": the model arrives in train mode, as after training
        model, runs[mode] = _fresh_model(train=mode == "train"), []
        for name in PHOTOS:
            model.train(mode == "train")  # the same start for every photo, whatever the last call did
            runs[mode].append(_describe(top5(model, _photo(name).clone())))
    return runs


def _is_top5(values, probs: list[float]) -> bool:
    """True when ``values`` are the 5 most probable classes, most probable first (ties allowed)."""
    if type(values) is not list or len(values) != 5 or not all(type(v) is int for v in values):
        return False
    if len(set(values)) != 5 or not all(0 <= v < len(probs) for v in values):
        return False
    ranked = sorted(probs, reverse=True)[:5]
    return all(math.isclose(probs[v], p, rel_tol=1e-4, abs_tol=1e-6) for v, p in zip(values, ranked))


def _judge_top5(evidence: dict) -> Verdict:
    runs = [evidence.get("eval"), evidence.get("train")]
    if not all(type(r) is list and len(r) == len(PHOTOS) and all(type(d) is dict for d in r) for r in runs):
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
    probs = _reference_probs()
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

def _collect_features(features) -> dict:
    if not callable(features):
        return {"problem": "features should be a function: def features(model, x): ..."}
    out = {}
    for mode in ("eval", "train"):
        model = _fresh_model(train=mode == "train")
        value = features(model, _batch().clone())
        described = _describe(value)
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim == 2 \
                and value.shape[1] <= 4096 and value.shape[0] <= 8:
            values = value.detach().float()
            if torch.isfinite(values).all():
                described["rows"] = [[round(v, 5) for v in row] for row in values.tolist()]
        with torch.inference_mode():  # is the head still in place afterwards?
            described["outputs_after"] = list(model.eval()(_photo(PHOTOS[0])).shape)
        out[mode] = described
    return out


def _close_to_reference(rows) -> bool:
    if type(rows) is not list or not rows:
        return False
    got = torch.tensor(rows, dtype=torch.float32)
    ref = _reference_features()
    return got.shape == ref.shape and torch.allclose(got, ref, rtol=1e-3, atol=1e-3)


def _judge_features(evidence: dict) -> Verdict:
    runs = [evidence.get("eval"), evidence.get("train")]
    if not all(type(r) is dict for r in runs):
        return Verdict(False, "features should return a tensor for every call")
    n = len(_reference_features())
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
    eval_ok, train_ok = (_close_to_reference(r.get("rows")) for r in runs)
    if eval_ok and train_ok:
        return Verdict(True)
    if eval_ok:
        return Verdict(False, "right for a model in eval mode, different in train mode: call model.eval() "
                              "inside features (dropout and BatchNorm change the output in train mode)")
    return Verdict(False, "these are not the pretrained features of x: run the whole body on x with only the "
                          "head replaced by nn.Identity, under torch.inference_mode()")


# ---------------------------------------------------------------- q3: a new 8-class head

def _probe_image() -> torch.Tensor:
    return _photo(PHOTOS[2])


@functools.lru_cache(maxsize=1)
def _reference_body_features() -> list[float]:
    from ...features import head_removed
    model = _pretrained().eval()
    with head_removed(model), torch.inference_mode():
        return model(_probe_image())[0, :64].tolist()


def _collect_model8(model8) -> dict:
    from ...features import head_removed

    if not isinstance(model8, nn.Module):
        return {"problem": f"model8 should be a model (an nn.Module), got {type(model8).__name__}"}
    model = copy.deepcopy(model8).eval().cpu()
    with torch.inference_mode():
        shape = list(model(_probe_image()).shape)
    try:
        with head_removed(model), torch.inference_mode():
            body = model(_probe_image())
    except ValueError:  # no head found under the usual names
        return {"outputs": shape, "body": None}
    if body.ndim != 2 or body.shape[1] < 64 or not torch.isfinite(body).all():
        return {"outputs": shape, "body": None}
    return {"outputs": shape, "body": [round(v, 5) for v in body[0, :64].float().tolist()]}


def _judge_model8(evidence: dict) -> Verdict:
    shape = evidence.get("outputs")
    if shape == [1, 1000]:
        return Verdict(False, "model8 still has the 1000-class ImageNet head: give it a new head with 8 "
                              "outputs (tl.load_pretrained(..., num_classes=8) or tl.replace_head)")
    if shape != [1, N_CLASSES]:
        return Verdict(False, f"model8 should output one score per course class (shape [1, {N_CLASSES}]), "
                              f"it outputs {shape}")
    body = evidence.get("body")
    if type(body) is not list or len(body) != 64 or not all(type(v) in (int, float) for v in body):
        return Verdict(False, "model8's body should still output the 1280 pooled features: replace only the head "
                              "(the `classifier`)")
    if not torch.allclose(torch.tensor(body), torch.tensor(_reference_body_features()), rtol=1e-3, atol=1e-3):
        return Verdict(False, "model8's body is not the pretrained one: load it with pretrained weights "
                              "(the default) and change only the head")
    return Verdict(True)


EXERCISE = Exercise("01_what_a_pretrained_model_knows", [
    Item("q1", ("top5",), _collect_top5, _judge_top5,
         question="Write top5(model, x): the 5 most likely ImageNet class indices, most likely first."),
    Item("q2", ("features",), _collect_features, _judge_features,
         question="Write features(model, x): the pooled features the head receives, shape N x 1280."),
    Item("q3", ("model8",), _collect_model8, _judge_model8,
         question="Make model8: the pretrained EfficientNet-Lite0 with a new head for 8 classes."),
    quiz_item("q4", "answer_q4", "exercises/01", "q4"),
    quiz_item("q5", "answer_q5", "exercises/01", "q5"),
])
