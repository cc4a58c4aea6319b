"""Exercise 01's probes: real photos, cropped and flipped afresh, and a pretrained model whose classes are shuffled.

Every check draws its own pictures from the seed: each of the four ``skimage.data`` photos that ship
with scikit-image, in a random order, cropped to a random box and flipped at random, prepared at
96 px. For ``top5`` the 1000 ImageNet classes of the model's head are also put in a random order, so
the right five indices change with every draw. The cases the judges tell apart (a model that arrives
in eval mode and one in train mode) are in every draw; the pictures and the class order change.
"""
from __future__ import annotations

import copy
import functools
import math
import random

import torch
from torch import nn

from ..exercises import Ask
from ._shared import pretrained_reference

PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")  # the skimage.data photos bundled with scikit-image
SIZE = 96
N_IMAGENET = 1000


@functools.lru_cache(maxsize=None)
def _photo(name: str):
    from skimage import data as photos

    return getattr(photos, name)()


def draw_images(rng: random.Random, n: int) -> torch.Tensor:
    """``n`` prepared pictures (n x 3 x 96 x 96): the photos in a random order, each a random crop
    (55-100 % of each side, anywhere in the photo), flipped left-right half the time."""
    from ...inspection import prepare_image

    names = list(PHOTOS)
    rng.shuffle(names)
    out = []
    for k in range(n):
        photo = _photo(names[k % len(names)])
        h, w = photo.shape[:2]
        ch, cw = math.ceil(h * rng.uniform(0.55, 1.0)), math.ceil(w * rng.uniform(0.55, 1.0))
        top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
        crop = photo[top:top + ch, left:left + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(prepare_image(pretrained_reference(), crop.copy(), SIZE))
    return torch.cat(out)


def fresh_model(train: bool) -> nn.Module:
    """A copy of the pretrained model for learner code (never the shared one), in train or eval mode."""
    return copy.deepcopy(pretrained_reference()).train(train)


def shuffled_model(order: list[int], train: bool) -> nn.Module:
    """A copy of the pretrained model whose output k is ImageNet class ``order[k]``."""
    model = fresh_model(train)
    index = torch.tensor(order)
    with torch.no_grad():
        model.classifier.weight.copy_(model.classifier.weight[index])
        model.classifier.bias.copy_(model.classifier.bias[index])
    return model


def describe(value) -> dict:
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

def draw_top5(seed: int) -> dict:
    """Four pictures (one per photo) and a random order of the 1000 classes of the model's head."""
    rng = random.Random(seed)
    order = list(range(N_IMAGENET))
    rng.shuffle(order)
    return {"images": draw_images(rng, len(PHOTOS)), "order": order}


def collect_top5(probe, top5) -> dict:
    if not callable(top5):
        return {"problem": "top5 should be a function: def top5(model, x): ..."}
    runs = {}
    with torch.random.fork_rng(devices=[]):  # dropout in train mode: the learner's random stream stays as it was
        for mode in ("eval", "train"):  # "train": the model arrives in train mode, as after training
            model, runs[mode] = shuffled_model(probe["order"], train=mode == "train"), []
            for x in probe["images"]:
                model.train(mode == "train")  # the same start for every picture, whatever the last call did
                runs[mode].append(describe(top5(model, x[None].clone())))
    return runs


# ---------------------------------------------------------------- q2: features

def draw_features(seed: int) -> dict:
    """A batch of 2-4 pictures."""
    rng = random.Random(seed)
    return {"images": draw_images(rng, rng.randint(2, 4))}


def collect_features(probe, features) -> dict:
    if not callable(features):
        return {"problem": "features should be a function: def features(model, x): ..."}
    out = {}
    with torch.random.fork_rng(devices=[]):
        for mode in ("eval", "train"):
            model = fresh_model(train=mode == "train")
            value = features(model, probe["images"].clone())
            described = describe(value)
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim == 2 \
                    and value.shape[1] <= 4096 and value.shape[0] <= 8:
                values = value.detach().float().cpu()
                if torch.isfinite(values).all():
                    described["rows"] = [[round(v, 5) for v in row] for row in values.tolist()]
            with torch.inference_mode():  # is the head still in place afterwards?
                described["outputs_after"] = list(model.eval()(probe["images"][:1]).shape)
            out[mode] = described
    return out


# ---------------------------------------------------------------- q3: a new 8-class head

N_BODY = 64  # how many of the 1280 body features the evidence holds


def draw_model8(seed: int) -> dict:
    """One picture for the learner's model8 to look at."""
    return {"images": draw_images(random.Random(seed), 1)}


def collect_model8(probe, model8) -> dict:
    from ...features import head_removed

    if not isinstance(model8, nn.Module):
        return {"problem": f"model8 should be a model (an nn.Module), got {type(model8).__name__}"}
    model = copy.deepcopy(model8).eval().cpu()
    x = probe["images"].clone()
    with torch.inference_mode():
        shape = list(model(x).shape)
    try:
        with head_removed(model), torch.inference_mode():
            body = model(x)
    except ValueError:  # no head found under the usual names
        return {"outputs": shape, "body": None}
    if body.ndim != 2 or body.shape[1] < N_BODY or not torch.isfinite(body).all():
        return {"outputs": shape, "body": None}
    return {"outputs": shape, "body": [round(v, 5) for v in body[0, :N_BODY].float().tolist()]}


ASKS = {
    "q1": Ask(("top5",), collect_top5, draw_top5),
    "q2": Ask(("features",), collect_features, draw_features),
    "q3": Ask(("model8",), collect_model8, draw_model8),
}
