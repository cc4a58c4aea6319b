"""Exercise 07's probes: fresh confusion matrices, label sets, models to export and backbone tables per check.

- q1: four confusion matrices of random sizes and counts: a plain one, one with a class that is never
  predicted (its column is empty), one with a class that never occurs (its row is empty, yet it is
  predicted), and a two-class one; precision and recall differ in the plain ones.
- q2: five label sets (``y_true``, ``y_pred``) with random class ids, sizes and orders: a rare class the
  model never predicts, three classes, a small set, two class ids with a gap and a prediction of an
  id that is not in ``y_true``, and a rare class with false alarms (so mean precision is not mean recall).
- q3: a small classifier with BatchNorm and dropout and random weights and statistics (random width,
  image size and classes), the batch to trace it on, and other images to run the exported file on. The
  file is loaded *here*, in the learner's kernel, and its outputs on those images come back as
  tensors: the grader never loads a file a submission wrote. The judge compares them with what the
  probe's model predicts in eval mode, worked out in its own process from the same seed.
- q6: five backbone tables, in the shape ``tl.rank_backbones`` returns, with random names, scores,
  speeds, sizes and orders. In every table the best probe score is neither the fastest nor the
  smallest backbone, and the smallest is not the fastest. The five budgets: below the best backbone's
  time (it is too slow), exactly the time of the best backbone that is fast enough, below every
  time, one that leaves the best out of an unsorted table whose first fitting row is not the answer,
  and above every time.

Nothing here works out an answer: the judges in ``tlkit/course/checks/ex07_*`` do.
"""
from __future__ import annotations

import copy
import math
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..exercises import Ask, tensor_evidence

# ----------------------------------------------------------------- q1: metrics from a confusion matrix


def _matrix(rng: random.Random, n: int) -> list[list[int]]:
    """Right answers on the diagonal, a few mistakes elsewhere; no empty row or column, and class 0's
    row and column sums differ (so its precision and recall differ)."""
    cm = [[rng.randint(3, 40) if t == p else rng.choice([0, 0, rng.randint(1, 8)]) for p in range(n)] for t in range(n)]
    for k in range(n):
        cm[k][(k + 1) % n] += rng.randint(1, 6)
    if sum(cm[0]) == sum(row[0] for row in cm):
        cm[0][1] += rng.randint(1, 3)
    return cm


def draw_matrices(seed: int) -> list[list[list[int]]]:
    """Four matrices ``cm[t][p]``: plain, a class never predicted, a class that never occurs, two classes."""
    rng = random.Random(seed)
    plain = _matrix(rng, rng.randint(3, 5))
    never_predicted = _matrix(rng, rng.randint(3, 5))
    k = rng.randrange(len(never_predicted))
    for t, row in enumerate(never_predicted):  # class k is never predicted: its column moves elsewhere
        j = t if t != k else rng.choice([c for c in range(len(row)) if c != k])
        row[j] += row[k]
        row[k] = 0
    never_occurs = _matrix(rng, rng.randint(2, 4))
    k = rng.randrange(len(never_occurs))
    never_occurs[k] = [0] * len(never_occurs)  # class k is not in the test set, yet it is predicted
    never_occurs[rng.choice([t for t in range(len(never_occurs)) if t != k])][k] += rng.randint(1, 4)
    return [plain, never_predicted, never_occurs, _matrix(rng, 2)]


def _as_numbers(values, n: int):
    """A 1-D sequence of ``n`` numbers as a list of floats (None for NaN), or None if it is not one."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return None
    if array.shape != (n,):
        return None
    return [None if np.isnan(v) else float(v) for v in array.tolist()]


def collect_metrics(matrices, class_metrics) -> dict:
    if not callable(class_metrics):
        return {"problem": "class_metrics should be a function of a confusion matrix"}
    results = []
    for cm in matrices:
        out = class_metrics(np.array(cm))
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            return {"problem": "class_metrics should return three sequences: (precision, recall, f1)"}
        triple = [_as_numbers(part, len(cm)) for part in out]
        if any(part is None for part in triple):
            return {"problem": f"precision, recall and f1 should each hold one number per class ({len(cm)} for "
                               f"a {len(cm)} x {len(cm)} matrix)"}
        results.append(triple)
    return {"results": results}


# ---------------------------------------------------------------------- q2: balanced accuracy

def _shuffled(rng: random.Random, y_true: list[int], y_pred: list[int]) -> tuple[list[int], list[int]]:
    pairs = list(zip(y_true, y_pred))
    rng.shuffle(pairs)
    return [t for t, _ in pairs], [p for _, p in pairs]


def draw_labels(seed: int) -> list[tuple[list[int], list[int]]]:
    """Five ``(y_true, y_pred)`` pairs of integer lists (see the module docstring for what each holds)."""
    rng = random.Random(seed)
    cases = []
    # a rare class the model never predicts: plain accuracy is high, the rare class's recall is 0
    common, rare = rng.sample(range(4), 2)
    n_common, n_rare = rng.randint(20, 90), rng.randint(3, 10)
    cases.append(_shuffled(rng, [common] * n_common + [rare] * n_rare, [common] * (n_common + n_rare)))
    # three classes, some mistakes in each
    y_true, y_pred = [], []
    for c in range(3):
        n = rng.randint(3, 12)
        y_true += [c] * n
        y_pred += [c if rng.random() < 0.7 else rng.choice([d for d in range(3) if d != c]) for _ in range(n)]
        y_pred[-1] = c  # at least one right
    cases.append(_shuffled(rng, y_true, y_pred))
    # a small set of two classes
    y_true = [0, 0, 1, 1, rng.randint(0, 1)]
    y_pred = [0, 1, 1, 1, 0] if rng.random() < 0.5 else [0, 0, 1, 0, 1]
    cases.append(_shuffled(rng, y_true, y_pred))
    # two class ids with a gap; one image predicted as an id that is not in y_true
    low = rng.randint(1, 3)
    high = low + rng.randint(2, 4)
    absent = rng.choice([c for c in range(high) if c != low])
    n_low, n_high = rng.randint(3, 6), rng.randint(2, 5)
    y_pred = [low] * (n_low - 1) + [high] + [high] * (n_high - 1) + [absent]
    cases.append(_shuffled(rng, [low] * n_low + [high] * n_high, y_pred))
    # a rare class found every time, with false alarms among the common one
    common, rare = rng.sample(range(3), 2)
    n_common, n_rare, alarms = rng.randint(20, 40), rng.randint(3, 6), rng.randint(2, 5)
    y_true = [rare] * n_rare + [common] * n_common
    y_pred = [rare] * n_rare + [rare] * alarms + [common] * (n_common - alarms)
    cases.append(_shuffled(rng, y_true, y_pred))
    return cases


def collect_balanced(cases, balanced_accuracy) -> dict:
    if not callable(balanced_accuracy):
        return {"problem": "balanced_accuracy should be a function of (y_true, y_pred)"}
    values = []
    for y_true, y_pred in cases:
        value = balanced_accuracy(np.array(y_true), np.array(y_pred))
        if hasattr(value, "item") and callable(value.item):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return {"problem": f"balanced_accuracy should return a number, it returned {type(value).__name__}"}
        values.append(None if value != value else float(value))  # NaN is recorded as None
    return {"values": values}


# ------------------------------------------------------------------------ q3: a verified export

class ExportProbe(nn.Module):
    """A small image classifier (3 x size x size) with BatchNorm and dropout."""

    def __init__(self, width: int, size: int, classes: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width * (size // 2) ** 2, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = nn.functional.max_pool2d(x, 2).flatten(1)
        return self.fc(self.drop(x))


def draw_export(seed: int) -> dict:
    """``{"model": ExportProbe in training mode, "example": batch to trace on, "images": other images, "classes"}``.

    The BatchNorm statistics are far from what the images give, so a model traced in training mode
    (batch statistics, dropout on) predicts something else than in eval mode.
    """
    rng = random.Random(seed)
    width, size, classes = rng.randint(3, 6), rng.choice([6, 8, 10]), rng.randint(3, 6)
    generator = torch.Generator().manual_seed(seed % 2**63)
    with torch.random.fork_rng(devices=[]):  # building layers draws from torch's stream: not the learner's
        model = ExportProbe(width, size, classes, round(rng.uniform(0.2, 0.5), 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        model.bn.running_mean.copy_(torch.randn(width, generator=generator) * 0.5)
        model.bn.running_var.copy_(torch.rand(width, generator=generator) * 1.5 + 0.5)
    model.train()  # as it is right after training
    example = torch.randn(rng.randint(2, 5), 3, size, size, generator=generator) * 1.5
    images = torch.randn(rng.randint(6, 10), 3, size, size, generator=generator) * 1.5 + 0.3
    return {"model": model, "example": example, "images": images, "classes": classes}


def collect_export(probe, export_model) -> dict:
    """Export the probe's model with the learner's function, load the file in this kernel and run it.

    Only the outputs leave the kernel (as safetensors, inert data): the file itself never reaches the grader.
    """
    if not callable(export_model):
        return {"problem": "export_model should be a function of (model, path, example)"}
    model, images = copy.deepcopy(probe["model"]), probe["images"]
    with tempfile.TemporaryDirectory(prefix="tlkit_ex07_") as folder:
        path = Path(folder) / "model.pt"
        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")
            torch.manual_seed(0)
            export_model(model, str(path), probe["example"].clone())
        if not path.is_file():
            return {"problem": "export_model wrote no file at `path`: save the exported model there "
                               "(torch.jit.save(traced, path))"}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded = torch.jit.load(str(path), map_location="cpu")
        except Exception:
            return {"problem": "the file is not a TorchScript model (torch.jit.load cannot read it): trace the "
                               "model with torch.jit.trace and save that with torch.jit.save"}
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            out = loaded(images.clone())
    shape = (images.shape[0], probe["classes"])
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
        return {"problem": f"the exported model should return logits (N, {shape[1]}) for a batch of N images"}
    return {"outputs": tensor_evidence({"logits": out.float()})}


# ------------------------------------------------------------ q6: a backbone within a latency budget

NAMES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "efficientnet_lite3", "efficientnet_lite4",
         "efficientnet_b0", "efficientnet_b1", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small",
         "mobilenet_v3_large", "regnet_y_400mf", "convnext_tiny", "shufflenet_v2", "mnasnet1_0"]


def _table(rng: random.Random, n: int) -> list[dict]:
    """``n`` rows with distinct scores, times and sizes, in random order; the best score is neither the
    fastest nor the smallest, and the smallest is not the fastest."""
    names = rng.sample(NAMES, n)
    if rng.random() < 0.5:  # sometimes a network with random weights, as the lesson's table has
        names[-1] = f"{names[-1]} (random weights)"
    accs = sorted(rng.sample(range(300, 960), n), reverse=True)   # thousandths, best first
    times = rng.sample(range(20, 500, 3), n)                     # tenths of a millisecond
    sizes = rng.sample(range(100, 2600, 7), n)                    # hundredths of a million parameters
    fastest, smallest = times.index(min(times)), sizes.index(min(sizes))
    if fastest == 0:  # the best must not be the fastest: give it another row's time
        other = rng.randrange(1, n)
        times[0], times[other] = times[other], times[0]
        fastest = other
    if smallest in (0, fastest):  # nor the smallest, and the smallest is not the fastest
        other = rng.choice([k for k in range(1, n) if k != fastest])
        sizes[smallest], sizes[other] = sizes[other], sizes[smallest]
    rows = [{"name": name, "probe_acc": acc / 1000, "ms_per_image": ms / 10, "params_m": size / 100}
            for name, acc, ms, size in zip(names, accs, times, sizes)]
    rng.shuffle(rows)
    return rows


def _between(rng: random.Random, low: float, high: float) -> float:
    """A budget strictly between two times (never equal to either)."""
    return round(rng.uniform(low + 0.05, high - 0.05), 2)


def draw_budgets(seed: int) -> list[tuple[list[dict], float]]:
    """Five ``(rows, budget_ms)`` cases, in this order: the best is too slow; exactly the time of the
    answer; nothing fast enough; an unsorted table that leaves the best out; everything fast enough."""
    rng = random.Random(seed)
    cases = []

    def by(rows, key, reverse=False):
        return sorted(rows, key=lambda row: row[key], reverse=reverse)

    # the best probe score is too slow: a budget below its time, above the fastest's
    rows = _table(rng, rng.randint(4, 6))
    best = by(rows, "probe_acc", reverse=True)[0]
    times = sorted(row["ms_per_image"] for row in rows)
    below = [t for t in times if t < best["ms_per_image"]]
    k = rng.randrange(len(below))
    cases.append((rows, _between(rng, below[k], times[times.index(below[k]) + 1])))
    # a budget exactly the time of a backbone that is the best among those at least as fast
    rows = _table(rng, rng.randint(4, 6))
    fastest_first = by(rows, "ms_per_image")
    prefix = fastest_first[:rng.randint(2, len(rows) - 1)]
    exact = by(prefix, "probe_acc", reverse=True)[0]
    cases.append((rows, exact["ms_per_image"]))
    # nothing is fast enough
    rows = _table(rng, rng.randint(4, 6))
    fastest = min(row["ms_per_image"] for row in rows)
    cases.append((rows, round(fastest * rng.uniform(0.3, 0.9), 1)))
    # an unsorted table; the budget leaves the best out, and the first row that fits is not the answer
    rows = _table(rng, rng.randint(5, 7))
    best = by(rows, "probe_acc", reverse=True)[0]
    if by(rows, "ms_per_image").index(best) < 2:  # make the best the slowest, so that two faster ones fit
        slowest = by(rows, "ms_per_image")[-1]
        best["ms_per_image"], slowest["ms_per_image"] = slowest["ms_per_image"], best["ms_per_image"]
    fastest_first = by(rows, "ms_per_image")
    cut = rng.randint(2, fastest_first.index(best))
    budget = _between(rng, fastest_first[cut - 1]["ms_per_image"], fastest_first[cut]["ms_per_image"])
    fits = fastest_first[:cut]
    top = by(fits, "probe_acc", reverse=True)[0]
    first = next(k for k, row in enumerate(rows) if row in fits)
    if rows[first] is top:  # swap it with a later row that fits too
        later = rng.choice([k for k, row in enumerate(rows) if row in fits and k > first])
        rows[first], rows[later] = rows[later], rows[first]
    cases.append((rows, budget))
    # everything is fast enough
    rows = _table(rng, rng.randint(4, 7))
    slowest = max(row["ms_per_image"] for row in rows)
    cases.append((rows, float(math.ceil(slowest * rng.uniform(1.2, 3.0)))))
    return cases


def collect_choices(cases, choose_backbone) -> dict:
    if not callable(choose_backbone):
        return {"problem": "choose_backbone should be a function of (rows, budget_ms)"}
    choices = []
    for rows, budget in cases:
        choice = choose_backbone(copy.deepcopy(rows), budget)
        if isinstance(choice, dict):
            return {"problem": "return the backbone's name (row['name']), not the whole row"}
        if choice is not None and not isinstance(choice, str):
            return {"problem": f"choose_backbone should return a name (a str) or None, it returned "
                               f"{type(choice).__name__}"}
        choices.append(choice)
    return {"choices": choices}


ASKS = {
    "q1": Ask(("class_metrics",), collect_metrics, draw_matrices),
    "q2": Ask(("balanced_accuracy",), collect_balanced, draw_labels),
    "q3": Ask(("export_model",), collect_export, draw_export),
    "q6": Ask(("choose_backbone",), collect_choices, draw_budgets),
}
