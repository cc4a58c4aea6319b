"""Feature extraction: features equal the head's input; the head trained on them matches."""
from __future__ import annotations

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
