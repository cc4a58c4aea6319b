"""Test-time augmentation: the wrapper averages probabilities over views, and a view must keep the label."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import tlkit as tl
from tlkit.tta import TTA_VIEWS, with_tta


class LeftOrRight(nn.Module):
    """Class 0 if the left half of the image is brighter than the right half, else class 1."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        w = x.shape[-1]
        d = x[..., : w // 2].mean(dim=(1, 2, 3)) - x[..., w // 2:].mean(dim=(1, 2, 3))
        return torch.stack([d, -d], dim=1) * self.scale


def _left_right_images(n=8):
    """n images bright on the left (label 0) and n bright on the right (label 1), with noise."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2 * n, 3, 16, 16, generator=g) * 0.2
    images[:n, :, :, :8] += 0.8
    images[n:, :, :, 8:] += 0.8
    labels = torch.tensor([0] * n + [1] * n)
    return images, labels


def test_identity_view_gives_the_models_own_probabilities():
    images, _ = _left_right_images()
    model = LeftOrRight()
    expected = torch.softmax(model(images), dim=1)
    assert torch.allclose(tl.predict(with_tta(model, ["identity"]), images), expected, atol=1e-6)


def test_tta_averages_the_probabilities_of_the_views():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(5, 3, 12, 12)
    by_hand = (torch.softmax(model(x), 1) + torch.softmax(model(torch.flip(x, dims=[-1])), 1)) / 2
    assert torch.allclose(torch.exp(with_tta(model, ["identity", "hflip"])(x)), by_hand, atol=1e-6)


def test_a_label_breaking_view_ruins_tta_and_a_label_preserving_one_does_not():
    images, labels = _left_right_images()
    data = TensorDataset(images, labels)
    model = LeftOrRight()
    plain = tl.evaluate(model, data).accuracy
    vflip = tl.evaluate(with_tta(model, ["identity", "vflip"]), data).accuracy
    hflip = tl.evaluate(with_tta(model, ["identity", "hflip"]), data).accuracy
    assert plain == 1.0 and vflip == 1.0
    # Averaging an image with its mirror image leaves this model no idea of left and right.
    assert hflip <= 0.5


@pytest.mark.parametrize("view", sorted(TTA_VIEWS))
def test_every_view_keeps_the_batch_shape(view):
    x = torch.randn(2, 3, 20, 24)
    assert TTA_VIEWS[view](x).shape == x.shape


def test_zoom_is_a_centre_crop_resized_back():
    x = torch.zeros(1, 1, 16, 16)
    x[..., 0, :] = 1.0  # a bright top row: cut away by the zoom
    assert TTA_VIEWS["zoom"](x)[..., 0, :].max() < 0.5


def test_bad_views_are_explained():
    with pytest.raises(ValueError, match="Unknown TTA view.*'vflip'"):
        with_tta(LeftOrRight(), ["identity", "upside_down"])
    with pytest.raises(ValueError, match="at least one view"):
        with_tta(LeftOrRight(), [])


def test_wrapper_keeps_the_config_and_shares_the_weights():
    model = LeftOrRight()
    model.tlkit_config = tl.ModelConfig(name="toy")
    wrapped = with_tta(model, "vflip")
    assert wrapped.tlkit_config is model.tlkit_config
    assert wrapped.model is model and wrapped.views == ["vflip"]
