"""Test-time augmentation (TTA): predict on a few views of each image and average the predictions.

A network's prediction wobbles a little when an image is flipped or zoomed. Showing it several
views of the same test image and averaging the class probabilities smooths that wobble out, at
the price of one forward pass per view::

    tta_model = tl.with_tta(model, ["identity", "vflip"])
    report = tl.evaluate(tta_model, data.test)   # works wherever a model works

The views must keep the label, exactly like training augmentation: on the course data a
horizontal flip turns ``arrow_left`` into ``arrow_right``, so ``"hflip"`` is *not* a view for it,
while ``"vflip"`` is (an arrow pointing left still points left upside down).

The views work on batches of already-normalised tensors (N, C, H, W), so TTA needs no change to
the data pipeline.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _zoom(images: torch.Tensor, keep: float = 0.875) -> torch.Tensor:
    """The centre ``keep`` of each image, resized back to the full size (a gentle zoom-in)."""
    h, w = images.shape[-2:]
    dh, dw = round(h * (1 - keep) / 2), round(w * (1 - keep) / 2)
    centre = images[..., dh:h - dh, dw:w - dw]
    return F.interpolate(centre, size=(h, w), mode="bilinear", align_corners=False)


# name -> function from a batch of images to a batch of the same shape
TTA_VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "hflip": lambda x: torch.flip(x, dims=[-1]),      # mirror left <-> right
    "vflip": lambda x: torch.flip(x, dims=[-2]),      # mirror top <-> bottom
    "rot180": lambda x: torch.flip(x, dims=[-2, -1]),  # both flips = a half turn
    "zoom": _zoom,
}


class TTAModel(nn.Module):
    """Wraps a classifier: its output is the log of the class probabilities averaged over views.

    Why log-probabilities: ``softmax(log p) = p``, so everything that turns logits into
    probabilities (``tl.predict``, ``tl.evaluate``, ``argmax``) works on this model unchanged.
    """

    def __init__(self, model: nn.Module, views: Sequence[str]):
        super().__init__()
        self.model = model
        self.views = list(views)
        if hasattr(model, "tlkit_config"):
            self.tlkit_config = model.tlkit_config  # same preprocessing as the wrapped model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(self.model(TTA_VIEWS[v](images)).float(), dim=1)
                             for v in self.views]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-12))

    def extra_repr(self) -> str:
        return f"views={self.views}"


def with_tta(model: nn.Module, views: Sequence[str] = ("identity", "vflip")) -> TTAModel:
    """``model`` with test-time augmentation over ``views`` (names from ``TTA_VIEWS``).

    Choose only views that keep the label for *your* classes. ``"identity"`` (the image as it
    is) is usually one of them. The wrapper shares the model's weights; it copies nothing.
    """
    if isinstance(views, str):
        views = [views]
    views = list(views)
    if not views:
        raise ValueError("with_tta needs at least one view, e.g. views=['identity', 'vflip'].")
    unknown = [v for v in views if v not in TTA_VIEWS]
    if unknown:
        raise ValueError(f"Unknown TTA view(s) {unknown}; choose from {sorted(TTA_VIEWS)}.")
    return TTAModel(model, views)
