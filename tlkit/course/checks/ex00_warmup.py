"""Exercise 00: a warm-up that shows how checks, feedback and grading work.

q1 (code):   ``class_count(ds)``: how many classes a data set has (tried on data sets drawn afresh).
q2 (choice): what ``requires_grad = False`` does.
q3 (code):   a function that counts a model's trainable parameters (tried on models drawn afresh).
"""
from __future__ import annotations

from ..exercises import Exercise, Verdict, choice_item, probed_item
from ..probes.ex00_warmup import ASKS


def _ints(values, n: int) -> bool:
    return type(values) is list and len(values) == n and all(type(v) is int for v in values)


def _judge_class_count(evidence: dict, datasets) -> Verdict:
    counts = evidence.get("counts")
    if not _ints(counts, len(datasets)):
        return Verdict(False, "class_count should return an int for every data set")
    if counts == [len(ds.classes) for ds in datasets]:
        return Verdict(True)
    if counts == [len(set(ds.labels.tolist())) for ds in datasets]:
        return Verdict(False, "you counted the labels that occur: count ds.classes instead — a class can have no "
                              "image yet in a small sample")
    if len(set(counts)) == 1:
        return Verdict(False, "class_count gave the same number for data sets with different classes: count "
                              "the data set you are given (len(ds.classes)), not the course data")
    return Verdict(False, "look at ds.classes, the list of class names, and count it")


def _judge_counter(evidence: dict, models) -> Verdict:
    counts = evidence.get("counts")
    if not _ints(counts, len(models)):
        return Verdict(False, "count_trainable should return an int for every model")
    if counts == [sum(p.numel() for p in m.parameters() if p.requires_grad) for m in models]:
        return Verdict(True)
    if counts == [sum(p.numel() for p in m.parameters()) for m in models]:
        return Verdict(False, "you counted every parameter: count only those with p.requires_grad")
    if counts == [sum(1 for p in m.parameters() if p.requires_grad) for m in models]:
        return Verdict(False, "you counted tensors: count the values in them (p.numel())")
    return Verdict(False, "the counts are off for some models: sum p.numel() over trainable parameters")


EXERCISE = Exercise("00_warmup", [
    probed_item("q1", ASKS["q1"], _judge_class_count,
                question="Write class_count(ds): how many classes the data set ds has."),
    choice_item("q2", "answer_q2", "7589963b7893a788", "abcd",
                wrong_hint="requires_grad is about gradients: which parameters the optimiser may change",
                question="What does `p.requires_grad = False` do?"),
    probed_item("q3", ASKS["q3"], _judge_counter,
                question="Write count_trainable(model): the number of trainable parameters."),
])
