"""Checkpoints: a state dict plus plain JSON; nothing overwritten; mismatches explained."""
from __future__ import annotations

import json

import pytest
import torch

import tlkit


@pytest.fixture
def model():
    m = tlkit.load_pretrained("efficientnet_lite0", num_classes=3, classes=["ant", "bee", "cat"])
    torch.nn.init.normal_(m.classifier.weight)  # something a fresh model would not have
    return m


def test_round_trip_gives_identical_predictions(model, tmp_path):
    x = torch.randn(2, 3, 96, 96)
    tlkit.save_model(model, tmp_path / "ckpt", extra={"accuracy": 0.9})
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["classes"] == ["ant", "bee", "cat"] and config["extra"]["accuracy"] == 0.9
    loaded = tlkit.load_model(tmp_path / "ckpt")
    with torch.inference_mode():
        assert torch.allclose(model.eval()(x), loaded(x), atol=1e-6)
    assert loaded.tlkit_config.classes == ["ant", "bee", "cat"]


def test_existing_checkpoint_is_never_overwritten(model, tmp_path):
    tlkit.save_model(model, tmp_path)
    before = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(FileExistsError, match="force=True"):
        tlkit.save_model(tlkit.load_pretrained("efficientnet_lite0", num_classes=3), tmp_path)
    assert (tmp_path / "model.pt").read_bytes() == before
    tlkit.save_model(model, tmp_path, force=True)


def test_checkpoint_for_other_number_of_classes(model, tmp_path):
    tlkit.save_model(model, tmp_path)
    with pytest.raises(tlkit.CheckpointError, match="trained for 3 classes"):
        tlkit.load_model(tmp_path, num_classes=5)
    five = tlkit.load_pretrained("efficientnet_lite0", num_classes=5)
    with pytest.raises(tlkit.CheckpointError, match="different number of classes"):
        tlkit.load_weights(five, tmp_path)


class PickledObject:
    """Stands for any Python object a pickle could smuggle in."""


def test_pickled_objects_are_refused(tmp_path, model):
    """weights_only=True: a file with arbitrary pickled objects is not executed, it is refused."""
    tlkit.save_model(model, tmp_path)

    torch.save({"evil": PickledObject()}, tmp_path / "model.pt")
    with pytest.raises(tlkit.CheckpointError, match="tensors-only"):
        tlkit.load_model(tmp_path)


def test_missing_checkpoint_folder(tmp_path):
    with pytest.raises(tlkit.CheckpointError, match="config.json not found"):
        tlkit.load_model(tmp_path / "nothing")
