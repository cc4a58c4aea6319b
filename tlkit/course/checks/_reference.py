"""What several exercise checks compare learner work with: the checks' own pretrained model.

One cached copy per process, so a grader checking exercises 01 and 02 loads the weights once.
It is never handed to learner code: checks pass learner functions deep copies.
"""
from __future__ import annotations

import functools

from torch import nn


@functools.lru_cache(maxsize=1)
def pretrained_reference() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights and head, in eval mode."""
    from ...models import load_pretrained
    return load_pretrained("efficientnet_lite0").eval()


def head_evidence(head, features, example: str) -> dict:
    """Evidence for "a head trained on cached features": its predictions on the checks' own
    held-out features (computed by the checks, never by learner code). ``example``: the head a
    learner should pass, for the message when it is not a model at all.
    """
    import copy

    import torch

    if not isinstance(head, nn.Module):
        return {"problem": f"head should be a model (e.g. {example}), got {type(head).__name__}"}
    probe = copy.deepcopy(head).eval().cpu()
    try:
        with torch.inference_mode():
            scores = probe(features)
    except Exception as err:  # e.g. the whole model was given: it expects images or token ids
        return {"error": type(err).__name__}
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
        return {"shape": list(getattr(scores, "shape", []))}
    return {"shape": list(scores.shape), "predictions": scores.argmax(dim=1).tolist()}


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
