"""Exercise 02's probes: random pictures for the learner's model, random heads and batches for
``train_step``, and fresh held-out images, in a random order, for the learner's trained head.

q2's ``trainable_count`` counts on EfficientNet-Lite0s (random weights) with heads of random sizes,
frozen for feature extraction or with a few more parts learning.
"""
from __future__ import annotations

import copy
import functools
import math
import random

import torch
from torch import nn

from ..exercises import Ask
from ._shared import head_evidence, pretrained_reference

SIZE = 64  # the image size the notebook extracts features at


# ---------------------------------------------------------------- q1: a frozen body and a new head

N_BODY = 32       # how many of the 1280 body features per picture the evidence holds
PROBE_IMAGES = 2  # pictures per probe


def draw_model_inputs(seed: int) -> dict:
    """Two random pictures (uniform noise of random contrast, already normalised), 64 x 64."""
    g = torch.Generator().manual_seed(seed)
    scale = 0.5 + 1.5 * torch.rand(PROBE_IMAGES, 1, 1, 1, generator=g)
    return {"images": (torch.rand(PROBE_IMAGES, 3, SIZE, SIZE, generator=g) * 2 - 1) * scale}


def collect_model(probe, model) -> dict:
    from ...features import head_removed

    if not isinstance(model, nn.Module):
        return {"problem": f"model should be a model (an nn.Module), got {type(model).__name__}"}
    params = [[name, p.numel(), bool(p.requires_grad)] for name, p in model.named_parameters()]
    copied = copy.deepcopy(model).eval().cpu()
    x = probe["images"].clone()
    with torch.inference_mode():
        outputs = list(copied(x).shape)
    body = None
    try:
        with head_removed(copied), torch.inference_mode():
            out = copied(x)
        if out.ndim == 2 and out.shape[1] >= N_BODY and torch.isfinite(out).all():
            body = [round(v, 5) for v in out[:, :N_BODY].float().flatten().tolist()]
    except ValueError:  # no head under the usual names
        pass
    return {"params": params, "outputs": outputs, "body": body}


# ---------------------------------------------------------------- q2: how many parameters learn

@functools.lru_cache(maxsize=1)
def _lite0() -> nn.Module:
    """EfficientNet-Lite0 with random weights: a count does not depend on the weights."""
    from ...models import load_pretrained

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return load_pretrained("efficientnet_lite0", pretrained=False)


def draw_count_models(seed: int) -> list[nn.Module]:
    """Three models with new heads of random sizes: frozen for feature extraction (twice) and with the
    last 1-3 parts learning too."""
    from ...freezing import freeze, unfreeze_last
    from ...models import replace_head

    rng = random.Random(seed)
    models = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for plan in ("head", "more", "head"):
            model = replace_head(copy.deepcopy(_lite0()), rng.randint(2, 40))
            models.append(freeze(model) if plan == "head" else unfreeze_last(model, rng.randint(1, 3)))
    return models


def collect_count(models, trainable_count) -> dict:
    if not callable(trainable_count):
        return {"problem": "trainable_count should be a function: def trainable_count(model): ..."}
    counts = []
    for model in copy.deepcopy(models):
        value = trainable_count(model)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return {"type": "Tensor"}
        if type(value) is float and math.isfinite(value):
            return {"type": "float"}
        if type(value) is not int:
            return {"type": type(value).__name__}
        counts.append(value)
    return {"type": "int", "counts": counts}


# ---------------------------------------------------------------- q3: one training step

STEPS = 3  # calls per check: a missing zero_grad only shows from the second step on


def draw_step(seed: int) -> dict:
    """A small head of random size and weights, an SGD learning rate, and 3 batches of fake features."""
    rng = random.Random(seed)
    n_in, n_out, batch = rng.randint(6, 16), rng.randint(3, 6), rng.randint(8, 20)
    g = torch.Generator().manual_seed(seed)
    return {"weight": torch.randn(n_out, n_in, generator=g) * 0.3, "bias": torch.randn(n_out, generator=g) * 0.1,
            "lr": rng.uniform(0.2, 0.8),
            "xs": torch.randn(STEPS, batch, n_in, generator=g), "ys": torch.randint(0, n_out, (STEPS, batch), generator=g)}


def step_head(probe) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The probe's head (fresh) and the SGD optimizer that train_step is handed."""
    n_out, n_in = probe["weight"].shape
    with torch.random.fork_rng(devices=[]):  # nn.Linear initialises itself from the global random stream
        head = nn.Linear(n_in, n_out)
    with torch.no_grad():
        head.weight.copy_(probe["weight"])
        head.bias.copy_(probe["bias"])
    return head, torch.optim.SGD(head.parameters(), lr=probe["lr"])


def head_weights(head: nn.Module) -> list[float]:
    return [round(v, 6) for v in torch.cat([head.weight.flatten(), head.bias.flatten()]).tolist()]


def collect_step(probe, train_step) -> dict:
    if not callable(train_step):
        return {"problem": "train_step should be a function: def train_step(head, optimizer, x, y): ..."}
    head, optimizer = step_head(probe)
    returned = []
    for x, y in zip(probe["xs"], probe["ys"]):
        loss = train_step(head, optimizer, x.clone(), y.clone())
        if type(loss) is float and math.isfinite(loss):
            returned.append({"type": "float", "value": loss})
        else:
            returned.append({"type": type(loss).__name__})
    weights = head_weights(head)
    if not all(math.isfinite(v) for v in weights):
        return {"returned": returned, "weights": None}
    return {"returned": returned, "weights": weights}


# ---------------------------------------------------------------- q4: a head trained on cached features

TEST_PER_CLASS = 60  # fresh held-out images per class: twice the test split, so that a head's score varies little from draw to draw


def fresh_test_split(data_seed: int):
    """Held-out images made afresh: the course data's generator with another seed, its test split only
    (patches from the last 20 % of each source photo, which no training or validation image comes from)."""
    from ...data.course import generate

    return generate("course", data_seed, {"train": 1, "val": 1, "test": TEST_PER_CLASS}).test


def draw_head(seed: int) -> dict:
    """A seed for fresh held-out images, and the random order the head sees them in."""
    from ...data.course import VARIANTS

    rng = random.Random(seed)
    order = list(range(len(VARIANTS["course"]["classes"]) * TEST_PER_CLASS))
    rng.shuffle(order)
    return {"data_seed": rng.randrange(1, 2**62), "order": order}


@functools.lru_cache(maxsize=1)
def _extractor() -> nn.Module:
    """The probes' own copy of the pretrained model: extract_features takes its head off for a moment."""
    return copy.deepcopy(pretrained_reference())


def held_out_features(probe) -> torch.Tensor:
    """The probe's held-out images through the frozen pretrained body at 64 px (what the notebook uses), in its order."""
    from ...config import get_config
    from ...data import eval_transforms
    from ...features import extract_features

    model = _extractor()
    test = fresh_test_split(probe["data_seed"]).with_transform(eval_transforms(get_config(model), SIZE))
    with torch.random.fork_rng(devices=[]):  # a DataLoader draws a seed: the learner's stream stays as it was
        features = extract_features(model, test, device="cpu").tensors[0]
    return features[torch.tensor(probe["order"])]


def collect_head(probe, head) -> dict:
    return head_evidence(head, held_out_features(probe), "nn.Linear(1280, 8)")


ASKS = {
    "q1": Ask(("model",), collect_model, draw_model_inputs),
    "q2": Ask(("trainable_count",), collect_count, draw_count_models),
    "q3": Ask(("train_step",), collect_step, draw_step),
    "q4": Ask(("head",), collect_head, draw_head),
}
