"""Looking inside a pretrained model: predictions, filters, feature maps, feature quality."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from skimage import data as photos
from torch import nn

import tlkit as tl

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _close(fig: Figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


# ------------------------------------------------------------------------------------ predictions
def test_top_k_recognises_the_cat_and_the_espresso(lite0_imagenet):
    cat = tl.top_k(lite0_imagenet, photos.chelsea(), k=5)
    assert len(cat) == 5 and cat[0].index in CAT_CLASSES
    assert cat[0].name == tl.imagenet_classes()[cat[0].index]
    probs = [g.probability for g in cat]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    coffee = tl.top_k(lite0_imagenet, photos.coffee(), k=1)
    assert coffee[0].name in ("espresso", "cup")


def test_top_k_accepts_grey_arrays_and_uint8_tensors(lite0_imagenet):
    grey = tl.top_k(lite0_imagenet, photos.camera(), k=3)  # H x W grey becomes 3 equal channels
    assert len(grey) == 3
    as_tensor = torch.from_numpy(photos.chelsea()).permute(2, 0, 1)
    assert tl.top_k(lite0_imagenet, as_tensor, k=1)[0].index == tl.top_k(lite0_imagenet, photos.chelsea(), k=1)[0].index


def test_prepare_image_uses_the_model_preprocessing(lite0_imagenet):
    x = tl.prepare_image(lite0_imagenet, photos.coffee())
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert x.min() >= -1.0 - 1e-5 and x.max() <= 1.0 + 1e-5  # mean/std 0.5: pixels land in [-1, 1]
    prepared = torch.zeros(3, 64, 64)
    assert torch.equal(tl.prepare_image(lite0_imagenet, prepared)[0], prepared)  # float tensors pass as is
    assert tl.prepare_image(lite0_imagenet, photos.coffee(), image_size=96).shape == (1, 3, 96, 96)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 32, 32), dtype=np.uint8), "channels-first"),
    (np.full((8, 8, 3), 2.0), "values in [0, 1]"),
    (torch.zeros(32, 32, 3, dtype=torch.uint8), "3 x H x W"),
    ([[1, 2], [3, 4]], "NumPy array or a torch tensor"),
])
def test_bad_images_say_what_is_expected(lite0_imagenet, bad, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("]", r"\]")):
        tl.top_k(lite0_imagenet, bad)


def test_top_k_rejects_a_bad_k(lite0_imagenet):
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        tl.top_k(lite0_imagenet, photos.coffee(), k=0)
    with pytest.raises(ValueError, match="between 1 and the number of classes"):
        tl.top_k(lite0_imagenet, photos.coffee(), k=1001)


def test_top_k_and_feature_maps_leave_every_layer_in_its_mode(lite0_imagenet):
    model = lite0_imagenet
    model.train()
    model.bn1.eval()  # like a frozen BatchNorm inside a model that is training
    try:
        tl.top_k(model, photos.coffee(), k=1)
        tl.feature_maps(model, photos.coffee(), depths=["stem"], image_size=64)
        assert model.training and model.blocks[0].training and not model.bn1.training
    finally:
        model.eval()


def test_plot_top_k_draws_each_photo_with_its_bars(lite0_imagenet):
    fig = tl.plot_top_k(lite0_imagenet, {"cat": photos.chelsea(), "coffee": photos.coffee()}, k=3)
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(visible) == 2 and all(len(ax.patches) == 3 for ax in visible)
    _close(fig)
    with pytest.raises(ValueError, match="at least one image"):
        tl.plot_top_k(lite0_imagenet, {})


# ----------------------------------------------------------------------- filters and feature maps
def test_first_layer_filters_are_a_copy_of_the_stem(lite0_imagenet):
    filters = tl.first_layer_filters(lite0_imagenet)
    assert filters.shape == lite0_imagenet.conv_stem.weight.shape == (32, 3, 3, 3)
    filters.zero_()
    assert lite0_imagenet.conv_stem.weight.abs().sum() > 0  # the model is untouched
    fig = tl.plot_filters(tl.first_layer_filters(lite0_imagenet), ncols=8, title="stem")
    assert sum(1 for ax in fig.axes if ax.images) == 32
    _close(fig)


def test_filters_of_a_model_without_convolutions_is_a_clear_error():
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        tl.first_layer_filters(nn.Sequential(nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="4-D tensor"):
        tl.plot_filters(torch.zeros(3, 3))


def test_feature_maps_shrink_and_deepen_and_leave_no_hooks(lite0_imagenet):
    maps = tl.feature_maps(lite0_imagenet, photos.chelsea(), depths=["stem", "blocks.3", -1])
    assert list(maps) == ["stem", "blocks.3", "neck"]
    sizes = [m.shape for m in maps.values()]
    assert all(len(s) == 3 for s in sizes)
    assert sizes[0][1] > sizes[1][1] > sizes[2][1]   # spatial size shrinks with depth ...
    assert sizes[0][0] < sizes[1][0] < sizes[2][0]   # ... while the number of channels grows
    assert sizes[0][1:] == (112, 112)                 # the stem halves the 224-px input
    assert all(not m._forward_hooks for m in lite0_imagenet.modules())
    default = tl.feature_maps(lite0_imagenet, photos.coffee(), image_size=96)
    assert len(default) == 4 and next(iter(default)) == "stem" and default["stem"].shape[1:] == (48, 48)
    fig = tl.plot_feature_maps(maps, n=4, image=photos.chelsea())
    assert sum(1 for ax in fig.axes if ax.images) == 3 * 4 + 1
    _close(fig)


def test_feature_maps_name_the_parts_when_a_depth_is_unknown(lite0_imagenet):
    with pytest.raises(ValueError, match=r"blocks\.6"):
        tl.feature_maps(lite0_imagenet, photos.coffee(), depths=["block3"])
    with pytest.raises(ValueError, match="Unknown depth 99"):
        tl.feature_maps(lite0_imagenet, photos.coffee(), depths=[99])


# ----------------------------------------------------------------------------- feature quality
def _clusters(n_per_class: int = 20, n_classes: int = 3, dim: int = 16, spread: float = 0.3, seed: int = 0):
    """Points around one random centre per class: easy to separate when spread is small."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = centres[y] + rng.normal(size=(len(y), dim)) * spread
    return x.astype(np.float32), y


def test_knn_and_linear_probe_find_clear_clusters():
    xtr, ytr = _clusters(seed=0)
    xte, yte = xtr + np.random.default_rng(1).normal(size=xtr.shape).astype(np.float32) * 0.05, ytr
    assert tl.knn_accuracy(xtr, ytr, xte, yte, k=5) == 1.0
    assert tl.linear_probe_accuracy(torch.from_numpy(xtr), torch.from_numpy(ytr), xte, yte) == 1.0
    probe = tl.linear_probe(torch.from_numpy(xtr), torch.from_numpy(ytr))  # fitted once, asked many times
    shuffled = np.random.default_rng(2).permutation(len(xte))
    assert (probe.predict(xte[shuffled]) == yte[shuffled]).all()


def test_knn_and_linear_probe_are_near_chance_on_noise():
    rng = np.random.default_rng(0)
    xtr, xte = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    ytr, yte = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    assert tl.knn_accuracy(xtr, ytr, xte, yte, k=5) < 0.4
    assert tl.linear_probe_accuracy(xtr, ytr, xte, yte) < 0.4


def test_balanced_class_weights_make_a_probe_find_a_rare_class_more_often():
    # Two overlapping classes, one of them 20 times rarer: unweighted, the probe mostly answers
    # "common"; weighted, the rare class counts as much as the common one and is found more often.
    rng = np.random.default_rng(0)
    def sample(n_common, n_rare):
        x = np.concatenate([rng.normal(0.0, 1.0, (n_common, 2)), rng.normal(1.0, 1.0, (n_rare, 2))])
        return x, np.repeat([0, 1], [n_common, n_rare])
    xtr, ytr = sample(400, 20)
    xte, yte = sample(500, 500)
    plain = tl.linear_probe(xtr, ytr).predict(xte)
    weighted = tl.linear_probe(xtr, ytr, class_weight="balanced").predict(xte)
    rare_recall = lambda pred: (pred[yte == 1] == 1).mean()
    assert rare_recall(plain) < 0.2
    assert rare_recall(weighted) > rare_recall(plain) + 0.4
    with pytest.raises(ValueError, match="'balanced'"):
        tl.linear_probe(xtr, ytr, class_weight="rare")


def test_feature_scores_reject_mismatched_inputs():
    x, y = _clusters()
    with pytest.raises(ValueError, match="one integer label per row"):
        tl.knn_accuracy(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="same model"):
        tl.knn_accuracy(x, y, x[:, :4], y)
    with pytest.raises(ValueError, match="k must be between 1"):
        tl.knn_accuracy(x, y, x, y, k=len(x) + 1)
    with pytest.raises(ValueError, match="2-D array"):
        tl.linear_probe_accuracy(x[0], y[:1], x, y)
    with pytest.raises(ValueError, match="integer class indices"):
        tl.linear_probe_accuracy(x, y.astype(float), x, y)
    with pytest.raises(ValueError, match="single class"):
        tl.linear_probe_accuracy(x, np.zeros(len(x), dtype=int), x, y)
    with pytest.raises(ValueError, match="one integer label per row"):
        tl.linear_probe(x, y[:-1])


def test_embed_2d_keeps_clusters_apart():
    x, y = _clusters(n_per_class=15)
    for method in ("pca", "tsne"):
        points = tl.embed_2d(x, method=method)
        assert points.shape == (len(x), 2)
        assert tl.knn_accuracy(points, y, points, y, k=1) == 1.0  # still separated in 2-D
    with pytest.raises(ValueError, match="'pca' or 'tsne'"):
        tl.embed_2d(x, method="umap")
    fig = tl.plot_embeddings({"a": tl.embed_2d(x), "b": tl.embed_2d(-x)}, y, classes=["p", "q", "r"])
    assert len(fig.axes) == 2 and len(fig.axes[1].get_legend().get_texts()) == 3
    _close(fig)
    with pytest.raises(ValueError, match="must be 45 x 2"):
        tl.plot_embeddings({"a": tl.embed_2d(x), "b": np.zeros((3, 2))}, y)


def test_pretrained_features_separate_course_classes_better_than_random_ones(lite0_imagenet, tmp_path):
    """The lesson's claim, small: 4 materials x 8 images at 64 px, nearest neighbours on features."""
    data = tl.course_data(per_class={"train": 8, "val": 1, "test": 6}, root=tmp_path)
    keep = [data.classes.index(c) for c in ("brick", "grass", "fur", "text")]
    scores = {}
    for name in ("pretrained", "random"):
        torch.manual_seed(0)
        model = lite0_imagenet if name == "pretrained" else tl.load_pretrained(pretrained=False)
        to_input = tl.eval_transforms(tl.get_config(model), 64)
        feats = {}
        for split in ("train", "test"):
            ds = getattr(data, split)
            ds = ds.subset(torch.nonzero(torch.isin(ds.labels, torch.tensor(keep))).flatten())
            feats[split] = tl.extract_features(model, ds.with_transform(to_input), device="cpu").tensors
        scores[name] = tl.knn_accuracy(*feats["train"], *feats["test"], k=3)
    assert scores["pretrained"] >= 0.75 and scores["pretrained"] > scores["random"] + 0.2, scores
