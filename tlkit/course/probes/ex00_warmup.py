"""Exercise 00's probes: fresh data sets and fresh partly frozen models for every check."""
from __future__ import annotations

import random

import torch
from torch import nn

from ..exercises import Ask

NAMES = ["brick", "grass", "gravel", "fur", "coins", "text", "arrow_left", "arrow_right", "leaf", "sand",
         "wood", "cloud", "wave", "rust", "moss", "tile"]


# ---------------------------------------------------------------- q1: how many classes

def draw_datasets(seed: int) -> list:
    """Three small data sets with other classes than the course's; in the last one a class has no image."""
    from ...data.dataset import ImageDataset

    rng = random.Random(seed)
    out = []
    for k in range(3):
        n = rng.randint(2, 12)
        classes = rng.sample(NAMES, n)
        labels = list(range(n)) * 2
        if k == 2:
            labels = [label for label in labels if label != n - 1]  # a class nobody photographed yet
        rng.shuffle(labels)
        images = torch.zeros(len(labels), 3, 8, 8, dtype=torch.uint8)
        out.append(ImageDataset(images, torch.tensor(labels), classes))
    return out


def collect_class_count(datasets, class_count) -> dict:
    if not callable(class_count):
        return {"problem": "class_count should be a function that takes a data set: def class_count(ds): ..."}
    counts = []
    for ds in datasets:
        value = class_count(ds)
        if hasattr(value, "item") and callable(value.item):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int):
            return {"problem": f"class_count should return an int, it returned {type(value).__name__}"}
        counts.append(value)
    return {"counts": counts}


# ---------------------------------------------------------------- q3: count the trainable parameters

def draw_models(seed: int) -> list[nn.Module]:
    """Three small models of random sizes: all trainable, a frozen first layer, a frozen weight but a learning bias."""
    rng = random.Random(seed)
    with torch.random.fork_rng(devices=[]):  # the learner's own random stream stays as it was
        torch.manual_seed(seed)
        a, b, c = (rng.randint(2, 40) for _ in range(3))
        first = nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c))
        k = rng.choice([3, 5])
        second = nn.Sequential(nn.Conv2d(3, b, k), nn.BatchNorm2d(b), nn.Flatten(), nn.Linear(b, c))
        for p in second[0].parameters():
            p.requires_grad = False
        third = nn.Linear(a, c, bias=True)
        third.weight.requires_grad = False
    return [first, second, third]


def collect_counter(models, count_trainable) -> dict:
    if not callable(count_trainable):
        return {"problem": "count_trainable should be a function that takes a model"}
    results = []
    for model in models:
        value = count_trainable(model)
        if hasattr(value, "item") and callable(value.item):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int):
            return {"problem": f"count_trainable should return an int, it returned {type(value).__name__}"}
        results.append(value)
    return {"counts": results}


ASKS = {
    "q1": Ask(("class_count",), collect_class_count, draw_datasets),
    "q3": Ask(("count_trainable",), collect_counter, draw_models),
}
