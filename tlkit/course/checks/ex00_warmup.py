"""Exercise 00: a warm-up that shows how checks, feedback and grading work.

q1 (number): how many classes the offline course data set has.
q2 (choice): what ``requires_grad = False`` does.
q3 (code):   a function that counts a model's trainable parameters.
"""
from __future__ import annotations

from torch import nn

from ..exercises import Exercise, Item, Verdict, choice_item, number_item


def _course_class_count() -> int:
    from ...data.course import VARIANTS
    return len(VARIANTS["course"]["classes"])


def _probe_models() -> list[nn.Module]:
    """Small models with some parts frozen: a count that ignores requires_grad gets them wrong."""
    a = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(5))
    b[3] = nn.Linear(16, 5)
    for p in b[0].parameters():
        p.requires_grad = False
    c = nn.Linear(10, 10, bias=False)
    c.weight.requires_grad = False
    return [a, b, c]


def _expected_counts() -> list[int]:
    return [sum(p.numel() for p in m.parameters() if p.requires_grad) for m in _probe_models()]


def _collect_counter(count_trainable) -> dict:
    if not callable(count_trainable):
        return {"problem": "count_trainable should be a function that takes a model"}
    results = []
    for model in _probe_models():
        value = count_trainable(model)
        if hasattr(value, "item") and callable(value.item):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, int):
            return {"problem": f"count_trainable should return an int, it returned {type(value).__name__}"}
        results.append(value)
    return {"counts": results}


def _judge_counter(evidence: dict) -> Verdict:
    counts = evidence.get("counts")
    if type(counts) is not list or not all(type(c) is int for c in counts):
        return Verdict(False, "count_trainable should return an int for every model")
    expected = _expected_counts()
    if counts == expected:
        return Verdict(True)
    totals = [sum(p.numel() for p in m.parameters()) for m in _probe_models()]
    if counts == totals:
        return Verdict(False, "you counted every parameter: count only those with p.requires_grad")
    return Verdict(False, "the counts are off for some models: sum p.numel() over trainable parameters")


EXERCISE = Exercise("00_warmup", [
    number_item("q1", "n_classes", _course_class_count, abs_tol=0,
                wrong_hint="look at data.classes (or tl.course_data().classes) and count them",
                question="How many classes does the course data set have?"),
    choice_item("q2", "answer_q2", "7589963b7893a788", "abcd",
                wrong_hint="requires_grad is about gradients: which parameters the optimiser may change",
                question="What does `p.requires_grad = False` do?"),
    Item("q3", ("count_trainable",), _collect_counter, _judge_counter,
         question="Write count_trainable(model): the number of trainable parameters."),
])
