"""Exercise 06: data augmentation (lessons/06_data_augmentation.ipynb).

q1 (code):   ``safe_augment(image)``, a random augmentation that keeps the label of arrow images. It
             runs 30 times on a probe image that gets brighter from left to right; a mirror image or
             a large turn makes the brightness fall (or stop rising) from left to right.
q2 (code):   ``tta_probs(model, images)``: class probabilities averaged over the image as it is and
             upside down, checked on a tiny model with dropout.
q3 (code):   ``mixup(images, labels, lam, num_classes)``: MixUp of a batch with itself reversed.
q4 (exercises/06.yaml): which augmentation breaks the labels of handwritten digits.
q5 (exercises/06.yaml): the smallest area a crop at strength 0.8 keeps.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..exercises import Exercise, Item, Verdict, quiz_item

# ------------------------------------------------------------------ q1: a label-safe augmentation

DRAWS = 30


def direction_probe() -> torch.Tensor:
    """A uint8 image (3 x 144 x 144, like the course images) that gets brighter from left to right.

    Rows vary too (a vertical flip changes the picture), and the channels differ (hue jitter does
    something); but every column is brighter than the one on its left.
    """
    col = torch.arange(144, dtype=torch.float32) / 143
    row = torch.arange(144, dtype=torch.float32)[:, None]
    base = 40 + 170 * col[None, :] + 25 * torch.sin(row / 7.0)
    return torch.stack([base * 0.9, base, base * 0.7 + 30]).clamp(0, 255).to(torch.uint8)


def left_to_right(image: torch.Tensor) -> float:
    """How steadily brightness rises from left to right: the correlation of column means with x."""
    profile = image.detach().float().mean(dim=(0, 1)).numpy().astype(np.float64)
    if profile.size < 2 or profile.std() == 0:
        return 0.0
    return float(np.corrcoef(np.arange(profile.size), profile)[0, 1])


def _collect_augment(safe_augment) -> dict:
    if not callable(safe_augment):
        return {"problem": "safe_augment should be a function (or transform) that takes one image"}
    image = direction_probe()
    corrs, seen = [], set()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for _ in range(DRAWS):
            out = safe_augment(image.clone())
            if not isinstance(out, torch.Tensor) or out.dim() != 3 or out.shape[0] != 3 or min(out.shape[1:]) < 8:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                return {"problem": f"safe_augment should return an image tensor (3, H, W), it returned {shape}"}
            if not torch.isfinite(out.float()).all():
                return {"problem": "safe_augment returned NaN or infinite pixel values"}
            corrs.append(left_to_right(out))
            seen.add(out.detach().float().numpy().tobytes())
    return {"corrs": corrs, "distinct": len(seen)}


def _judge_augment(evidence: dict) -> Verdict:
    corrs, distinct = evidence.get("corrs"), evidence.get("distinct")
    if type(corrs) is not list or len(corrs) != DRAWS or not all(type(c) is float for c in corrs) \
            or type(distinct) is not int:
        return Verdict(False, "safe_augment should return an image tensor (3, H, W) for every call")
    mirrored = sum(c < -0.8 for c in corrs)
    turned = sum(-0.8 <= c <= 0.5 for c in corrs)
    if turned:  # some versions point up or down (a rotation), perhaps others the wrong way round
        return Verdict(False, f"{turned + mirrored} of {DRAWS} versions were turned too far: a rotated arrow points "
                              "somewhere else; leave out rotations (or keep them to a few degrees), and check "
                              "what TrivialAugment/RandAugment do")
    if mirrored:
        return Verdict(False, f"{mirrored} of {DRAWS} versions were mirrored left↔right: a horizontal flip makes "
                              "arrow_left point right; flip top↕bottom instead")
    if distinct < 2:
        return Verdict(False, f"{DRAWS} calls gave the same picture every time: an augmentation must change "
                              "the image at random (e.g. random crops, vertical flips, colour jitter)")
    return Verdict(True)


# ------------------------------------------------------------------------- q2: TTA by hand

class TinyNet(nn.Module):
    """A tiny classifier (3 x 6 x 6 images, 3 classes) with fixed weights and dropout."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(64, 3)
        with torch.no_grad():
            for i, p in enumerate(self.parameters()):
                k = torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape)
                p.copy_(0.4 * torch.sin(1.3 * k + i))

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.conv(x)).flatten(1)))


def tta_images() -> torch.Tensor:
    k = torch.arange(5 * 3 * 6 * 6, dtype=torch.float32).reshape(5, 3, 6, 6)
    return torch.sin(0.21 * k) + torch.cos(0.05 * k * k / 40)


def _tta_reference(views=("identity", "vflip"), average: str = "probs", train_order=None) -> torch.Tensor:
    """Averaged probabilities (or a plausible mistake: other views, averaged logits, train mode)."""
    flips = {"identity": lambda x: x, "vflip": lambda x: x.flip(-2), "hflip": lambda x: x.flip(-1)}
    model, x = TinyNet(), tta_images()
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        if train_order is None:
            model.eval()
        else:
            model.train()
            views = train_order
        logits = [model(flips[v](x)) for v in views]
    if average == "logits":
        return torch.softmax(torch.stack(logits).mean(0), dim=1)
    return torch.stack([torch.softmax(z, dim=1) for z in logits]).mean(0)


def _collect_tta(tta_probs) -> dict:
    if not callable(tta_probs):
        return {"problem": "tta_probs should be a function of (model, images)"}
    model = TinyNet()
    model.train()  # as a model is right after training
    with torch.random.fork_rng():
        torch.manual_seed(0)
        out = tta_probs(model, tta_images())
    if isinstance(out, np.ndarray):
        out = torch.from_numpy(out)
    if not isinstance(out, torch.Tensor):
        return {"problem": f"tta_probs should return a tensor of probabilities, it returned {type(out).__name__}"}
    if tuple(out.shape) != (5, 3):
        return {"problem": f"tta_probs should return one row per image and one column per class, (5, 3) here, "
                           f"not {tuple(out.shape)}"}
    out = out.detach().double()
    if not torch.isfinite(out).all():
        return {"problem": "tta_probs returned NaN or infinite values"}
    return {"probs": out.reshape(-1).tolist()}


def _judge_tta(evidence: dict) -> Verdict:
    probs = evidence.get("probs")
    if type(probs) is not list or len(probs) != 15 or not all(type(p) is float for p in probs):
        return Verdict(False, "tta_probs should return a (N, num_classes) tensor of probabilities")
    got = torch.tensor(probs, dtype=torch.float32).reshape(5, 3)

    def same(reference: torch.Tensor) -> bool:
        return torch.allclose(got, reference, atol=1e-5)

    if same(_tta_reference()):
        return Verdict(True)
    if not torch.allclose(got.sum(1), torch.ones(5), atol=1e-4) or (got < 0).any():
        return Verdict(False, "each row should hold probabilities that sum to 1: apply softmax to each view's "
                              "logits, then average")
    if same(_tta_reference(average="logits")):
        return Verdict(False, "you averaged the logits and then took the softmax; average the probabilities "
                              "(the softmax of each view) instead")
    if same(_tta_reference(views=("identity", "hflip"))):
        return Verdict(False, "that flips left↔right (the last dimension); the views here are the image as it is "
                              "and upside down, flipped along the height (dims=[-2])")
    if same(_tta_reference(views=("identity",))):
        return Verdict(False, "those are the plain probabilities: add the upside-down view (flip along the "
                              "height) and average the two")
    if same(_tta_reference(views=("vflip",))):
        return Verdict(False, "that is only the upside-down view: average it with the image as it is")
    if any(same(_tta_reference(train_order=order)) for order in (("identity", "vflip"), ("vflip", "identity"))):
        return Verdict(False, "the model was still in training mode, so dropout changed its answers: call "
                              "model.eval() before predicting")
    return Verdict(False, "not the average of the two views' probabilities: in eval mode, average "
                          "softmax(model(x)) and softmax(model(x flipped upside down))")


# ---------------------------------------------------------------------------- q3: MixUp

_MIX_CASES = [(0.7, 5), (0.25, 4)]  # (lam, num_classes)


def mix_batch(num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).reshape(4, 3, 2, 2)
    labels = torch.tensor([0, 2, 1, num_classes - 1])
    return torch.cos(0.3 * k), labels


def _mix_reference(lam: float, num_classes: int, mix_labels: bool = True, swap: bool = False):
    images, labels = mix_batch(num_classes)
    a = 1 - lam if swap else lam
    onehot = nn.functional.one_hot(labels, num_classes).float()
    mixed = a * images + (1 - a) * images.flip(0)
    soft = a * onehot + (1 - a) * onehot.flip(0) if mix_labels else onehot
    return mixed, soft


def _collect_mix(mixup) -> dict:
    if not callable(mixup):
        return {"problem": "mixup should be a function of (images, labels, lam, num_classes)"}
    cases = []
    for lam, num_classes in _MIX_CASES:
        images, labels = mix_batch(num_classes)
        out = mixup(images.clone(), labels.clone(), lam, num_classes)
        if not isinstance(out, tuple) or len(out) != 2:
            return {"problem": "mixup should return a pair: (mixed_images, soft_labels)"}
        mixed, soft = out
        if not isinstance(mixed, torch.Tensor) or tuple(mixed.shape) != tuple(images.shape):
            return {"problem": "the mixed images should be a tensor of the same shape as the images"}
        if not isinstance(soft, torch.Tensor) or tuple(soft.shape) != (len(labels), num_classes):
            shape = tuple(soft.shape) if isinstance(soft, torch.Tensor) else type(soft).__name__
            return {"problem": f"the soft labels should be a tensor (batch size, num_classes) = "
                               f"{(len(labels), num_classes)}, not {shape}"}
        cases.append({"mixed": mixed.detach().double().reshape(-1).tolist(),
                      "soft": soft.detach().double().reshape(-1).tolist()})
    return {"cases": cases}


def _judge_mix(evidence: dict) -> Verdict:
    cases = evidence.get("cases")
    if type(cases) is not list or len(cases) != len(_MIX_CASES):
        return Verdict(False, "mixup should return (mixed_images, soft_labels) for every batch")
    for case, (lam, num_classes) in zip(cases, _MIX_CASES):
        if type(case) is not dict or not all(type(case.get(k)) is list and all(type(v) is float for v in case[k])
                                             and all(math.isfinite(v) for v in case[k]) for k in ("mixed", "soft")):
            return Verdict(False, "mixup should return (mixed_images, soft_labels) as tensors of numbers")
        mixed = torch.tensor(case["mixed"], dtype=torch.float32)
        soft = torch.tensor(case["soft"], dtype=torch.float32)

        def close(a, b):
            return a.numel() == b.numel() and torch.allclose(a, b.reshape(-1), atol=1e-5)

        right_mixed, right_soft = _mix_reference(lam, num_classes)
        if close(mixed, right_mixed) and close(soft, right_soft):
            continue
        swapped = _mix_reference(lam, num_classes, swap=True)
        if close(mixed, swapped[0]) or close(soft, swapped[1]):
            return Verdict(False, f"with lam={lam} each image should keep a share lam of itself and take 1 - lam "
                                  "from its partner (the batch reversed); you swapped the two")
        if not close(mixed, right_mixed):
            return Verdict(False, f"with lam={lam} the mixed images should be lam * images + (1 - lam) * "
                                  "images.flip(0): each image blended with the batch in reverse order")
        if close(soft, _mix_reference(lam, num_classes, mix_labels=False)[1]):
            return Verdict(False, "the images are mixed but the labels are not: a blend of 70% A and 30% B gets "
                                  "the label 0.7 * one_hot(A) + 0.3 * one_hot(B)")
        return Verdict(False, f"with lam={lam} the soft labels should be lam * one_hot(labels) + (1 - lam) * "
                              "one_hot(labels.flip(0)), with num_classes columns")
    return Verdict(True)


EXERCISE = Exercise("06_data_augmentation", [
    Item("q1", ("safe_augment",), _collect_augment, _judge_augment,
         question="Write safe_augment(image): a random augmentation that keeps arrow labels."),
    Item("q2", ("tta_probs",), _collect_tta, _judge_tta,
         question="Write tta_probs(model, images): probabilities averaged over the image and its vertical flip."),
    Item("q3", ("mixup",), _collect_mix, _judge_mix,
         question="Write mixup(images, labels, lam, num_classes): MixUp of a batch with itself reversed."),
    quiz_item("q4", "answer_q4", "exercises/06", "q4"),
    quiz_item("q5", "answer_q5", "exercises/06", "q5"),
])
