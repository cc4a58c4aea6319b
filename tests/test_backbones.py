"""Backbone comparison: parameter counts, latency and published accuracies, all offline."""
from __future__ import annotations

import math

import pytest
import torchvision.models as tvm
from torch import nn

from tlkit.backbones import compare_backbones, measure_latency, published_top1


def test_published_top1_comes_from_torchvision_metadata():
    assert published_top1("resnet18") == pytest.approx(69.758)
    assert published_top1("mobilenet_v3_small") == pytest.approx(67.668)
    assert published_top1("efficientnet_lite0") == pytest.approx(74.8)
    assert published_top1("no_such_model") is None


def test_compare_backbones_counts_the_published_parameters():
    rows = compare_backbones(["mobilenet_v3_small"], image_size=64, repeats=2)
    assert [r["name"] for r in rows] == ["mobilenet_v3_small"]
    for row in rows:
        published = tvm.get_model_weights(row["name"]).DEFAULT.meta["num_params"]
        assert row["params_m"] == pytest.approx(published / 1e6)
        assert math.isfinite(row["latency_ms"]) and row["latency_ms"] > 0


def test_a_big_network_is_slower_than_a_tiny_one():
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    big = tvm.resnet18(weights=None)
    tiny.train()
    assert measure_latency(big, 64, repeats=3) > 3 * measure_latency(tiny, 64, repeats=3)
    assert tiny.training, "measure_latency must give the model back in the mode it was in"


def test_bad_latency_arguments_are_explained():
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure_latency(nn.Linear(2, 2), repeats=0)


def test_rank_backbones_puts_pretrained_features_above_random_ones_and_reports_what_it_measured():
    import tlkit as tl
    from tlkit.backbones import rank_backbones

    data = tl.few_shot(tl.course_data().train, 8)
    rows = rank_backbones(["efficientnet_lite0", "efficientnet_lite1"], data, image_size=64, folds=4,
                          random_baseline="efficientnet_lite0", repeats=1, progress=False)
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["probe_acc"] for r in rows] == sorted((r["probe_acc"] for r in rows), reverse=True)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite0 (random weights)"}
    assert rows[-1]["name"] == "efficientnet_lite0 (random weights)"
    assert [r["pretrained"] for r in rows] == [True, True, False]
    assert by_name["efficientnet_lite0"]["probe_acc"] > by_name["efficientnet_lite0 (random weights)"]["probe_acc"] + 0.2
    assert by_name["efficientnet_lite1"]["params_m"] > by_name["efficientnet_lite0"]["params_m"]
    assert all(r["image_size"] == 64 and r["ms_per_image"] > 0 and r["seconds"] > 0 for r in rows)


def test_rank_backbones_explains_what_it_needs():
    import tlkit as tl
    from tlkit.backbones import rank_backbones

    data = tl.few_shot(tl.course_data().train, 1)
    with pytest.raises(ValueError, match="at least 2 images each"):
        rank_backbones(["efficientnet_lite0"], data)
    with pytest.raises(ValueError, match="at least one backbone"):
        rank_backbones([], data)
