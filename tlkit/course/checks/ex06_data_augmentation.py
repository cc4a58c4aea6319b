"""Exercise 06: data augmentation (lessons/06_data_augmentation.ipynb).

q1 (code):   ``safe_augment(image)``, a random augmentation that keeps the label of arrow images. It
             runs twice on each of 15 probe images that get brighter towards one side, left or right
             (drawn afresh for every check); a mirror image or a large turn makes the brightness fall
             (or stop rising) towards that side.
q2 (code):   ``tta_probs(model, images)``: class probabilities averaged over the image as it is and
             upside down, checked on a tiny model with dropout and random weights.
q3 (code):   ``mixup(images, labels, lam, num_classes)``: MixUp of a batch with itself reversed, on
             random batches with random ``lam`` and ``num_classes``.
q4 (exercises/06.yaml): which augmentation breaks the labels of handwritten digits.
q5 (exercises/06.yaml): the smallest area a crop at strength 0.8 keeps.

Every code item draws its probe afresh for each check (``tlkit/course/probes/ex06_*``); the judges
below draw the same probe in their own process and work out the right answer there. The evidence
holds only what the learner's code did on that probe: column profiles and fingerprints of the
augmented images (q1), the probabilities (q2), the mixed images and soft labels (q3).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..exercises import Exercise, Verdict, probed_item, quiz_item
from ..probes.ex06_data_augmentation import ASKS, CALLS_EACH, DRAWS, MAX_WIDTH

# ------------------------------------------------------------------ q1: a label-safe augmentation


# A version whose brightness rises towards the probe's bright side with a correlation of at most
# STEADY is turned (between -0.8 and STEADY: it points up or down) or mirrored (below -0.8). Rotations
# of up to 45 degrees stay above STEADY on these probes, rotations of 90 degrees fall far below it.
# One turned version in 30 is forgiven: strong erasing on a darkened image (colour jitter and
# RandomErasing at strength 1, both label-safe) can flatten a single version's profile now and then,
# while every augmentation that turns arrows too far (RandomRotation beyond about 60 degrees,
# TrivialAugment, RandAugment) turns several of the 30.
STEADY = 0.65
TURNED_FORGIVEN = 1


def left_to_right(profile: list[float]) -> float:
    """How steadily brightness rises from left to right: the correlation of column means with x."""
    values = np.asarray(profile, dtype=np.float64)
    if values.size < 2 or values.std() == 0:
        return 0.0
    return float(np.corrcoef(np.arange(values.size), values)[0, 1])


def _judge_augment(evidence: dict, probe) -> Verdict:
    runs = evidence.get("runs")
    if type(runs) is not list or len(runs) != DRAWS or not all(
            type(r) is dict and type(r.get("fingerprint")) is str and type(r.get("columns")) is list
            and 8 <= len(r["columns"]) <= MAX_WIDTH and all(type(c) is float and math.isfinite(c) for c in r["columns"])
            for r in runs):
        return Verdict(False, "safe_augment should return an image tensor (3, H, W) for every call")
    # the direction each version keeps: +1 when it still gets brighter the way its image did
    signs = [1.0 if rising else -1.0 for rising in probe["rising"] for _ in range(CALLS_EACH)]
    corrs = [sign * left_to_right(run["columns"]) for sign, run in zip(signs, runs)]
    mirrored = sum(c < -0.8 for c in corrs)
    turned = sum(-0.8 <= c <= STEADY for c in corrs)
    if turned >= TURNED_FORGIVEN + 1:  # versions that point up or down (a rotation), perhaps others the wrong way
        return Verdict(False, f"{turned + mirrored} of {DRAWS} versions were turned too far: a rotated arrow points "
                              "somewhere else; leave out rotations (or keep them to a few degrees), and check "
                              "what TrivialAugment/RandAugment do")
    if mirrored:
        return Verdict(False, f"{mirrored} of {DRAWS} versions were mirrored left↔right: a horizontal flip makes "
                              "arrow_left point right; flip top↕bottom instead")
    prints = [run["fingerprint"] for run in runs]
    changed = any(len(set(prints[k:k + CALLS_EACH])) > 1 for k in range(0, DRAWS, CALLS_EACH))
    if not changed:
        return Verdict(False, "calls on the same image gave the same picture every time: an augmentation must change "
                              "the image at random (e.g. random crops, vertical flips, colour jitter)")
    return Verdict(True)


# ------------------------------------------------------------------------- q2: TTA by hand

def _tta_reference(probe, views=("identity", "vflip"), average: str = "probs", train_order=None) -> torch.Tensor:
    """Averaged probabilities (or a plausible mistake: other views, averaged logits, train mode)."""
    flips = {"identity": lambda x: x, "vflip": lambda x: x.flip(-2), "hflip": lambda x: x.flip(-1)}
    model, x = copy.deepcopy(probe["model"]), probe["images"]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(probe["torch_seed"])
        if train_order is None:
            model.eval()
        else:
            model.train()
            views = train_order
        logits = [model(flips[v](x)) for v in views]
    if average == "logits":
        return torch.softmax(torch.stack(logits).mean(0), dim=1)
    return torch.stack([torch.softmax(z, dim=1) for z in logits]).mean(0)


def _judge_tta(evidence: dict, probe) -> Verdict:
    probs = evidence.get("probs")
    n, classes = probe["images"].shape[0], probe["classes"]
    if type(probs) is not list or len(probs) != n * classes or not all(type(p) is float for p in probs):
        return Verdict(False, "tta_probs should return a (N, num_classes) tensor of probabilities")
    got = torch.tensor(probs, dtype=torch.float64).reshape(n, classes)

    def same(reference: torch.Tensor) -> bool:
        return torch.allclose(got, reference.double(), atol=1e-5)

    if same(_tta_reference(probe)):
        return Verdict(True)
    if not torch.allclose(got.sum(1), torch.ones(n, dtype=torch.float64), atol=1e-4) or (got < 0).any():
        return Verdict(False, "each row should hold probabilities that sum to 1: apply softmax to each view's "
                              "logits, then average")
    if same(_tta_reference(probe, average="logits")):
        return Verdict(False, "you averaged the logits and then took the softmax; average the probabilities "
                              "(the softmax of each view) instead")
    if same(_tta_reference(probe, views=("identity", "hflip"))):
        return Verdict(False, "that flips left↔right (the last dimension); the views here are the image as it is "
                              "and upside down, flipped along the height (dims=[-2])")
    if same(_tta_reference(probe, views=("identity",))):
        return Verdict(False, "those are the plain probabilities: add the upside-down view (flip along the "
                              "height) and average the two")
    if same(_tta_reference(probe, views=("vflip",))):
        return Verdict(False, "that is only the upside-down view: average it with the image as it is")
    if any(same(_tta_reference(probe, train_order=order)) for order in (("identity", "vflip"), ("vflip", "identity"))):
        return Verdict(False, "the model was still in training mode, so dropout changed its answers: call "
                              "model.eval() before predicting")
    return Verdict(False, "not the average of the two views' probabilities: in eval mode, average "
                          "softmax(model(x)) and softmax(model(x flipped upside down))")


# ---------------------------------------------------------------------------- q3: MixUp

def _mix_reference(case: dict, mix_labels: bool = True, swap: bool = False):
    images, labels, lam, num_classes = case["images"], case["labels"], case["lam"], case["num_classes"]
    a = 1 - lam if swap else lam
    onehot = nn.functional.one_hot(labels, num_classes).double()
    images = images.double()
    mixed = a * images + (1 - a) * images.flip(0)
    soft = a * onehot + (1 - a) * onehot.flip(0) if mix_labels else onehot
    return mixed, soft


def _judge_mix(evidence: dict, probe) -> Verdict:
    cases = evidence.get("cases")
    if type(cases) is not list or len(cases) != len(probe):
        return Verdict(False, "mixup should return (mixed_images, soft_labels) for every batch")
    for found, case in zip(cases, probe):
        if type(found) is not dict or not all(type(found.get(k)) is list and all(type(v) is float for v in found[k])
                                              and all(math.isfinite(v) for v in found[k]) for k in ("mixed", "soft")):
            return Verdict(False, "mixup should return (mixed_images, soft_labels) as tensors of numbers")
        mixed = torch.tensor(found["mixed"], dtype=torch.float64)
        soft = torch.tensor(found["soft"], dtype=torch.float64)
        lam = case["lam"]

        def close(a, b):
            return a.numel() == b.numel() and torch.allclose(a, b.reshape(-1), atol=1e-5)

        right_mixed, right_soft = _mix_reference(case)
        if close(mixed, right_mixed) and close(soft, right_soft):
            continue
        swapped = _mix_reference(case, swap=True)
        if close(mixed, swapped[0]) or close(soft, swapped[1]):
            return Verdict(False, f"with lam={lam} each image should keep a share lam of itself and take 1 - lam "
                                  "from its partner (the batch reversed); you swapped the two")
        if not close(mixed, right_mixed):
            return Verdict(False, f"with lam={lam} the mixed images should be lam * images + (1 - lam) * "
                                  "images.flip(0): each image blended with the batch in reverse order")
        if close(soft, _mix_reference(case, mix_labels=False)[1]):
            return Verdict(False, "the images are mixed but the labels are not: a blend of 70% A and 30% B gets "
                                  "the label 0.7 * one_hot(A) + 0.3 * one_hot(B)")
        return Verdict(False, f"with lam={lam} the soft labels should be lam * one_hot(labels) + (1 - lam) * "
                              "one_hot(labels.flip(0)), with num_classes columns")
    return Verdict(True)


EXERCISE = Exercise("06_data_augmentation", [
    probed_item("q1", ASKS["q1"], _judge_augment,
                question="Write safe_augment(image): a random augmentation that keeps arrow labels."),
    probed_item("q2", ASKS["q2"], _judge_tta,
                question="Write tta_probs(model, images): probabilities averaged over the image and its vertical "
                         "flip."),
    probed_item("q3", ASKS["q3"], _judge_mix,
                question="Write mixup(images, labels, lam, num_classes): MixUp of a batch with itself reversed."),
    quiz_item("q4", "answer_q4", "exercises/06", "q4"),
    quiz_item("q5", "answer_q5", "exercises/06", "q5"),
])
