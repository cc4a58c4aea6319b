"""The feature cache computes once per (body weights, data, transform) and refuses augmentation."""
from __future__ import annotations

import pytest
import torch

import tlkit as tl
import tlkit.feature_cache as fc
from tlkit.data import ImageDataset


@pytest.fixture()
def setup(monkeypatch):
    fc.clear_feature_cache()
    calls = []
    real = fc.extract_features

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fc, "extract_features", counting)
    torch.manual_seed(0)
    model = tl.load_pretrained("efficientnet_lite0", num_classes=3, pretrained=False)
    images = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    cfg = tl.get_config(model)
    data = ImageDataset(images, torch.tensor([0, 1, 2, 0, 1, 2]), ["a", "b", "c"],
                        transform=tl.eval_transforms(cfg, 32))
    yield model, data, cfg, calls
    fc.clear_feature_cache()


def test_same_inputs_are_computed_once_and_match_extract_features(setup):
    model, data, _, calls = setup
    first = tl.cached_features(model, data)
    second = tl.cached_features(model, data)
    assert len(calls) == 1 and second is first
    fresh = tl.extract_features(model, data)
    assert torch.allclose(first.tensors[0], fresh.tensors[0]) and torch.equal(first.tensors[1], fresh.tensors[1])


def test_changing_the_body_recomputes_but_the_head_does_not(setup):
    model, data, _, calls = setup
    tl.cached_features(model, data)
    with torch.no_grad():
        tl.get_head(model).weight.add_(1.0)  # training the head does not change the features
    tl.cached_features(model, data)
    assert len(calls) == 1
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # a body weight moved: the old features are stale
    tl.cached_features(model, data)
    assert len(calls) == 2


def test_changing_images_or_transform_recomputes(setup):
    model, data, cfg, calls = setup
    tl.cached_features(model, data)
    tl.cached_features(model, data.with_transform(tl.eval_transforms(cfg, 48)))
    tl.cached_features(model, data.subset([0, 1, 2]))
    assert len(calls) == 3


def test_augmentation_is_refused_with_advice(setup):
    model, data, cfg, _ = setup
    with pytest.raises(fc.FeatureCacheError, match="random .*eval_transforms"):
        tl.cached_features(model, data.with_transform(tl.train_transforms(cfg, 32)))
    with pytest.raises(fc.FeatureCacheError, match="cannot fingerprint"):
        tl.cached_features(model, torch.utils.data.Subset(data, [0, 1]))


def test_disk_cache_survives_a_restart(setup, tmp_path):
    model, data, _, calls = setup
    first = tl.cached_features(model, data, disk=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    fc.clear_feature_cache()  # like a kernel restart: memory is empty, the file remains
    again = tl.cached_features(model, data, disk=tmp_path)
    assert len(calls) == 1 and torch.equal(again.tensors[0], first.tensors[0])
    assert fc.clear_feature_cache(disk=tmp_path) == 2 and not list(tmp_path.glob("*.pt"))


def test_a_progress_bar_while_computing_and_none_once_cached(setup, capsys):
    model, data, _, calls = setup
    first = tl.cached_features(model, data, progress="course images")
    shown = capsys.readouterr().err
    assert "course images" in shown  # the bar's description, on stderr (tqdm)
    again = tl.cached_features(model, data, progress="course images")
    assert again is first and len(calls) == 1 and "course images" not in capsys.readouterr().err
