"""A fine-tuning recipe: every choice in one plain record, and ``finetune`` that follows it.

``tlkit finetune DATA_DIR`` and ``tlkit.recipes.finetune(...)`` run the same code. The defaults in
``Recipe.default()`` are the winner of measured comparisons on small data sets on a 2-core CPU
(``benchmarks/recipe_seeds.py`` and the tables in ``benchmarks/README.md``), not guesses:

- train the head and the last 6 parts (for EfficientNet-Lite0: blocks 2-6 and the 1x1 "neck"), with
  discriminative LRs: the head at ``lr``, each earlier part at 0.7x the LR of the part after it;
- keep the stem and the first two blocks frozen: at 0.7x per part their LR would be under 10 % of the
  head's, so they would barely move, yet their backward pass is the costliest one (the largest
  feature maps). Freezing them made a 10-epoch run ~20 % faster; on the course and shapes data sets
  accuracy moved by less than the spread between seeds;
- keep every BatchNorm layer frozen (statistics and all): with BatchNorm learning, a 24-image data set
  fell to chance, and BatchNorm-learning variants were 12-13 points behind on the shapes data set;
- validate after every epoch and keep the best epoch's weights (worth up to 6 points on held-out data);
- augment with random resized crops only, no horizontal flips. A flip is safe only when a mirrored
  image keeps its label, and tlkit cannot know that about your data: it turns a left arrow into a
  right arrow, and a "2" or a printed word into something no test image looks like. Without flips the
  recipe gained 6 points on the course data (arrows) and 3 on scikit-learn's digits, and lost at
  most 1.5 on sets where flips are harmless. If they are harmless in your data, ask for them:
  ``--augment crop,flip``.

Over four small data sets it beat a plain PyTorch loop that trains every layer with crops and flips
on three (by 5-9 points), in about half its time (with ``tl.fit``'s channels_last on CPUs). On the
course data and digits most of that lead is the flip choice (the plain loop without flips comes within
1-2 points); on the shapes data, where flips are harmless, it is all the rest of the recipe. It is not
best everywhere: on data far from ImageNet in low-level statistics (microscopy, astronomy; the
``materials`` set) the plain loop still wins by about 3 points (benchmarks/README.md, "Recipe over
seeds on four data sets" and "Without flips").
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

FREEZE_PLANS = ("head", "none", "gradual", "last:N")


@dataclass(frozen=True)
class Recipe:
    """Everything that decides how a fine-tune goes.

    freeze: ``"head"`` trains only the new head; ``"none"`` trains everything; ``"last:N"`` the
    head and the last N parts; ``"gradual"`` trains the head for ``head_epochs`` epochs, then
    everything, with discriminative LRs (``lr_mult`` per part, going down the network).
    freeze_bn: keep every BatchNorm layer frozen (see ``tlkit.freezing.freeze_batchnorm``).
    augment: training augmentations, names joined by commas (``"crop,flip"``), ``"default"`` (the
    ``tlkit.train_transforms`` default: crop and flip) or ``"none"``; see ``augmentations()``.
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


def apply_freeze(model: torch.nn.Module, kind: str, n: int = 0, freeze_bn: bool = False) -> None:
    """Set requires_grad according to a freeze plan (gradual starts with the head only)."""
    from .freezing import freeze, freeze_batchnorm, unfreeze, unfreeze_last

    if kind in ("head", "gradual"):
        freeze(model)
    elif kind == "none":
        unfreeze(model)
    else:
        unfreeze_last(model, n)
    if freeze_bn:
        freeze_batchnorm(model)


def train_with_recipe(model, train, val, recipe: Recipe, *, device=None, progress: bool = True):
    """Fit ``model`` following ``recipe``; returns the list of History objects (one per stage)."""
    from .train import fit

    kind, n = recipe.freeze_plan()
    apply_freeze(model, kind, n, recipe.freeze_bn)
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
    apply_freeze(model, "none", freeze_bn=recipe.freeze_bn)
    second = fit(model, train, val, epochs=recipe.epochs - recipe.head_epochs,
                 lr=recipe.lr * recipe.body_lr_factor, lr_mult=recipe.lr_mult, **common)
    return [first, second]


def finetune(data_dir: str | Path, recipe: Recipe | None = None, *, out: str | Path | None = None,
             force: bool = False, device=None, progress: bool = True) -> dict:
    """Fine-tune on an ImageFolder tree, evaluate, save; returns a JSON-ready result dict.

    Reads ``data_dir/train/<class>/*`` and evaluates on ``test/`` if present, else ``val/`` (a
    stratified part of train/ when neither exists). On CUDA out-of-memory it retries with half the
    batch size and says so.
    """
    from .checkpoint import save_model
    from .data import eval_transforms, load_folder_splits, train_transforms
    from .device import describe_device, get_device, seed_everything
    from .evaluation import evaluate
    from .models import load_pretrained

    recipe = recipe or Recipe.default()
    recipe.validate()
    dev = get_device(device)
    start = time.perf_counter()
    splits = load_folder_splits(data_dir, image_size=recipe.image_size, seed=recipe.seed)
    eval_name, eval_set = ("test", splits.test) if splits.test is not None else ("val", splits.val)
    batch_size = recipe.batch_size
    while True:
        seed_everything(recipe.seed)
        model = load_pretrained(recipe.model, num_classes=len(splits.classes), classes=list(splits.classes))
        cfg = model.tlkit_config
        data = splits.with_transforms(train_transforms(cfg, recipe.image_size, augment=recipe.augmentations(),
                                                       strength=recipe.augment_strength),
                                      eval_transforms(cfg, recipe.image_size))
        try:
            histories = train_with_recipe(model, data.train, data.val, recipe.updated(batch_size=batch_size),
                                          device=dev, progress=progress)
            break
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            torch.cuda.empty_cache()
            warnings.warn(f"CUDA ran out of memory; retrying with --batch-size {batch_size}. "
                          "Pass a smaller --batch-size or --image-size to skip this retry.")
    eval_data = data.test if eval_name == "test" else data.val
    report = evaluate(model, eval_data, classes=list(splits.classes), device=dev)
    seconds = time.perf_counter() - start
    result = {
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "per_class": report.per_class,
        "confusion": report.confusion.tolist(),
        "eval_split": eval_name,
        "n_eval": len(eval_set),
        "n_train": len(splits.train),
        "classes": list(splits.classes),
        "seconds": round(seconds, 2),
        "device": describe_device(dev),
        "model": recipe.model,
        "recipe": asdict(recipe.updated(batch_size=batch_size)),
        "history": [h.to_dict() for h in histories],
        "skipped_files": len(getattr(splits.train, "skipped", []) or []),
    }
    if out is not None:
        folder = save_model(model, out, extra={"accuracy": report.accuracy, "eval_split": eval_name},
                            force=force)
        (Path(folder) / "metrics.json").write_text(json.dumps(result, indent=2))
        result["out"] = str(folder)
    return result
