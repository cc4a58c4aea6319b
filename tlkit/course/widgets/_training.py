"""What the training explorers share: the data and pretrained model every run starts from, cached
features, and live curves from ``tlkit.fit``.

Every run of an explorer must start from the *same* place, or two runs could differ for reasons
the learner did not choose. ``TrainingSetup`` loads the pretrained model once (its new head
initialised from a fixed seed) and hands out copies; runs also pass the same ``seed`` to ``fit``,
so that batches come in the same order.

Speed on a 2-core laptop comes from three choices: small images (96 px), few images per class,
and, when only the head trains, features computed once (``tlkit.cached_features``) so that an
epoch costs milliseconds.
"""
from __future__ import annotations

import contextlib
import copy
import math
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ...callbacks import Callback

from ...data import DataSplits, eval_transforms, few_shot, train_transforms
from ...feature_cache import cached_features
from ...models import head_name
from ...train import History, fit

ModelSource = str | nn.Module | Callable[[], nn.Module]
# Pretrained models loaded by name, shared by every explorer (each run trains a copy, never these).
_PRETRAINED: OrderedDict[tuple, nn.Module] = OrderedDict()


def load_course_data(data: DataSplits | None) -> DataSplits:
    """``data`` itself, or the offline course data set when it is None."""
    if data is None:
        from ...data import course_data

        return course_data("course")
    if not isinstance(data, DataSplits):
        raise TypeError(f"data must be a tlkit DataSplits (e.g. tl.course_data()), got {type(data).__name__}.")
    return data


class TrainingSetup:
    """The data (as small, fixed subsets) and the pretrained model that every run starts from.

    ``model`` is a name for ``tlkit.load_pretrained`` (a new head for the data's classes is added),
    a model (its current weights are the start of every run), or a function returning one.
    ``per_class``/``val_per_class``: images per class in the training/validation subsets
    (None: all of them). Nothing is loaded until it is first needed.
    """

    def __init__(self, data: DataSplits | None = None, model: ModelSource = "efficientnet_lite0", *,
                 image_size: int = 96, per_class: int | None = 10, val_per_class: int | None = 10,
                 seed: int = 0):
        if not isinstance(image_size, int) or not 16 <= image_size <= 512:
            raise ValueError(f"image_size must be a whole number of pixels from 16 to 512, got {image_size!r}.")
        for name, value in (("per_class", per_class), ("val_per_class", val_per_class)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1 or None (all images), got {value!r}.")
        self.data = load_course_data(data)
        self.classes = list(self.data.classes)
        self.model_source = model
        self.image_size, self.per_class, self.val_per_class, self.seed = image_size, per_class, val_per_class, seed
        self._base: nn.Module | None = None
        self._features: tuple[TensorDataset, TensorDataset] | None = None

    # ---- the model
    @property
    def base(self) -> nn.Module:
        """The pretrained model every run copies (never trained itself)."""
        if self._base is None:
            self._base = self._load_model()
        return self._base

    def _load_model(self) -> nn.Module:
        from ...device import seed_everything

        source = self.model_source
        if isinstance(source, str):
            key = (source, tuple(self.classes), self.seed)
            if key not in _PRETRAINED:
                from ...models import load_pretrained

                seed_everything(self.seed)  # the new head starts from the same random weights every time
                _PRETRAINED[key] = load_pretrained(source, num_classes=len(self.classes), classes=self.classes)
                while len(_PRETRAINED) > 2:
                    _PRETRAINED.popitem(last=False)
            return _PRETRAINED[key]
        seed_everything(self.seed)
        model = source if isinstance(source, nn.Module) else source()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a name, an nn.Module or a function returning one; "
                            f"the function returned {type(model).__name__}.")
        return model

    def fresh_model(self) -> nn.Module:
        """A copy of the pretrained model: the starting point of one run."""
        return copy.deepcopy(self.base)

    @property
    def config(self):
        from ...config import get_config

        return get_config(self.base)

    # ---- the data
    def _subset(self, ds, k: int | None):
        return ds if k is None else few_shot(ds, k, seed=self.seed)

    def train_set(self, augment: str | list[str] = "none", per_class: int | None = None) -> Dataset:
        """The training subset with ``augment`` (``"none"``: the deterministic eval transform)."""
        k = per_class if per_class is not None else self.per_class
        transform = train_transforms(self.config, self.image_size, augment=augment)
        return self._subset(self.data.train, k).with_transform(transform)

    def val_set(self) -> Dataset:
        return self._subset(self.data.val, self.val_per_class).with_transform(
            eval_transforms(self.config, self.image_size))

    def features(self, explorer) -> tuple[TensorDataset, TensorDataset]:
        """Body features of the training and validation subsets, computed once (with progress).

        ``tlkit.cached_features`` remembers them by body weights, images and transform, so another
        explorer (or a lesson) that already computed the same features gets them at once. They are
        computed on a copy of the model: extraction swaps the head out for a moment, and the
        pretrained model is shared by every explorer.
        """
        if self._features is None:
            train, val = self.train_set("none"), self.val_set()
            batch = 32
            explorer.begin(math.ceil(len(train) / batch) + math.ceil(len(val) / batch),
                           f"Computing features of {len(train)} + {len(val)} images once (the body is frozen)...")
            model = self.fresh_model()
            handle = model.register_forward_hook(explorer.tick_hook)
            try:
                self._features = (cached_features(model, train, batch_size=batch),
                                  cached_features(model, val, batch_size=batch))
            finally:
                handle.remove()
        return self._features

    def fresh_head(self) -> nn.Module:
        """A copy of the new head alone (for training on cached features)."""
        return copy.deepcopy(getattr(self.base, head_name(self.base)))

    def with_head(self, head: nn.Module) -> nn.Module:
        """A full model: a copy of the pretrained body with ``head`` (trained on features) on top."""
        model = self.fresh_model()
        if isinstance(head, nn.Sequential) and isinstance(head[0], nn.Dropout):
            head = head[-1]  # dropout does nothing at prediction time
        setattr(model, head_name(model), copy.deepcopy(head))
        return model.eval()


@contextlib.contextmanager
def one_thread():
    """Run the block with one CPU thread for PyTorch, then restore the previous count.

    Why: a head on cached features multiplies tiny matrices. Splitting such small work over
    several threads gains nothing, and when the CPU is busy (a browser, another notebook) the
    threads wait for each other: measured on a busy 2-core machine, an LR range test on features
    took 8 s with 2 threads and 0.2 s with 1. The setting is global to the process while it lasts.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------- live curves
class ExplorerCallback(Callback):
    """What an explorer needs from a ``tlkit.fit`` run: progress, a working Stop, and each epoch's record.

    ``fit`` calls it after every training batch (one tick of the explorer's progress bar; a pressed
    Stop raises ``KeyboardInterrupt`` there, which ``fit`` treats like Ctrl-C) and after every epoch
    (``on_epoch(record)`` with fit's own record, and one more tick for the validation pass).
    """

    def __init__(self, explorer, on_epoch: Callable[[dict], None]):
        self.explorer, self.on_epoch = explorer, on_epoch

    def on_fit_start(self, run) -> None:
        self.explorer.begin(run.epochs * (run.steps_per_epoch + 1), f"Training for {run.epochs} epoch(s)...")

    def on_batch_end(self, run) -> None:
        self.explorer.tick()

    def on_epoch_end(self, run) -> None:
        self.explorer.tick()
        self.on_epoch(dict(run.record))


def fit_live(explorer, model: nn.Module, train: Dataset, val: Dataset, *, epochs: int, batch_size: int,
             on_epoch: Callable[[dict], None], **fit_kwargs) -> History:
    """``tlkit.fit`` with the explorer's progress bar, its Stop button and ``on_epoch`` after every epoch."""
    callback = ExplorerCallback(explorer, on_epoch)
    batch_size = min(batch_size, len(train))  # a few images per class: one batch, without fit's warning
    return fit(model, train, val, epochs=epochs, batch_size=batch_size, progress=False, verbose=False,
               callbacks=[callback], **fit_kwargs)
