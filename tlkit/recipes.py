"""A fine-tuning recipe: every choice in one plain record, and ``finetune`` that follows it.

A :class:`Recipe` is a frozen dataclass holding everything that decides how a fine-tune goes (model,
epochs, image size, LR, what trains, augmentation, ...). ``tlkit finetune DATA_DIR`` and
``tlkit.recipes.finetune(...)`` run the same code with it. ``Recipe.default()`` and why:

- ``freeze="last:6"``, ``lr_mult=0.7`` (each earlier part at 0.7x the LR of the next): the frozen early
  parts would barely move at that LR, and skipping their backward pass is faster at no cost in accuracy.
- ``freeze_bn=True``: BatchNorm statistics rebuilt from a few small batches wreck tiny data sets.
- ``val_each_epoch=True``: keeping the best epoch's weights protects against a late bad epoch.
- ``augment="crop"``: a horizontal flip changes the label of arrows, digits and text; ask for it with
  ``augment="crop,flip"`` when a mirrored image keeps its label.

:class:`TextRecipe` is the same record for texts (a CSV/TSV table or folders of .txt files): a
pretrained text encoder (``"minilm"``, offline), its last layers fine-tuned, balanced class weights.

These are measured choices, not guesses: the numbers (over seeds, against a plain PyTorch loop, and
where the plain loop still wins) are in ``benchmarks/README.md``, made by ``benchmarks/recipe_seeds.py``.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

FREEZE_PLANS = ("head", "none", "gradual", "last:N")


class _RecipeRules:
    """What image and text recipes share: changing fields, checking them, reading the freezing plan."""

    @classmethod
    def default(cls):
        """The measured defaults (see the module's docstring)."""
        return cls()

    def updated(self, **changes):
        """A copy with the given fields changed; ``None`` values keep the current setting."""
        recipe = replace(self, **{k: v for k, v in changes.items() if v is not None})
        recipe.validate()
        return recipe

    def validate(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        self.freeze_plan()  # raises on a bad plan

    def freeze_plan(self) -> tuple[str, int]:
        """Parse ``freeze`` into (kind, n)."""
        if self.freeze in ("head", "none", "gradual"):
            return self.freeze, 0
        if self.freeze.startswith("last:") and self.freeze[5:].isdigit():
            return "last", int(self.freeze[5:])
        raise ValueError(f"Unknown freeze plan {self.freeze!r}: use one of head, none, gradual, last:N "
                         "(e.g. last:2).")


@dataclass(frozen=True)
class Recipe(_RecipeRules):
    """Everything that decides how a fine-tune goes.

    freeze: ``"head"`` trains only the new head; ``"none"`` trains everything; ``"last:N"`` the
    head and the last N parts; ``"gradual"`` trains the head for ``head_epochs`` epochs, then
    everything, with discriminative LRs (``lr_mult`` per part, going down the network).
    freeze_bn: keep every BatchNorm layer frozen (see ``tlkit.freezing.freeze_batchnorm``).
    augment: training augmentations, names joined by commas (``"crop,flip"``), ``"default"`` (the
    ``tlkit.train_transforms`` default: crop, no flip) or ``"none"``; see ``augmentations()``.
    augment_strength: how far the augmentations go (see ``tlkit.train_transforms``).
    val_each_epoch: evaluate on the validation split after every epoch and keep the best epoch's
    weights; False trains for ``epochs`` and keeps the last weights (no time spent validating).
    """

    model: str = "efficientnet_lite0"
    epochs: int = 10
    image_size: int = 128
    batch_size: int = 32
    lr: float = 2e-3
    freeze: str = "last:6"
    head_epochs: int = 2
    body_lr_factor: float = 0.3
    lr_mult: float = 0.7
    freeze_bn: bool = True
    weight_decay: float = 0.02
    label_smoothing: float = 0.1
    augment: str = "crop"
    augment_strength: float = 1.0
    val_each_epoch: bool = True
    schedule: str = "onecycle"
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if self.image_size < 32:
            raise ValueError(f"image_size {self.image_size} is too small for these backbones; use >= 32.")
        if not 0 <= self.augment_strength <= 1:
            raise ValueError(f"augment_strength is between 0 and 1, got {self.augment_strength}.")
        self.augmentations()  # raises on an unknown name

    def augmentations(self) -> list[str]:
        """``augment`` as a list of names from ``tlkit.data.AUGMENTATIONS`` (``[]`` for ``"none"``);
        see ``tlkit.data.transforms.augmentation_names``."""
        from .data.transforms import augmentation_names

        return augmentation_names(self.augment)



@dataclass(frozen=True)
class TextRecipe(_RecipeRules):
    """Everything that decides how a text fine-tune goes (a CSV/TSV table or folders of .txt files).

    The fields mean what they mean in :class:`Recipe`; a text model has no image size, augmentation
    or BatchNorm, and has instead ``max_length`` (tokens kept per text; longer texts are cut) and
    ``class_weights`` (``"balanced"``: see ``tlkit.train.balanced_class_weights``; ``"none"``: every
    text counts the same). With ``freeze="head"`` or ``"last:N"`` the frozen layers run once
    (``_train_text_top``), and with ``"last:N"`` the new head first learns alone on the frozen
    model's embeddings for ``head_first_epochs`` at ``head_first_lr`` (0 epochs: no such stage).
    Measured in ``benchmarks/text_benchmark.py`` (table in ``benchmarks/README.md``, "Text
    benchmark"): far above TF-IDF + logistic regression on the topics of 20 Newsgroups at 4 to 32
    posts per class; above it on the sentiment of drug reviews by only about one standard deviation
    of the draws, since the pretrained encoder knows little about how a patient felt.
    """

    model: str = "minilm"
    epochs: int = 10
    max_length: int = 128
    batch_size: int = 16
    lr: float = 3e-4
    freeze: str = "last:2"
    head_epochs: int = 2
    body_lr_factor: float = 0.3
    lr_mult: float = 0.5
    weight_decay: float = 0.01
    label_smoothing: float = 0.0
    class_weights: str = "balanced"
    head_first_epochs: int = 30
    head_first_lr: float = 1e-2
    val_each_epoch: bool = True
    schedule: str = "onecycle"
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if self.head_first_epochs < 0 or not self.head_first_lr > 0:
            raise ValueError(f"head_first_epochs must be >= 0 and head_first_lr > 0, got {self.head_first_epochs} "
                             f"and {self.head_first_lr}.")
        if not 8 <= self.max_length <= 4096:
            raise ValueError(f"max_length is a number of tokens between 8 and 4096, got {self.max_length}.")
        if self.class_weights not in ("balanced", "none"):
            raise ValueError(f"class_weights must be 'balanced' or 'none', got {self.class_weights!r}.")

    def loss_class_weights(self) -> str | None:
        """What ``tl.fit`` gets as ``class_weights``."""
        return None if self.class_weights == "none" else self.class_weights


def train_with_recipe(model, train, val, recipe: Recipe | TextRecipe, *, device=None, progress: bool = True):
    """Fit ``model`` following ``recipe``; returns the list of History objects (one per stage)."""
    from .freezing import set_trainable
    from .train import fit

    kind, n = recipe.freeze_plan()
    freeze_bn = getattr(recipe, "freeze_bn", False)  # a text recipe has no BatchNorm to freeze
    set_trainable(model, {"head": "head", "gradual": "head", "none": "all"}.get(kind, n), freeze_bn)
    if isinstance(recipe, TextRecipe) and kind in ("head", "last") and n < len(model.body.encoder.layer):
        return _train_text_top(model, train, val, recipe, device=device, progress=progress)
    if not recipe.val_each_epoch:
        val = None  # fit then keeps the epoch with the lowest training loss (with one-cycle: the last)
    common = dict(batch_size=recipe.batch_size, weight_decay=recipe.weight_decay,
                  label_smoothing=recipe.label_smoothing, schedule=recipe.schedule, device=device,
                  progress=progress, seed=recipe.seed,
                  class_weights=recipe.loss_class_weights() if isinstance(recipe, TextRecipe) else None)
    if kind != "gradual" or recipe.epochs <= recipe.head_epochs:
        lr_mult = recipe.lr_mult if kind != "head" else 1.0
        return [fit(model, train, val, epochs=recipe.epochs, lr=recipe.lr, lr_mult=lr_mult, **common)]
    # Stage 1: a random head on a frozen body, so that its first big gradients cannot wreck the body.
    first = fit(model, train, val, epochs=recipe.head_epochs, lr=recipe.lr, **common)
    # Stage 2: everything trains, the body more gently (lower LR, lower still for early parts).
    set_trainable(model, "all", freeze_bn)
    second = fit(model, train, val, epochs=recipe.epochs - recipe.head_epochs,
                 lr=recipe.lr * recipe.body_lr_factor, lr_mult=recipe.lr_mult, **common)
    return [first, second]


def _train_text_top(model, train, val, recipe: TextRecipe, *, device=None, progress: bool = True) -> list:
    """A text fine-tune that trains only the top layers (and the head): the frozen layers run once.

    What enters the top layers cannot change while the layers below are frozen, so it is computed
    once for every text (``tlkit.text.text_top_inputs``) and the top alone is trained on it
    (``tlkit.text.TextTop``, which shares the model's layers): the same fine-tune, several times
    faster on a CPU. The frozen layers run in eval mode, so their dropout is off.

    With top layers to train and ``recipe.head_first_epochs``, the new head first learns alone on
    the embeddings the still-pretrained top computes (cached features, milliseconds per epoch), and
    the top layers then start from a head that already points the right way rather than from a
    random one whose first large gradients reach them ("linear probe, then fine-tune": Kumar et al.
    2022). Returns the History of each stage.
    """
    from .features import extract_features
    from .text import TextTop, text_top_inputs
    from .train import balanced_class_weights, fit

    kind, n = recipe.freeze_plan()  # train_with_recipe has set what trains: the head and the last n layers
    top_n = 0 if kind == "head" else n
    train_in = text_top_inputs(model, train, top_n, device=device, progress=progress)
    val_in = text_top_inputs(model, val, top_n, device=device, progress=progress) if recipe.val_each_epoch else None
    weights = recipe.loss_class_weights()
    if weights == "balanced":  # from the labels, with every class of the model counted
        weights = balanced_class_weights(train_in.tensors[1], model.classifier.out_features)
    top = TextTop(model, top_n)
    common = dict(batch_size=recipe.batch_size, weight_decay=recipe.weight_decay, label_smoothing=recipe.label_smoothing,
                  schedule=recipe.schedule, device=device, progress=progress, seed=recipe.seed, class_weights=weights)
    histories = []
    if top_n > 0 and recipe.head_first_epochs > 0:
        features = [extract_features(top, part, device=device) if part is not None else None
                    for part in (train_in, val_in)]
        histories.append(fit(model.classifier, features[0], features[1], epochs=recipe.head_first_epochs,
                             lr=recipe.head_first_lr, **common))
    histories.append(fit(top, train_in, val_in, epochs=recipe.epochs, lr=recipe.lr, lr_mult=recipe.lr_mult, **common))
    return histories


def schedule_for_length(recipe, n_train: int):
    """``recipe``, or the same with a cosine schedule when its run is too short for one-cycle.

    One-cycle needs at least 5 steps in each ``fit`` (see ``tlkit.train.make_scheduler``); a folder
    of a dozen images trained for one epoch has fewer. Rather than refuse, ``tlkit finetune`` then
    uses the cosine schedule and says so (the result's recipe shows it too).
    """
    from .data.loaders import make_loader

    with warnings.catch_warnings():  # fit warns about an oversized batch itself
        warnings.simplefilter("ignore")
        steps = len(make_loader(range(n_train), recipe.batch_size, shuffle=True))
    kind, _ = recipe.freeze_plan()
    stages = [recipe.epochs]
    if kind == "gradual" and recipe.epochs > recipe.head_epochs:
        stages = [recipe.head_epochs, recipe.epochs - recipe.head_epochs]
    if recipe.schedule != "onecycle" or min(stages) * steps >= 5:
        return recipe
    warnings.warn(f"{min(stages) * steps} training step(s) are too few for the one-cycle schedule (it needs 5); "
                  "using the cosine schedule. More images or --epochs give one-cycle room.", stacklevel=2)
    return recipe.updated(schedule="cosine")


def finetune(data_dir: str | Path, recipe: Recipe | TextRecipe | None = None, *, out: str | Path | None = None,
             force: bool = False, device=None, progress: bool = True, text_column: str = "text",
             label_column: str = "label") -> dict:
    """Fine-tune on your own data, evaluate, save; returns a JSON-ready result dict.

    Images: ``data_dir/train/<class>/*`` (or class folders directly in it). Texts: a CSV/TSV table
    (``text_column``, ``label_column``) or folders of ``.txt`` files (``tlkit.data.text_files``);
    a ``TextRecipe`` is used for them (the default one when ``recipe`` is None). Evaluates on
    ``test/`` if present, else ``val/`` (a stratified part of the training data when neither exists).
    On out-of-memory (CUDA or MPS, see ``tlkit.batch_size.is_out_of_memory``) it retries with half
    the batch size and says so.
    """
    from .data import load_folder_splits
    from .data.text_files import is_text_data, load_text_splits
    from .device import get_device

    text = is_text_data(data_dir)
    recipe = recipe or (TextRecipe.default() if text else Recipe.default())
    if text != isinstance(recipe, TextRecipe):
        raise ValueError(f"{data_dir} holds {'texts' if text else 'images'}, but the recipe is for "
                         f"{'images' if text else 'texts'}: use {'TextRecipe' if text else 'Recipe'}.")
    recipe.validate()
    dev = get_device(device)
    start = time.perf_counter()
    if text:
        splits = load_text_splits(data_dir, text_column, label_column, seed=recipe.seed)
    else:
        splits = load_folder_splits(data_dir, image_size=recipe.image_size, seed=recipe.seed)
    model, data, histories, recipe = _train_until_it_fits(splits, recipe, dev, progress)
    return _report_and_save(model, splits, data, histories, recipe, dev, start, out, force)


def _report_and_save(model, splits, data, histories, recipe, dev, start: float, out, force: bool) -> dict:
    """Evaluate once on test (else val), and save the model with its metrics.json into ``out``."""
    from .checkpoint import save_model
    from .device import describe_device
    from .evaluation import evaluate

    eval_name = "test" if splits.test is not None else "val"
    report = evaluate(model, getattr(data, eval_name), classes=list(splits.classes), device=dev)
    result = {
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "per_class": report.per_class,
        "confusion": report.confusion.tolist(),
        "eval_split": eval_name,
        "n_eval": len(getattr(splits, eval_name)),
        "n_train": len(splits.train),
        "classes": list(splits.classes),
        "seconds": round(time.perf_counter() - start, 2),
        "device": describe_device(dev),
        "model": recipe.model,
        "modality": "text" if isinstance(recipe, TextRecipe) else "image",
        "recipe": asdict(recipe),
        "history": [h.to_dict() for h in histories],
        "skipped_files": len(getattr(splits.train, "skipped", []) or []),
    }
    if out is not None:
        folder = save_model(model, out, extra={"accuracy": report.accuracy, "eval_split": eval_name},
                            force=force)
        (Path(folder) / "metrics.json").write_text(json.dumps(result, indent=2))
        result["out"] = str(folder)
    return result


def _model_and_data(splits, recipe):
    """A fresh pretrained model for ``recipe`` and the splits with that model's transforms."""
    from .data import eval_transforms, train_transforms
    from .models import load_pretrained
    from .text import text_transform

    model = load_pretrained(recipe.model, num_classes=len(splits.classes), classes=list(splits.classes))
    if isinstance(recipe, TextRecipe):
        tokens = text_transform(model, recipe.max_length)
        return model, splits.with_transforms(tokens, tokens)
    cfg = model.tlkit_config
    return model, splits.with_transforms(train_transforms(cfg, recipe.image_size, augment=recipe.augmentations(),
                                                          strength=recipe.augment_strength),
                                         eval_transforms(cfg, recipe.image_size))


def _train_until_it_fits(splits, recipe, device, progress: bool):
    """A fresh pretrained model trained by ``recipe``; on out-of-memory, again with half the batch size.

    Returns the model, the data with the model's transforms, the histories and the recipe that ran.
    """
    from .batch_size import free_cached_memory, is_out_of_memory
    from .device import seed_everything

    while True:
        seed_everything(recipe.seed)
        model, data = _model_and_data(splits, recipe)
        recipe = schedule_for_length(recipe, len(data.train))
        try:
            return model, data, train_with_recipe(model, data.train, data.val, recipe, device=device,
                                                  progress=progress), recipe
        except Exception as err:  # only out-of-memory is retried; anything else is a real bug
            if not is_out_of_memory(err) or recipe.batch_size == 1:
                raise
            recipe = recipe.updated(batch_size=max(1, recipe.batch_size // 2))
            free_cached_memory(device)
            warnings.warn(f"{device.type.upper()} ran out of memory; retrying with --batch-size {recipe.batch_size}. "
                          "Pass a smaller --batch-size or --image-size to skip this retry.")
