"""What several exercise judges share: reading the evidence of "a head trained on cached features".

The model and the evidence collection live with the probes (``tlkit/course/probes/_shared.py``).
"""
from __future__ import annotations


def head_test_accuracy(evidence: dict, labels: list[int], n_classes: int, n_features: int,
                       inputs: str) -> tuple[float | None, str]:
    """The test accuracy the evidence of ``head_evidence`` shows, or (None, what to fix).

    ``inputs``: what one row of features is, in words ("the 1280 features of an image").
    """
    if "error" in evidence:
        return None, (f"head should take {inputs} and return {n_classes} scores; pass the head you trained "
                      "(a Linear layer), not the whole model")
    if evidence.get("shape") != [len(labels), n_classes]:
        return None, (f"for N rows of {n_features} features head should return N x {n_classes} scores, it "
                      f"returned shape {evidence.get('shape')}")
    predictions = evidence.get("predictions")
    if type(predictions) is not list or len(predictions) != len(labels) or \
            not all(type(p) is int for p in predictions):
        return None, "head should return one score per class for every example"
    return sum(p == t for p, t in zip(predictions, labels)) / len(labels), ""
