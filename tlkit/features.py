"""Feature extraction: run the frozen body once, then train only the head on stored features.

When the body is frozen, it maps each image to the same feature vector in every epoch. Computing
those vectors once and training the head on them gives the same result (without augmentation)
at a fraction of the cost: the head is a single Linear layer, the body millions of parameters.

    train_f = tl.extract_features(model, data.train)   # a TensorDataset: (features, labels)
    tl.fit(tl.get_head(model), train_f, val_f, epochs=20, lr=1e-2)   # the head learns in seconds

With augmentation every epoch sees different pixels, so stored features would be stale: either
train without augmentation on features, or train through the body (``tl.fit(model, ...)``). A fixed
set of views (each image and its vertical mirror, say) is different: each view is a data set of its
own, and its features can be stored like any other.

The body's output is pooled over the whole picture, which throws away *where* each pattern was.
``depth`` and ``grid`` keep some of it: the feature maps of an earlier part, averaged over a grid of
regions (``grid=(1, 2)``: the left half and the right half separately).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
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


class _StopForward(Exception):
    """Raised by a hook once the wanted part has run: the layers after it would be wasted work."""


class _PooledMaps(nn.Module):
    """``model`` up to one of its parts; that part's feature maps averaged over a grid of regions."""

    def __init__(self, model: nn.Module, module: str, grid: tuple[int, int]):
        super().__init__()
        self.model, self.module, self.grid = model, module, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        captured = {}

        def hook(module, inputs, output):
            captured["maps"] = output
            raise _StopForward

        handle = self.model.get_submodule(self.module).register_forward_hook(hook)
        try:
            self.model(x)
        except _StopForward:
            pass
        finally:
            handle.remove()  # a forgotten hook would stop every later forward pass
        maps = captured["maps"]  # N x C x H x W
        if maps.dim() != 4:
            raise ValueError(f"{self.module!r} outputs shape {tuple(maps.shape)}, not feature maps "
                             "(N x C x H x W): choose a convolutional part.")
        # N x C x rows x columns: each region's average, then one vector per image (channel-major).
        return F.adaptive_avg_pool2d(maps, self.grid).flatten(1)


def _grid(grid) -> tuple[int, int]:
    if isinstance(grid, int) and not isinstance(grid, bool):
        grid = (grid, grid)
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2
            or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in grid)):
        raise ValueError(f"grid must be (rows, columns) of whole numbers >= 1, e.g. (1, 2) for the "
                         f"left and the right half; got {grid!r}.")
    return tuple(grid)


def extract_features(model: nn.Module, data: Dataset | DataLoader, batch_size: int = 64,
                     device: torch.device | str | None = None, *, depth: str | int | None = None,
                     grid: int | tuple[int, int] | None = None, progress: str | None = None) -> TensorDataset:
    """The body's output (the head's input) for every item of ``data``, as a TensorDataset.

    The model runs with its head removed through ``tlkit.evaluation.model_outputs`` (eval mode,
    no gradients, no BatchNorm updates, layer modes restored); the features come back on the CPU as
    float32, with the labels, in the data's order. ``device``: see ``tlkit.device``.

    ``depth`` (a part name from ``tl.parts(model)`` such as ``"blocks.4"``, or its position) takes
    the feature maps of that part instead, and ``grid=(rows, columns)`` averages each map over that
    many regions instead of the whole picture: ``C x rows x columns`` numbers per image. With only
    ``grid``, the maps are those of the last part before the head. The forward pass stops at the
    chosen part. ``progress``: a description to show a progress bar under (None: no bar).
    """
    from .evaluation import model_outputs
    from .freezing import body_parts, choose_parts

    if depth is not None or grid is not None:
        pooled_grid = _grid(1 if grid is None else grid)
        part = choose_parts(model, [depth])[0] if depth is not None else body_parts(model)[-1]
        feats, labels = model_outputs(_PooledMaps(model, part.modules[-1], pooled_grid), data, batch_size, device,
                                      progress=progress)
    else:
        with head_removed(model):
            feats, labels = model_outputs(model, data, batch_size, device, progress=progress)
    if labels is None:
        raise ValueError("extract_features needs labelled data: (image, label) pairs.")
    return TensorDataset(feats, labels)
