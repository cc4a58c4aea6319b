"""Exercise 02: feature extraction, a frozen body and a new head (lesson 02).

q1 (code):   ``model``: EfficientNet-Lite0 with a new 8-class head, everything but the head frozen.
q2 (code):   ``trainable_count(model)``: how many parameter values of a model learn.
q3 (code):   ``train_step(head, optimizer, x, y)``: one training step of a head on cached features.
q4 (code):   ``head``: a head trained on cached features that beats 60 % on the held-out test split.
q5 (exercises/02.yaml): which change of plan keeps a feature cache valid.

Probes (``tlkit/course/probes/ex02_*``), drawn afresh for every check:

- q1: ``model`` is the learner's own; it looks at two random pictures, and its body's features there
  must be those the judge's pretrained body computes for the same pictures (with its parameters'
  names, sizes and ``requires_grad`` flags as they are);
- q3: ``train_step`` trains a head of random size and weights with an SGD optimizer of random
  learning rate on three random batches; the judge redoes the steps (right, without zero_grad,
  without step) on the same probe;
- q4: the learner's ``head`` labels 480 held-out images made afresh (the course data's generator with
  a random seed, test band only: parts of the source photos no training image comes from), in a
  random order; the judge makes the same images' labels and compares;
- q2: ``trainable_count`` counts on three EfficientNet-Lite0s with new heads of random sizes, two
  frozen for feature extraction and one with its last 1-3 parts learning too; the judge counts them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..exercises import Exercise, Verdict, probed_item, quiz_item
from ..probes._shared import pretrained_reference
from ..probes.ex02_feature_extraction import ASKS, N_BODY, STEPS, fresh_test_split, head_weights, step_head
from ._reference import head_test_accuracy

N_CLASSES = 8
N_FEATURES = 1280
PASS_ACCURACY = 0.60


# ---------------------------------------------------------------- q1: a frozen body and a new head

def _reference_body(images: torch.Tensor) -> torch.Tensor:
    """The pretrained body's first features, without taking the head off: the grader judges several
    submissions at once (``--jobs``), in threads that share this one model, so judges never change it."""
    model = pretrained_reference()
    with torch.inference_mode():
        return model.forward_head(model.forward_features(images), pre_logits=True)[:, :N_BODY].flatten().float()


def _judge_model(evidence: dict, probe) -> Verdict:
    outputs, params = evidence.get("outputs"), evidence.get("params")
    if type(params) is not list or not all(type(p) is list and len(p) == 3 and type(p[0]) is str
                                           and type(p[1]) is int and type(p[2]) is bool for p in params):
        return Verdict(False, "model should be a PyTorch model with parameters")
    n = len(probe["images"])
    if outputs == [n, 1000]:
        return Verdict(False, "model still has the 1000-class ImageNet head: replace it with one for the "
                              "8 course classes (tl.replace_head(model, 8))")
    if outputs != [n, N_CLASSES]:
        return Verdict(False, f"model should output {N_CLASSES} scores per image, it outputs shape {outputs}")
    body, reference = evidence.get("body"), _reference_body(probe["images"])
    if type(body) is not list or not all(type(v) in (int, float) for v in body) or len(body) != len(reference) or \
            not torch.allclose(torch.tensor(body, dtype=torch.float32), reference, rtol=1e-3, atol=1e-3):
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

def _judge_count(evidence: dict, models) -> Verdict:
    kind, counts = evidence.get("type"), evidence.get("counts")
    if kind == "Tensor":
        return Verdict(False, "trainable_count returned a tensor: return a Python int (sum of p.numel() is one already)")
    if kind == "float":
        return Verdict(False, "trainable_count should return an int: a count of parameter values, not a float")
    if kind != "int" or type(counts) is not list or len(counts) != len(models) or \
            not all(type(v) is int for v in counts):
        return Verdict(False, "trainable_count should return an int: the number of parameter values that will learn")

    def per_model(count) -> list[int]:
        return [count(m) for m in models]

    if counts == per_model(lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)):
        return Verdict(True)
    if counts == per_model(lambda m: sum(p.numel() for p in m.parameters())):
        return Verdict(False, "you counted every parameter: count only those with p.requires_grad")
    if counts == per_model(lambda m: sum(p.numel() for p in m.parameters() if not p.requires_grad)):
        return Verdict(False, "that is the number of frozen parameters: count those with p.requires_grad True")
    if counts == per_model(lambda m: sum(p.numel() for n, p in m.named_parameters()
                                         if p.requires_grad and not n.endswith("bias"))):
        return Verdict(False, "that leaves out the biases: they learn too")
    if counts == per_model(lambda m: sum(1 for p in m.parameters() if p.requires_grad)):
        return Verdict(False, "you counted parameter tensors: sum p.numel() (the number of values in each)")
    if counts == per_model(lambda m: m.classifier.weight.numel() + m.classifier.bias.numel()):
        return Verdict(False, "that is the head alone: when more parts learn, count every parameter with "
                              "p.requires_grad, wherever it is")
    return Verdict(False, "the counts are off: sum p.numel() over the parameters with p.requires_grad")


# ---------------------------------------------------------------- q3: one training step

def _reference_steps(probe) -> dict:
    """Weights after the 3 steps: done right, without zero_grad, without step; and the right losses."""
    out = {}
    for variant in ("right", "no_zero_grad", "no_step"):
        head, optimizer = step_head(probe)
        losses = []
        for x, y in zip(probe["xs"], probe["ys"]):
            if variant != "no_zero_grad":
                optimizer.zero_grad()
            loss = F.cross_entropy(head(x), y)
            loss.backward()
            if variant != "no_step":
                optimizer.step()
            losses.append(loss.item())
        out[variant] = head_weights(head)
        if variant == "right":
            out["losses"] = losses
    return out


def _same(a, b, tol: float = 1e-4) -> bool:
    return type(a) is list and len(a) == len(b) and all(
        type(u) in (int, float) and math.isclose(u, v, rel_tol=tol, abs_tol=tol) for u, v in zip(a, b))


def _judge_step(evidence: dict, probe) -> Verdict:
    returned, weights = evidence.get("returned"), evidence.get("weights")
    if type(returned) is not list or len(returned) != STEPS or not all(type(r) is dict for r in returned):
        return Verdict(False, "train_step should return the loss of every step")
    ref = _reference_steps(probe)
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

def _test_labels(probe) -> list[int]:
    """The labels of the probe's fresh held-out images, in the order the head saw them."""
    labels = fresh_test_split(probe["data_seed"]).labels.tolist()
    return [labels[i] for i in probe["order"]]


def _judge_head(evidence: dict, probe) -> Verdict:
    accuracy, problem = head_test_accuracy(evidence, _test_labels(probe), N_CLASSES, N_FEATURES,
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
    probed_item("q1", ASKS["q1"], _judge_model,
                question="Give model a new 8-class head and freeze everything but the head."),
    probed_item("q2", ASKS["q2"], _judge_count,
                question="Write trainable_count(model): how many parameter values of the model will learn."),
    probed_item("q3", ASKS["q3"], _judge_step,
                question="Write train_step(head, optimizer, x, y): one training step, returning the loss."),
    probed_item("q4", ASKS["q4"], _judge_head,
                question="Train head on cached features so it beats 60% on the held-out test split."),
    quiz_item("q5", "answer_q5", "exercises/02", "q5"),
])
