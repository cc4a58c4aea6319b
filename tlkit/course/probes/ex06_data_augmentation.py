"""Exercise 06's probes: fresh direction images, a fresh tiny classifier and fresh MixUp batches per check.

- q1: 15 images (3 x 144 x 144, uint8, like the course's) that each get steadily brighter towards
  one side, left or right at random (both sides in every draw), with random ramps, row patterns and
  colours; ``safe_augment`` runs twice on each (30 calls; its own random stream starts from the same
  seed every time, see ``AUGMENT_SEED``). The evidence is what the judge needs to see the direction:
  each output's column profile (its brightness per column), and a fingerprint of each output to tell
  whether the two calls on one image differed. Evidence replayed from another draw points the wrong
  way wherever the two draws' images do.
- q2: a tiny classifier with random weights and dropout (random classes, image size, batch), which
  arrives in training mode; the evidence is the probabilities ``tta_probs`` returns.
- q3: two batches with random images, sizes, ``lam`` (never near 0.5, where swapping the two shares
  changes nothing) and ``num_classes``; the labels differ at the two ends (so a mixed label is not
  the label itself), one batch uses the last class and the other does not (so one-hot rows must be
  ``num_classes`` wide). The evidence is the mixed images and soft labels ``mixup`` returns.

Nothing here knows the right answers: the judges in ``tlkit/course/checks/ex06_*`` work them out.
"""
from __future__ import annotations

import copy
import hashlib
import random

import numpy as np
import torch
from torch import nn

from ..exercises import Ask

# ------------------------------------------------------------------ q1: a label-safe augmentation

IMAGES, CALLS_EACH = 15, 2
DRAWS = IMAGES * CALLS_EACH
SIDE = 144
MAX_WIDTH = 4096  # an output wider than this is not an image the course would train on
# The augmentation's own random stream starts from the same seed in every check (the images are what is
# drawn): the crops, flips and angles a torchvision transform picks are then the same each time, so a
# verdict does not change from one check to the next because of the augmentation's own dice.
AUGMENT_SEED = 0


def direction_image(rng: random.Random, rising: bool) -> torch.Tensor:
    """A uint8 image that gets brighter from left to right (``rising``) or from right to left.

    Rows vary too (a vertical flip changes the picture) and the channels differ (hue jitter does
    something); but every column is brighter than its neighbour on the darker side.
    """
    x = torch.arange(SIDE, dtype=torch.float64) / (SIDE - 1)
    ramp = x ** rng.uniform(0.8, 1.25)  # steadily rising, in a slightly random curve
    if not rising:
        ramp = ramp.flip(0)
    row = torch.arange(SIDE, dtype=torch.float64)[:, None]
    low, span = rng.uniform(10, 30), rng.uniform(200, 235)
    base = low + span * ramp[None, :] + rng.uniform(10, 30) * torch.sin(row / rng.uniform(4, 10) + rng.uniform(0, 6.3))
    gains = [rng.uniform(0.8, 1.0) for _ in range(3)]
    offsets = [rng.uniform(0, 20) for _ in range(3)]
    return torch.stack([base * g + o for g, o in zip(gains, offsets)]).clamp(0, 255).round().to(torch.uint8)


def draw_direction(seed: int) -> dict:
    """``{"images": [...], "rising": [...], "torch_seed": int}``: between 4 and 11 of the 15 images fall."""
    rng = random.Random(seed)
    falling = rng.randint(4, IMAGES - 4)
    rising = [True] * (IMAGES - falling) + [False] * falling
    rng.shuffle(rising)
    return {"images": [direction_image(rng, r) for r in rising], "rising": rising, "torch_seed": AUGMENT_SEED}


def column_profile(image: torch.Tensor) -> list[float]:
    """The brightness of each column (mean over channels and rows), left to right."""
    return image.detach().float().mean(dim=(0, 1)).double().tolist()


def fingerprint(image: torch.Tensor) -> str:
    array = image.detach().float().contiguous().numpy()
    return hashlib.sha256(str(array.shape).encode() + array.tobytes()).hexdigest()[:16]


def collect_augment(probe, safe_augment) -> dict:
    if not callable(safe_augment):
        return {"problem": "safe_augment should be a function (or transform) that takes one image"}
    runs = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(probe["torch_seed"])
        for image in probe["images"]:
            for _ in range(CALLS_EACH):
                out = safe_augment(image.clone())
                if not isinstance(out, torch.Tensor) or out.dim() != 3 or out.shape[0] != 3 or \
                        min(out.shape[1:]) < 8:
                    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    return {"problem": f"safe_augment should return an image tensor (3, H, W), it returned {shape}"}
                if out.shape[2] > MAX_WIDTH:
                    return {"problem": f"safe_augment returned an image {out.shape[2]} pixels wide: keep the "
                                       "images the size a model trains on"}
                if not torch.isfinite(out.float()).all():
                    return {"problem": "safe_augment returned NaN or infinite pixel values"}
                runs.append({"columns": column_profile(out), "fingerprint": fingerprint(out)})
    return {"runs": runs}


# ------------------------------------------------------------------------- q2: TTA by hand

class TinyNet(nn.Module):
    """A tiny classifier (3 x H x W images) with dropout: a convolution and a linear layer."""

    def __init__(self, height: int, width: int, classes: int):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * (height - 2) * (width - 2), classes)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.conv(x)).flatten(1)))


def draw_tta(seed: int) -> dict:
    """``{"model": TinyNet (random weights, training mode), "images": (N, 3, H, W), "torch_seed": int}``."""
    rng = random.Random(seed)
    height, width = rng.randint(5, 9), rng.randint(5, 9)
    classes, n = rng.randint(3, 6), rng.randint(4, 8)
    generator = torch.Generator().manual_seed(seed % 2**63)
    with torch.random.fork_rng(devices=[]):  # building layers draws from torch's stream: not the learner's
        model = TinyNet(height, width, classes)
    with torch.no_grad():  # weights large enough that the logits spread over a few units
        model.conv.weight.copy_(torch.randn(model.conv.weight.shape, generator=generator) * 0.3)
        model.conv.bias.copy_(torch.randn(4, generator=generator) * 0.2)
        fan_in = model.fc.in_features
        model.fc.weight.copy_(torch.randn(model.fc.weight.shape, generator=generator) * rng.uniform(2.0, 3.0)
                              / fan_in ** 0.5)
        model.fc.bias.copy_(torch.randn(classes, generator=generator) * 0.3)
    model.train()  # as a model is right after training
    images = torch.randn(n, 3, height, width, generator=generator) * rng.uniform(0.8, 1.5)
    return {"model": model, "images": images, "classes": classes, "torch_seed": rng.randrange(2**31)}


def collect_tta(probe, tta_probs) -> dict:
    if not callable(tta_probs):
        return {"problem": "tta_probs should be a function of (model, images)"}
    model = copy.deepcopy(probe["model"])
    images = probe["images"]
    shape = (images.shape[0], probe["classes"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(probe["torch_seed"])
        out = tta_probs(model, images.clone())
    if isinstance(out, np.ndarray):
        out = torch.from_numpy(out)
    if not isinstance(out, torch.Tensor):
        return {"problem": f"tta_probs should return a tensor of probabilities, it returned {type(out).__name__}"}
    if tuple(out.shape) != shape:
        return {"problem": f"tta_probs should return one row per image and one column per class, {shape} here, "
                           f"not {tuple(out.shape)}"}
    out = out.detach().double()
    if not torch.isfinite(out).all():
        return {"problem": "tta_probs returned NaN or infinite values"}
    return {"probs": out.reshape(-1).tolist()}


# ---------------------------------------------------------------------------- q3: MixUp

def _labels(rng: random.Random, n: int, num_classes: int, use_last: bool) -> list[int]:
    top = num_classes if use_last else num_classes - 1
    labels = [rng.randrange(top) for _ in range(n)]
    if use_last:
        labels[rng.randrange(n)] = num_classes - 1
    while labels[0] == labels[-1]:  # the two ends differ, so the first image's partner has another label
        labels[-1] = rng.randrange(top)
    return labels


def draw_mix(seed: int) -> list[dict]:
    """Two batches ``{"images", "labels", "lam", "num_classes"}``: the first uses the last class, the second not."""
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed % 2**63)
    cases = []
    for use_last in (True, False):
        n, num_classes = rng.randint(3, 6), rng.randint(3, 7)
        lam = round(rng.choice([rng.uniform(0.1, 0.4), rng.uniform(0.6, 0.9)]), 3)
        images = torch.randn(n, 3, rng.randint(2, 4), rng.randint(2, 4), generator=generator)
        cases.append({"images": images, "labels": torch.tensor(_labels(rng, n, num_classes, use_last)),
                      "lam": lam, "num_classes": num_classes})
    return cases


def collect_mix(cases, mixup) -> dict:
    if not callable(mixup):
        return {"problem": "mixup should be a function of (images, labels, lam, num_classes)"}
    out_cases = []
    for case in cases:
        images, labels, num_classes = case["images"], case["labels"], case["num_classes"]
        out = mixup(images.clone(), labels.clone(), case["lam"], num_classes)
        if not isinstance(out, tuple) or len(out) != 2:
            return {"problem": "mixup should return a pair: (mixed_images, soft_labels)"}
        mixed, soft = out
        if not isinstance(mixed, torch.Tensor) or tuple(mixed.shape) != tuple(images.shape):
            return {"problem": "the mixed images should be a tensor of the same shape as the images"}
        if not isinstance(soft, torch.Tensor) or tuple(soft.shape) != (len(labels), num_classes):
            shape = tuple(soft.shape) if isinstance(soft, torch.Tensor) else type(soft).__name__
            return {"problem": f"the soft labels should be a tensor (batch size, num_classes) = "
                               f"{(len(labels), num_classes)}, not {shape}"}
        out_cases.append({"mixed": mixed.detach().double().reshape(-1).tolist(),
                          "soft": soft.detach().double().reshape(-1).tolist()})
    return {"cases": out_cases}


ASKS = {
    "q1": Ask(("safe_augment",), collect_augment, draw_direction),
    "q2": Ask(("tta_probs",), collect_tta, draw_tta),
    "q3": Ask(("mixup",), collect_mix, draw_mix),
}
