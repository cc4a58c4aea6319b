"""Feature extraction: features equal the head's input; the head trained on them matches."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.data import TensorDataset

import tlkit


def test_features_are_what_the_head_sees():
    model = tlkit.load_pretrained("efficientnet_lite0", num_classes=3)
    images = torch.randn(5, 3, 64, 64)
    data = TensorDataset(images, torch.tensor([0, 1, 2, 0, 1]))
    feats = tlkit.extract_features(model, data, batch_size=2)
    assert feats.tensors[0].shape == (5, 1280) and feats.tensors[1].tolist() == [0, 1, 2, 0, 1]
    with torch.inference_mode():
        direct = model(images)
        via_features = model.classifier(feats.tensors[0])
    assert torch.allclose(direct, via_features, atol=1e-5)
    assert isinstance(model.classifier, torch.nn.Linear), "head must be put back"


def test_torchvision_head_sequence_is_removed_whole():
    model = torchvision.models.mobilenet_v3_small(num_classes=4).eval()
    feats = tlkit.extract_features(model, TensorDataset(torch.randn(2, 3, 64, 64), torch.tensor([0, 1])))
    assert feats.tensors[0].shape == (2, 576)  # the input of the whole `classifier` Sequential


def test_grid_features_keep_left_and_right_apart_and_average_to_the_body_output():
    model = tlkit.load_pretrained("efficientnet_lite0", num_classes=3)
    images = torch.randn(4, 3, 64, 64)  # 2 x 2 maps at the neck: the halves are equal in size
    data = TensorDataset(images, torch.tensor([0, 1, 2, 0]))
    whole = tlkit.extract_features(model, data).tensors[0]
    one_region = tlkit.extract_features(model, data, grid=1).tensors[0]
    halves = tlkit.extract_features(model, data, grid=(1, 2)).tensors[0]
    assert torch.allclose(one_region, whole, atol=1e-5)  # the neck's maps, pooled as the head sees them
    assert halves.shape == (4, 1280 * 2)
    left, right = halves.view(4, 1280, 2).unbind(-1)
    assert torch.allclose((left + right) / 2, whole, atol=1e-5)
    assert not torch.allclose(left, right, atol=1e-3)  # random pictures differ between their halves


def test_an_earlier_part_stops_the_forward_pass_and_leaves_no_hook():
    model = tlkit.load_pretrained("efficientnet_lite0", num_classes=3)
    ran_neck = []
    model.conv_head.register_forward_hook(lambda *args: ran_neck.append(True))
    data = TensorDataset(torch.randn(3, 3, 64, 64), torch.tensor([0, 1, 2]))
    feats, labels = tlkit.extract_features(model, data, depth="blocks.4", grid=(2, 2)).tensors
    channels = model.blocks[4][-1].bn3.num_features
    assert feats.shape == (3, channels * 4) and labels.tolist() == [0, 1, 2]
    assert not ran_neck, "the layers after the chosen part ran for nothing"
    assert not model.blocks[4]._forward_hooks
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)  # the model still runs whole
    assert ran_neck
    by_position = tlkit.extract_features(model, data, depth=5, grid=(2, 2)).tensors[0]  # 0 = stem
    assert torch.equal(by_position, feats)


def test_bad_depth_or_grid_says_what_to_use():
    model = tlkit.load_pretrained("efficientnet_lite0", num_classes=3)
    data = TensorDataset(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="blocks.4"):
        tlkit.extract_features(model, data, depth="block4")
    for grid in [(0, 2), (1, 2, 3), "halves", (1.5, 2), True]:
        with pytest.raises(ValueError, match=r"\(rows, columns\)"):
            tlkit.extract_features(model, data, grid=grid)
