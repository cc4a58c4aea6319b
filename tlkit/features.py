"""Feature extraction: run the frozen body once, then train only the head on stored features.

When the body is frozen, it maps each image to the same feature vector in every epoch. Computing
those vectors once and training the head on them gives the same result (without augmentation)
at a fraction of the cost: the head is a single Linear layer, the body millions of parameters.

    train_f = tl.extract_features(model, data.train)   # a TensorDataset: (features, labels)
    tl.fit(tl.get_head(model), train_f, val_f, epochs=20, lr=1e-2)   # the head learns in seconds

With augmentation every epoch sees different pixels, so stored features would be stale: either
train without augmentation on features, or train through the body (``tl.fit(model, ...)``).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .models import head_name


@contextlib.contextmanager
def head_removed(model: nn.Module):
    """Temporarily replace the head by ``nn.Identity`` so that the model outputs features."""
    name = head_name(model)
    head = getattr(model, name)
    setattr(model, name, nn.Identity())
    try:
        yield model
    finally:
        setattr(model, name, head)


def extract_features(model: nn.Module, data: Dataset | DataLoader, batch_size: int = 64,
                     device: torch.device | str | None = None) -> TensorDataset:
    """The body's output (the head's input) for every item of ``data``, as a TensorDataset.

    The model runs with its head removed through ``tlkit.evaluation.model_outputs`` (eval mode,
    no gradients, no BatchNorm updates, layer modes restored); the features come back on the CPU as
    float32, with the labels, in the data's order. ``device``: see ``tlkit.device``.
    """
    from .evaluation import model_outputs

    with head_removed(model):
        feats, labels = model_outputs(model, data, batch_size, device)
    if labels is None:
        raise ValueError("extract_features needs labelled data: (image, label) pairs.")
    return TensorDataset(feats, labels)
