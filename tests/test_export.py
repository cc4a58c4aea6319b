"""Export: the saved file is loaded back and must predict what the original predicts."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

import tlkit as tl
from tlkit.export import (ExportError, compare_predictions, export_onnx, export_torchscript,
                          load_torchscript)


def _small_net(classes=3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Dropout(0.5), nn.Linear(8, classes))
    model.tlkit_config = tl.ModelConfig(name="small", input_size=(32, 32), num_classes=classes,
                                        classes=["a", "b", "c"])
    return model


class BranchesOnInput(nn.Module):
    """Python control flow that depends on the input: tracing records only the branch it saw."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(12, 3), nn.Linear(12, 3)

    def forward(self, x):
        flat = x.flatten(1)
        return self.a(flat) if bool(flat.mean() > 0) else self.b(flat)


def test_export_round_trip_predicts_the_same_and_keeps_the_config(tmp_path):
    model = _small_net().train()  # left in train mode on purpose: export must use eval mode
    images = torch.randn(10, 3, 32, 32)
    path = export_torchscript(model, tmp_path / "model.pt", images[:2], check=images)
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))
    loaded = load_torchscript(path)
    result = compare_predictions(model, loaded, images)
    assert result["same_class"] == 10 and result["max_prob_diff"] < 1e-5
    assert loaded.tlkit_config["classes"] == ["a", "b", "c"]
    assert model.training, "export must give the model back in the mode it was in"


def test_the_offline_backbone_exports_faithfully(tmp_path, lite0_imagenet):
    images = torch.randn(3, 3, 64, 64)
    path = export_torchscript(lite0_imagenet, tmp_path / "lite0.pt", images[:1], check=images)
    assert path.stat().st_size > 4_000_000 * 4  # the 4.7M float32 weights are inside the file


def test_an_existing_file_is_not_overwritten_without_force(tmp_path):
    model = _small_net()
    target = tmp_path / "model.pt"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="force=True"):
        export_torchscript(model, target, torch.randn(2, 3, 32, 32))
    assert target.read_bytes() == b"keep me"
    export_torchscript(model, target, torch.randn(2, 3, 32, 32), force=True)
    assert target.read_bytes() != b"keep me"


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_an_export_that_changes_predictions_is_refused(tmp_path):
    torch.manual_seed(0)
    model = BranchesOnInput()
    positive, negative = torch.rand(4, 3, 2, 2) + 0.1, -torch.rand(4, 3, 2, 2) - 0.1
    # Traced on positive inputs, checked on negative ones: the traced file took the wrong branch.
    with pytest.raises(ExportError, match="does not predict what the original does"):
        export_torchscript(model, tmp_path / "m.pt", positive, check=negative)
    assert not (tmp_path / "m.pt").exists() and not list(tmp_path.glob("*.tmp"))


def test_bad_inputs_are_explained(tmp_path):
    with pytest.raises(ValueError, match="batch of images"):
        export_torchscript(_small_net(), tmp_path / "m.pt", torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="batch tensor"):
        compare_predictions(_small_net(), _small_net(), torch.randn(3, 32, 32))
    with pytest.raises(FileNotFoundError, match="No exported model"):
        load_torchscript(tmp_path / "missing.pt")


@pytest.mark.skipif(importlib.util.find_spec("onnx") is not None, reason="onnx is installed")
def test_onnx_without_the_package_says_what_to_install(tmp_path):
    with pytest.raises(ImportError, match="pip install onnx"):
        export_onnx(_small_net(), tmp_path / "m.onnx", torch.randn(2, 3, 32, 32))
    assert not (tmp_path / "m.onnx").exists()


def test_onnx_export_agrees_with_the_original(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    model = _small_net()
    path = export_onnx(model, tmp_path / "m.onnx", torch.randn(4, 3, 32, 32))
    assert path.is_file()
