"""Regularisation for fine-tuning: stay close to what the pretrained network knew.

A network fine-tuned on a few hundred images can memorise them. The usual remedies push the
weights somewhere "simple": weight decay pulls every weight towards *zero*. For a pretrained
network zero is a strange target: the pretrained weights are the simple, general solution, and
zero is where nothing is known. L2-SP (Li, Grandvalet & Davoine, 2018) pulls the weights towards
their *starting point* instead:

    penalty = alpha/2 * sum over body weights of (w - w_pretrained)^2  +  beta/2 * sum over head weights of w^2

This module holds that penalty (``L2SP``, passed to ``tlkit.fit(..., penalty=...)``), dropout
in front of the head (``add_head_dropout``), and a way to measure how far fine-tuning moved the
weights (``snapshot_weights`` + ``weight_drift`` / ``drift_by_part``).
"""
from __future__ import annotations

import torch
from torch import nn

from .freezing import parts
from .models import head_name


# ------------------------------------------------------------------------------ weight drift
def snapshot_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of every parameter, by name: the starting point to measure drift from."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()}


def _squared_distances(model: nn.Module, start: dict[str, torch.Tensor], names: set[str] | None = None):
    """(sum of (w - w0)^2, sum of w0^2) over the parameters in ``start`` (and in ``names``)."""
    moved, size = 0.0, 0.0
    for name, p in model.named_parameters():
        w0 = start.get(name)
        if w0 is None or w0.shape != p.shape or (names is not None and name not in names):
            continue  # a replaced head has a new shape: it has no pretrained value to compare with
        w = p.detach().to("cpu", torch.float32)
        moved += float((w - w0.float()).pow(2).sum())
        size += float(w0.float().pow(2).sum())
    return moved, size


def weight_drift(model: nn.Module, start: dict[str, torch.Tensor]) -> float:
    """How far the weights moved from ``start``, relative to their size: ||w - w0|| / ||w0||.

    0 means nothing moved; 0.1 means the change is a tenth of the weights' own length. ``start``
    comes from ``snapshot_weights(model)`` taken before training. Parameters that are not in
    ``start`` (or changed shape) are skipped.
    """
    moved, size = _squared_distances(model, start)
    if size == 0:
        raise ValueError("No parameter of the model matches the snapshot: take it with "
                         "tlkit.snapshot_weights(model) on this model before training.")
    return (moved / size) ** 0.5


def drift_by_part(model: nn.Module, start: dict[str, torch.Tensor]) -> dict[str, float]:
    """``weight_drift`` for each part of the model (stem, blocks..., head; see ``tlkit.parts``).

    Shows *where* fine-tuning changed the network: with discriminative learning rates
    (``lr_mult < 1``) the early parts should move much less than the late ones.
    """
    result = {}
    for part in parts(model):
        names = {f"{path}.{n}" if path else n for path in part.modules
                 for n, _ in model.get_submodule(path).named_parameters()}
        moved, size = _squared_distances(model, start, names)
        if size > 0:
            result[part.name] = (moved / size) ** 0.5
    return result


# ------------------------------------------------------------------------------------- L2-SP
class L2SP:
    """The L2-SP penalty: keep the body close to its pretrained weights, the head small.

    Create it *before* training (it snapshots the current weights as the starting point), then::

        penalty = tl.L2SP(model, alpha=0.01, beta=0.01)
        tl.fit(model, train, val, weight_decay=0.0, penalty=penalty)

    ``alpha`` weighs the body's distance to its start; ``beta`` is plain L2 on the head (a new
    head has no pretrained value). Use ``weight_decay=0`` with it, else AdamW also pulls every
    weight towards zero. Only trainable parameters add to the penalty. Calling the object returns
    the penalty as a scalar tensor (with gradients), which ``fit`` adds to every step's loss.
    """

    def __init__(self, model: nn.Module, alpha: float = 0.01, beta: float = 0.01):
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}.")
        try:
            head = head_name(model) + "."
        except ValueError:
            head = None  # no known head: every parameter is pulled towards its start
        if not any(True for _ in model.parameters()):
            raise ValueError(f"{type(model).__name__} has no parameters: nothing to regularise.")
        self.alpha, self.beta = alpha, beta
        self.body: list[tuple[nn.Parameter, torch.Tensor]] = []  # (parameter, its starting value)
        self.head: list[nn.Parameter] = []
        for name, p in model.named_parameters():
            if head is not None and name.startswith(head):
                self.head.append(p)
            else:
                self.body.append((p, p.detach().clone()))

    def __call__(self) -> torch.Tensor:
        body = [self._distance(i) for i, (p, _) in enumerate(self.body) if p.requires_grad]
        head = [p.pow(2).sum() for p in self.head if p.requires_grad]
        first = self.body[0][0] if self.body else self.head[0]
        penalty = torch.zeros((), device=first.device)
        if body:
            penalty = penalty + self.alpha / 2 * torch.stack(body).sum()
        if head:
            penalty = penalty + self.beta / 2 * torch.stack(head).sum()
        return penalty

    def _distance(self, i: int) -> torch.Tensor:
        p, start = self.body[i]
        if start.device != p.device:  # the model moved (e.g. to the GPU in fit): move the start once
            start = start.to(p.device)
            self.body[i] = (p, start)
        return (p - start).pow(2).sum()

    def __repr__(self) -> str:
        n_body = sum(p.numel() for p, _ in self.body)
        n_head = sum(p.numel() for p in self.head)
        return (f"L2SP(alpha={self.alpha:g} on {n_body:,} body weights pulled to their start, "
                f"beta={self.beta:g} on {n_head:,} head weights pulled to 0)")


# ----------------------------------------------------------------------------- head dropout
def add_head_dropout(model: nn.Module, p: float = 0.5) -> nn.Module:
    """Put ``nn.Dropout(p)`` in front of the classifier head; returns the model.

    Dropout zeroes a random fraction ``p`` of the features in training (and rescales the rest), so
    the head cannot lean on a few features that happen to fit the training images. In eval mode it
    does nothing. The head becomes ``nn.Sequential(nn.Dropout(p), old_head)``; called again, it only
    changes ``p``. The head's weights are now named ``<head>.1.weight``: add the dropout to a fresh
    model the same way before loading weights saved from this one.
    """
    if not 0 <= p < 1:
        raise ValueError(f"p is the fraction of features dropped, in [0, 1), got {p!r}.")
    name = head_name(model)
    head = getattr(model, name)
    if isinstance(head, nn.Sequential) and len(head) > 0 and isinstance(head[0], nn.Dropout):
        head[0].p = p
        return model
    setattr(model, name, nn.Sequential(nn.Dropout(p), head))
    return model
