"""What several exercises' probes share: the pretrained model they run learner code beside, and the
evidence of "a head trained on cached features".

One cached copy of the model per process, so a kernel (or a grader) checking exercises 01 and 02
loads the weights once. It is never handed to learner code: probes pass learner functions deep copies.
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
    """Evidence for "a head trained on cached features": its predictions on held-out features that
    the probe drew (in a random order, computed by the probe's own frozen model, not by the learner's
    code). ``example``: the head a learner should pass, for the message when it is not a model at all.
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
