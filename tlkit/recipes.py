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


@dataclass(frozen=True)
class Recipe:
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

    @classmethod
    def default(cls) -> "Recipe":
        return cls()

    def updated(self, **changes) -> "Recipe":
        """A copy with the given fields changed; ``None`` values keep the current setting."""
        recipe = replace(self, **{k: v for k, v in changes.items() if v is not None})
        recipe.validate()
        return recipe

    def validate(self) -> None:
        for name in ("epochs", "image_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.image_size < 32:
            raise ValueError(f"image_size {self.image_size} is too small for these backbones; use >= 32.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        if not 0 <= self.augment_strength <= 1:
            raise ValueError(f"augment_strength is between 0 and 1, got {self.augment_strength}.")
        self.augmentations()  # raises on an unknown name
        self.freeze_plan()  # raises on a bad plan

    def augmentations(self) -> list[str]:
        """``augment`` as a list of names from ``tlkit.data.AUGMENTATIONS`` (``[]`` for ``"none"``);
        see ``tlkit.data.transforms.augmentation_names``."""
        from .data.transforms import augmentation_names

        return augmentation_names(self.augment)

    def freeze_plan(self) -> tuple[str, int]:
        """Parse ``freeze`` into (kind, n)."""
        if self.freeze in ("head", "none", "gradual"):
            return self.freeze, 0
        if self.freeze.startswith("last:") and self.freeze[5:].isdigit():
            return "last", int(self.freeze[5:])
        raise ValueError(f"Unknown freeze plan {self.freeze!r}: use one of head, none, gradual, last:N "
                         "(e.g. last:2).")


def train_with_recipe(model, train, val, recipe: Recipe, *, device=None, progress: bool = True):
    """Fit ``model`` following ``recipe``; returns the list of History objects (one per stage)."""
    from .freezing import set_trainable
    from .train import fit

    kind, n = recipe.freeze_plan()
    set_trainable(model, {"head": "head", "gradual": "head", "none": "all"}.get(kind, n), recipe.freeze_bn)
    if not recipe.val_each_epoch:
        val = None  # fit then keeps the epoch with the lowest training loss (with one-cycle: the last)
    common = dict(batch_size=recipe.batch_size, weight_decay=recipe.weight_decay,
                  label_smoothing=recipe.label_smoothing, schedule=recipe.schedule, device=device,
                  progress=progress, seed=recipe.seed)
    if kind != "gradual" or recipe.epochs <= recipe.head_epochs:
        lr_mult = recipe.lr_mult if kind != "head" else 1.0
        return [fit(model, train, val, epochs=recipe.epochs, lr=recipe.lr, lr_mult=lr_mult, **common)]
    # Stage 1: a random head on a frozen body, so that its first big gradients cannot wreck the body.
    first = fit(model, train, val, epochs=recipe.head_epochs, lr=recipe.lr, **common)
    # Stage 2: everything trains, the body more gently (lower LR, lower still for early parts).
    set_trainable(model, "all", recipe.freeze_bn)
    second = fit(model, train, val, epochs=recipe.epochs - recipe.head_epochs,
                 lr=recipe.lr * recipe.body_lr_factor, lr_mult=recipe.lr_mult, **common)
    return [first, second]


def schedule_for_length(recipe: Recipe, n_train: int) -> Recipe:
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


def finetune(data_dir: str | Path, recipe: Recipe | None = None, *, out: str | Path | None = None,
             force: bool = False, device=None, progress: bool = True) -> dict:
    """Fine-tune on an ImageFolder tree, evaluate, save; returns a JSON-ready result dict.

    Reads ``data_dir/train/<class>/*`` and evaluates on ``test/`` if present, else ``val/`` (a
    stratified part of train/ when neither exists). On out-of-memory (CUDA or MPS, see
    ``tlkit.batch_size.is_out_of_memory``) it retries with half the batch size and says so.
    """
    from .checkpoint import save_model
    from .data import load_folder_splits
    from .device import describe_device, get_device
    from .evaluation import evaluate

    recipe = recipe or Recipe.default()
    recipe.validate()
    dev = get_device(device)
    start = time.perf_counter()
    splits = load_folder_splits(data_dir, image_size=recipe.image_size, seed=recipe.seed)
    eval_name = "test" if splits.test is not None else "val"
    model, data, histories, recipe = _train_until_it_fits(splits, recipe, dev, progress)
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


def _train_until_it_fits(splits, recipe: Recipe, device, progress: bool):
    """A fresh pretrained model trained by ``recipe``; on out-of-memory, again with half the batch size.

    Returns the model, the data with the model's transforms, the histories and the recipe that ran.
    """
    from .batch_size import free_cached_memory, is_out_of_memory
    from .data import eval_transforms, train_transforms
    from .device import seed_everything
    from .models import load_pretrained

    while True:
        seed_everything(recipe.seed)
        model = load_pretrained(recipe.model, num_classes=len(splits.classes), classes=list(splits.classes))
        cfg = model.tlkit_config
        data = splits.with_transforms(train_transforms(cfg, recipe.image_size, augment=recipe.augmentations(),
                                                       strength=recipe.augment_strength),
                                      eval_transforms(cfg, recipe.image_size))
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
