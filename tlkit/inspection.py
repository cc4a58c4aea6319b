"""Looking inside a pretrained network: what it predicts, what it sees, and what its features are worth.

Three questions, each a few functions (lesson 01 uses all of them):

1. What does the network say about a photo? ``top_k`` runs the ImageNet head and names the
   classes; ``plot_top_k`` draws photos next to their top guesses.
2. What does it look at? ``first_layer_filters`` returns the very first convolution's weights
   (``plot_filters`` draws them), and ``feature_maps`` records what the blocks output for one image,
   from early (edges, colours) to late (textures, parts), with forward hooks
   (``plot_feature_maps`` draws the strongest channels of each).
3. Are its features useful for *new* classes? Turn a data set into feature vectors with
   ``tlkit.extract_features``, then measure how well simple classifiers do on them:
   ``knn_accuracy`` (does an image's nearest neighbours share its class?) and
   ``linear_probe_accuracy`` (can one linear layer separate the classes?). ``embed_2d`` squeezes the
   vectors into 2-D for a picture, ``plot_embeddings`` draws them coloured by class.

Images may be given as NumPy arrays (H x W x 3 uint8, like ``skimage.data.chelsea()``, or H x W grey)
or as tensors. Raw pictures are prepared exactly like the model's training images
(``tlkit.get_config(model)``: resize, centre crop, normalise); a float tensor of shape 3 x H x W is
taken as already prepared (an item of a data set that has an eval transform).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Union

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .config import get_config
from .freezing import choose_parts
from .plots import new_figure

ImageLike = Union[np.ndarray, torch.Tensor]


# ---------------------------------------------------------------------------------- preparing images
def _to_uint8_chw(image: np.ndarray) -> torch.Tensor:
    """A NumPy picture (H x W grey, H x W x 3 RGB, H x W x 4 RGBA; uint8, bool or float in [0, 1])."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)  # grey -> three equal channels
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"A NumPy image must be H x W (grey) or H x W x 3 (RGB), got shape {image.shape}. "
                         "If it is channels-first (3 x H x W), use image.transpose(1, 2, 0).")
    image = image[..., :3]  # drop transparency
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        if image.min() < 0 or image.max() > 1:
            raise ValueError(f"A float image must hold values in [0, 1], got {image.min():.3g}..{image.max():.3g}. "
                             "Scale it, e.g. image / 255, or pass it as uint8.")
        image = np.round(image * 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)


def prepare_image(model: nn.Module, image: ImageLike, image_size: int | None = None) -> torch.Tensor:
    """One picture as a batch of one (1 x 3 x H x W), prepared the way ``model``'s weights expect.

    NumPy arrays and uint8 tensors (3 x H x W) go through ``tlkit.eval_transforms`` with the model's
    own config (size, interpolation, mean/std); ``image_size`` overrides the config's size. A float
    tensor (3 x H x W) is returned as is: it is assumed to be prepared already.
    """
    from .data.transforms import eval_transforms

    if isinstance(image, np.ndarray):
        image = _to_uint8_chw(image)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a NumPy array or a torch tensor, got {type(image).__name__}.")
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"A tensor image must be 3 x H x W (channels first), got shape {tuple(image.shape)}.")
    if image.dtype == torch.uint8:
        image = eval_transforms(get_config(model), image_size)(image)
    elif not image.is_floating_point():
        raise ValueError(f"A tensor image must be uint8 (raw pixels) or float (prepared), got {image.dtype}.")
    return image.unsqueeze(0)


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


# ------------------------------------------------------------------------------- 1. predictions
class Guess(NamedTuple):
    """One of the model's top guesses: class index, class name, probability."""

    index: int
    name: str
    probability: float


def top_k(model: nn.Module, image: ImageLike, k: int = 5, classes: Sequence[str] | None = None) -> list[Guess]:
    """The model's ``k`` most probable classes for one image, most probable first.

    ``classes`` names the outputs; by default the model's own (``tlkit.get_config(model).classes``,
    the 1000 ImageNet names for a model loaded with its ImageNet head).
    """
    from .evaluation import keep_modes

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}.")
    classes = list(classes) if classes is not None else list(get_config(model).classes)
    x = prepare_image(model, image)
    with keep_modes(model), torch.inference_mode():  # eval mode for the prediction, then as before
        model.eval()
        probs = torch.softmax(model(x.to(_device_of(model))).float(), dim=1)[0].cpu()
    if k > len(probs):
        raise ValueError(f"k must be between 1 and the number of classes ({len(probs)}), got {k}.")
    if classes and len(classes) != len(probs):
        raise ValueError(f"The model has {len(probs)} outputs but {len(classes)} class names were given.")
    values, indices = probs.topk(k)
    return [Guess(int(i), classes[i] if classes else str(int(i)), float(p))
            for p, i in zip(values.tolist(), indices.tolist())]


def plot_top_k(model: nn.Module, images: Mapping[str, ImageLike], k: int = 5, per_row: int = 3) -> Figure:
    """Each photo next to a bar chart of the model's top ``k`` guesses.

    ``images`` maps a title to a raw picture (a NumPy array or a uint8 tensor 3 x H x W).
    """
    if not images:
        raise ValueError("plot_top_k needs at least one image: pass a dict like {'cat': chelsea}.")
    per_row = max(1, min(per_row, len(images)))
    nrows = -(-len(images) // per_row)
    fig, axes = new_figure(nrows, 2 * per_row, figsize=(4.6 * per_row, 2.1 * nrows))
    for ax in axes.flat:
        ax.set_axis_off()
    for n, (title, image) in enumerate(images.items()):
        ax_img, ax_bar = axes[n // per_row, 2 * (n % per_row)], axes[n // per_row, 2 * (n % per_row) + 1]
        shown = image if isinstance(image, np.ndarray) else image.permute(1, 2, 0).numpy()
        ax_img.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        ax_img.set_title(title, fontsize=9)
        guesses = top_k(model, image, k)
        ax_bar.set_axis_on()
        ax_bar.barh(range(k), [g.probability for g in guesses], color="tab:blue")
        ax_bar.set_yticks(range(k), labels=[g.name for g in guesses], fontsize=8)
        ax_bar.invert_yaxis()  # most probable on top
        ax_bar.set_xlim(0, 1)
        ax_bar.tick_params(axis="x", labelsize=7)
        for side in ("top", "right"):
            ax_bar.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------ 2. filters and feature maps
def first_layer_filters(model: nn.Module) -> torch.Tensor:
    """A copy of the first convolution's weights: out_channels x in_channels x kh x kw.

    These filters touch the pixels directly. After ImageNet training they respond to colours and
    to edges in a few directions; with random weights they are noise.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.weight.detach().cpu().clone()
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer, so there are no image filters to show.")


def plot_filters(filters: torch.Tensor, ncols: int = 16, title: str | None = None) -> Figure:
    """Draw conv filters as small pictures (RGB when they have 3 input channels, else grey).

    Each filter is stretched to [0, 1] on its own, so weak filters are as visible as strong ones:
    compare shapes and colours, not brightness between filters.
    """
    if not isinstance(filters, torch.Tensor) or filters.ndim != 4:
        raise ValueError("filters must be a 4-D tensor out x in x kh x kw, e.g. tl.first_layer_filters(model).")
    n = len(filters)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(0.55 * ncols, 0.55 * nrows + (0.4 if title else 0)))
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        w = filters[k].float()
        w = (w - w.min()) / max(float(w.max() - w.min()), 1e-12)
        picture = w.permute(1, 2, 0).numpy() if w.shape[0] == 3 else w.mean(0).numpy()
        ax.imshow(picture, cmap=None if picture.ndim == 3 else "gray", interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.2)
    return fig


def feature_maps(model: nn.Module, image: ImageLike, depths: Sequence[str | int] | None = None,
                 image_size: int | None = None) -> dict[str, torch.Tensor]:
    """What the chosen parts of the network output for one image: name -> channels x H x W tensor.

    ``depths`` are part names from ``tlkit.parts(model)`` (``"stem"``, ``"blocks.3"``, ...) or their
    positions (0 = stem); by default four parts from the first to the last. A *forward hook* on each
    part's last module copies its output during one ordinary forward pass; the hooks are removed
    afterwards, so the model is unchanged. ``image_size`` (default: the model's) sets the input size;
    a larger input gives larger maps.
    """
    from .evaluation import keep_modes

    chosen = choose_parts(model, depths)
    x = prepare_image(model, image, image_size)
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for part in chosen:
        def hook(module, inputs, output, name=part.name):
            captured[name] = output[0].detach().float().cpu()  # the batch has one image
        handles.append(model.get_submodule(part.modules[-1]).register_forward_hook(hook))
    try:
        with keep_modes(model), torch.inference_mode():
            model.eval()
            model(x.to(_device_of(model)))
    finally:
        for handle in handles:
            handle.remove()  # a forgotten hook would run on every later forward pass
    return {part.name: captured[part.name] for part in chosen}


def plot_feature_maps(maps: Mapping[str, torch.Tensor], n: int = 6, image: ImageLike | None = None) -> Figure:
    """One row per part: its ``n`` most active channels (highest mean activation) as grey pictures.

    With ``image`` the input picture is drawn at the start of the first row. Early rows are large
    maps that follow edges and colours; late rows are small maps that light up on larger patterns.
    """
    if not maps:
        raise ValueError("No feature maps to plot: pass the dict returned by tl.feature_maps(model, image).")
    extra = 1 if image is not None else 0
    fig, axes = new_figure(len(maps), n + extra, figsize=(1.3 * (n + extra) + 0.6, 1.35 * len(maps)))
    for row, (name, fmap) in enumerate(maps.items()):
        if fmap.ndim != 3:
            raise ValueError(f"Feature map {name!r} must be channels x H x W, got shape {tuple(fmap.shape)}.")
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        if extra:
            if row == 0:
                shown = image if isinstance(image, np.ndarray) else image.permute(1, 2, 0).numpy()
                axes[0, 0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
                axes[0, 0].set_title("input", fontsize=8)
        strongest = fmap.mean(dim=(1, 2)).argsort(descending=True)[:n]
        for col, channel in enumerate(strongest.tolist()):
            axes[row, col + extra].imshow(fmap[channel].numpy(), cmap="viridis")
            axes[row, col + extra].set_title(f"channel {channel}", fontsize=7)
        c, h, w = fmap.shape
        axes[row, extra].set_ylabel(f"{name}\n{c} ch, {h}×{w}", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


# ----------------------------------------------------------------------- 3. how good are the features?
def _features(x, name: str) -> np.ndarray:
    array = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    if array.ndim != 2 or len(array) == 0:
        raise ValueError(f"{name} must be a 2-D array (one row of features per image), got shape {array.shape}. "
                         "tl.extract_features(model, data).tensors gives (features, labels).")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return array


def _labels(y, n: int, name: str) -> np.ndarray:
    array = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"{name} must hold one integer label per row of features ({n}), got shape {array.shape}.")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be integer class indices, got {array.dtype}.")
    return array.astype(np.int64)


def _check_pair(train_feats, train_y, test_feats, test_y):
    xtr, xte = _features(train_feats, "train_feats"), _features(test_feats, "test_feats")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train_feats have {xtr.shape[1]} features per image but test_feats {xte.shape[1]}: "
                         "were they made by the same model?")
    return xtr, _labels(train_y, len(xtr), "train_y"), xte, _labels(test_y, len(xte), "test_y")


def knn_accuracy(train_feats, train_y, test_feats, test_y, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour vote: each test image takes the most common class among the
    ``k`` training images whose features point in the most similar direction (cosine similarity).

    No training at all: it measures whether images of one class already sit together in feature space.
    Ties go to the class with the smaller index.
    """
    xtr, ytr, xte, yte = _check_pair(train_feats, train_y, test_feats, test_y)
    if not 1 <= k <= len(xtr):
        raise ValueError(f"k must be between 1 and the number of training images ({len(xtr)}), got {k}.")
    xtr = xtr / np.maximum(np.linalg.norm(xtr, axis=1, keepdims=True), 1e-12)
    xte = xte / np.maximum(np.linalg.norm(xte, axis=1, keepdims=True), 1e-12)
    similarity = xte @ xtr.T                                     # test x train
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    votes = ytr[nearest]                                          # test x k neighbour labels
    n_classes = int(max(ytr.max(), yte.max())) + 1
    predicted = np.array([np.bincount(v, minlength=n_classes).argmax() for v in votes])
    return float((predicted == yte).mean())


def linear_probe(train_feats, train_y, C: float = 1.0, class_weight: str | None = None):
    """A linear classifier (logistic regression) fitted on frozen features; ``.predict(feats)`` labels.

    This is "feature extraction" in its purest form: if one linear layer can separate the classes,
    the features already contain what the task needs. Features are standardised first (zero mean,
    unit variance, fitted on the training set only); ``C`` is the inverse regularisation strength.
    ``class_weight="balanced"`` weighs each training example by n / (classes x its class's count), so
    that a rare class counts as much in the loss as a common one (lesson 07).
    Returns a fitted scikit-learn pipeline: ``probe.predict(test_feats)`` gives one label per row.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    xtr = _features(train_feats, "train_feats")
    ytr = _labels(train_y, len(xtr), "train_y")
    if len(np.unique(ytr)) < 2:
        raise ValueError("train_y has a single class: a classifier needs examples of at least two classes.")
    if class_weight not in (None, "balanced"):
        raise ValueError(f"class_weight must be None (every example counts the same) or 'balanced' "
                         f"(every class counts the same), got {class_weight!r}.")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500, class_weight=class_weight))
    # One BLAS thread: measured 0.2 s instead of 10 s for 480 images on a busy 2-core machine.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        # Poor (e.g. random) features may need more iterations to converge fully; the accuracy is
        # what we measure, and it no longer changes much by then.
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(xtr, ytr)
    return probe


def linear_probe_accuracy(train_feats, train_y, test_feats, test_y, C: float = 1.0) -> float:
    """Test accuracy of a linear probe (``linear_probe``) trained on frozen features."""
    xtr, ytr, xte, yte = _check_pair(train_feats, train_y, test_feats, test_y)
    return float((linear_probe(xtr, ytr, C).predict(xte) == yte).mean())


def embed_2d(features, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Squeeze feature vectors into 2-D points (N x 2) for a picture.

    ``"pca"`` keeps the two directions of largest variance (fast, a straight projection);
    ``"tsne"`` keeps neighbours next to each other (slower, better at showing clusters, but distances
    between clusters mean little). ``seed`` makes t-SNE repeatable.
    """
    x = _features(features, "features")
    if len(x) < 3:
        raise ValueError(f"embed_2d needs at least 3 feature vectors, got {len(x)}.")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        perplexity = min(30.0, (len(x) - 1) / 3)
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
        # One thread: on a busy 2-core laptop t-SNE's waiting OpenMP threads made 45 points take
        # 100 s instead of a fraction of a second; one thread handles a few thousand points fine.
        with threadpool_limits(limits=1):
            return tsne.fit_transform(x)
    raise ValueError(f"Unknown method {method!r}: use 'pca' or 'tsne'.")


def plot_embeddings(embeddings: Mapping[str, np.ndarray], labels, classes: Sequence[str] | None = None) -> Figure:
    """2-D points side by side, one panel per entry (title -> N x 2 points), coloured by class."""
    import matplotlib

    if not embeddings:
        raise ValueError("No embeddings to plot: pass a dict like {'pretrained': points}.")
    first = next(iter(embeddings.values()))
    y = _labels(labels, len(first), "labels")
    classes = list(classes) if classes is not None else [str(c) for c in range(int(y.max()) + 1)]
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    fig, axes = new_figure(1, len(embeddings), figsize=(4.2 * len(embeddings) + 1.6, 3.8))
    for ax, (title, points) in zip(axes[0], embeddings.items()):
        points = np.asarray(points)
        if points.shape != (len(y), 2):
            raise ValueError(f"Embedding {title!r} must be {len(y)} x 2 points, got shape {points.shape}.")
        for c, name in enumerate(classes):
            mask = y == c
            ax.scatter(points[mask, 0], points[mask, 1], s=9, color=cmap(c), label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=1.5, frameon=False)
    fig.tight_layout()
    return fig
