"""Freezing: choosing which parts of a pretrained network learn.

Freezing a parameter is one line of PyTorch: ``p.requires_grad = False``. The optimiser then has no
gradient for it and leaves it alone. Everything in this module is built on that line, plus two
facts learners trip over:

1. A model is a *sequence of parts*: a stem, blocks (early ones see edges, late ones see object
   parts), and a head (the classifier). ``parts(model)`` lists them in that order for every family
   tlkit supports, so "unfreeze the last 2 blocks" means the same thing for a ResNet and an
   EfficientNet.
2. "Frozen" BatchNorm layers still change in ``model.train()`` mode: ``requires_grad=False`` stops
   their weights from learning, but their *running statistics* keep updating on every forward pass.
   ``set_frozen_bn_eval`` puts them in eval mode; ``tlkit.fit`` calls it after every
   ``model.train()``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .models import head_name

# Containers whose children are the model's blocks (timm: blocks/stages/layers; torchvision: features).
_BLOCK_CONTAINERS = ("blocks", "stages", "layers", "features")
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass
class Part:
    """One freezable piece of a model: a name and the dotted paths of its modules."""

    name: str
    modules: list[str]

    def parameters(self, model: nn.Module):
        for path in self.modules:
            yield from model.get_submodule(path).parameters()


def parts(model: nn.Module) -> list[Part]:
    """The model's parts in input-to-output order: ``stem``, blocks, ..., then the head.

    Modules without parameters (ReLU, pooling) are skipped. Top-level layers before the first block
    are grouped into ``stem``; top-level layers between the last block and the head (e.g.
    EfficientNet's ``conv_head``/``bn2``) are grouped into ``neck``. A model that knows its own parts
    says so with a ``tlkit_parts()`` method (the text models: stem, ``layers.0``..., head).
    """
    if callable(getattr(model, "tlkit_parts", None)):
        return model.tlkit_parts()
    head = head_name(model)
    stem: list[str] = []
    blocks: list[Part] = []
    neck: list[str] = []
    for name, child in model.named_children():
        if name == head or not any(True for _ in child.parameters()):
            continue
        if name in _BLOCK_CONTAINERS:
            for sub, grandchild in child.named_children():
                if any(True for _ in grandchild.parameters()):
                    blocks.append(Part(f"{name}.{sub}", [f"{name}.{sub}"]))
        elif re.fullmatch(r"layer\d+", name):  # torchvision ResNet: layer1..layer4
            blocks.append(Part(name, [name]))
        elif not blocks:
            stem.append(name)
        else:
            neck.append(name)
    result = ([Part("stem", stem)] if stem else []) + blocks
    if neck:
        result.append(Part("neck", neck))
    return result + [Part("head", [head])]


def body_parts(model: nn.Module) -> list[Part]:
    """``parts(model)`` without the head: stem, blocks..., neck."""
    return [p for p in parts(model) if p.name != "head"]


def choose_parts(model: nn.Module, depths: Sequence[str | int] | None) -> list[Part]:
    """Body parts by name (``"blocks.3"``) or position (0 = stem); ``None``: four spread from first to last."""
    body = body_parts(model)
    names = [p.name for p in body]
    if depths is None:  # four parts spread from the first to the last
        picks = sorted({round(i * (len(body) - 1) / 3) for i in range(4)})
        return [body[i] for i in picks]
    chosen = []
    for d in depths:
        if isinstance(d, int) and not isinstance(d, bool) and -len(body) <= d < len(body):
            chosen.append(body[d])
        elif isinstance(d, str) and d in names:
            chosen.append(body[names.index(d)])
        else:
            raise ValueError(f"Unknown depth {d!r}: use a part name from {names} or an index 0..{len(body) - 1}.")
    return chosen


def _set(params, trainable: bool) -> None:
    for p in params:
        p.requires_grad = trainable  # the whole idea of freezing, in one line


def freeze(model: nn.Module) -> nn.Module:
    """Freeze everything except the classifier head (feature extraction). Returns the model."""
    _set(model.parameters(), False)
    _set(model.get_submodule(head_name(model)).parameters(), True)
    set_frozen_bn_eval(model)
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """Make every parameter trainable (full fine-tuning). Returns the model."""
    _set(model.parameters(), True)
    return model


def unfreeze_last(model: nn.Module, n: int) -> nn.Module:
    """Train the head plus the last ``n`` parts before it; freeze the rest.

    ``n=0`` is the same as ``freeze(model)``; ``n >= len(parts(model)) - 1`` trains everything.
    The neck (if any) counts as one part, so for EfficientNet ``n=1`` trains conv_head + head.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    all_parts = parts(model)
    body = all_parts[:-1]
    _set(model.parameters(), False)
    to_train = body[max(len(body) - n, 0):] if n else []
    for part in to_train + all_parts[-1:]:
        _set(part.parameters(model), True)
    set_frozen_bn_eval(model)
    return model


def set_trainable(model: nn.Module, trainable: str | int = "head", freeze_bn: bool = False) -> nn.Module:
    """A whole freezing plan in one call: which parts learn, and whether BatchNorm layers learn.

    ``trainable``: ``"head"`` (feature extraction: ``freeze``), a number n (the head and the last n
    parts: ``unfreeze_last``) or ``"all"`` (full fine-tuning: ``unfreeze``). ``freeze_bn=True`` then
    freezes every BatchNorm layer too, weights and running statistics (``freeze_batchnorm``): the
    safe choice with few images and small batches. Returns the model.
    """
    if trainable == "head":
        freeze(model)
    elif trainable == "all":
        unfreeze(model)
    elif isinstance(trainable, int) and not isinstance(trainable, bool):
        unfreeze_last(model, trainable)
    else:
        raise ValueError(f"trainable must be 'head', 'all' or a number of parts, got {trainable!r}.")
    if freeze_bn:
        freeze_batchnorm(model)
    return model


def _matching(model: nn.Module, names: str | list[str]) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    all_modules = dict(model.named_modules())
    missing = [n for n in names if n not in all_modules]
    if missing:
        import difflib

        hints = {n: difflib.get_close_matches(n, list(all_modules), n=3) for n in missing}
        raise ValueError(
            f"No module named {missing} in {type(model).__name__}. Close names: {hints}. "
            "See tlkit.freeze_summary(model) for the part names."
        )
    return names


def unfreeze_by_name(model: nn.Module, names: str | list[str]) -> nn.Module:
    """Make the named modules (dotted paths, e.g. ``"blocks.6"``, ``"layer4"``) trainable."""
    for name in _matching(model, names):
        _set(model.get_submodule(name).parameters(), True)
    return model


def freeze_by_name(model: nn.Module, names: str | list[str]) -> nn.Module:
    """Freeze the named modules (dotted paths); their BatchNorm layers go to eval mode."""
    for name in _matching(model, names):
        _set(model.get_submodule(name).parameters(), False)
    set_frozen_bn_eval(model)
    return model


def freeze_batchnorm(model: nn.Module) -> int:
    """Freeze every BatchNorm layer: its scale/shift stop learning and its statistics stop moving.

    Why: with small data and small batches, BatchNorm's running statistics are rebuilt from a few
    unusual batches and can wreck a pretrained network (measured in benchmarks/README.md: training
    all layers on 24 images ended at chance with BatchNorm learning, 100% with it frozen). The
    convolutions still fine-tune. Returns how many layers were frozen.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, _BN_TYPES):
            _set(module.parameters(recurse=False), False)
            count += 1
    set_frozen_bn_eval(model)
    return count


def set_frozen_bn_eval(model: nn.Module) -> int:
    """Put BatchNorm layers whose parameters are all frozen into eval mode; return how many.

    Why: in train mode BatchNorm normalises with the current batch's statistics and *updates its
    running mean/variance*, even when ``requires_grad`` is False. A frozen body would then drift
    away from what the pretrained weights expect (pytorch/vision#2079). Call this after every
    ``model.train()``; ``tlkit.fit`` does.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, _BN_TYPES):
            params = list(module.parameters(recurse=False))
            if not any(p.requires_grad for p in params):  # BN without affine params counts as frozen
                module.eval()
                count += 1
    return count


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those that will learn)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class FreezeSummary:
    """A table of parts: name, parameters, trainable. Renders as text and as HTML in Jupyter."""

    rows: list[dict]

    @property
    def trainable(self) -> int:
        return sum(r["trainable_params"] for r in self.rows)

    @property
    def total(self) -> int:
        return sum(r["params"] for r in self.rows)

    def __repr__(self) -> str:
        lines = [f"{'part':<14}{'parameters':>12}  trainable"]
        for r in self.rows:
            lines.append(f"{r['part']:<14}{r['params']:>12,}  {r['status']}")
        lines.append(f"{'total':<14}{self.total:>12,}  {self.trainable:,} trainable "
                     f"({100 * self.trainable / max(self.total, 1):.1f}%)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td>{r['part']}</td><td style='text-align:right'>{r['params']:,}</td>"
            f"<td>{r['status']}</td></tr>" for r in self.rows
        )
        return (
            "<table><tr><th>part</th><th>parameters</th><th>trainable</th></tr>" + body +
            f"<tr><td><b>total</b></td><td style='text-align:right'>{self.total:,}</td>"
            f"<td>{self.trainable:,} trainable ({100 * self.trainable / max(self.total, 1):.1f}%)"
            "</td></tr></table>"
        )


def freeze_summary(model: nn.Module) -> FreezeSummary:
    """Which parts train: one row per part with its parameter count and yes / no / partly."""
    rows = []
    for part in parts(model):
        params = list(part.parameters(model))
        n = sum(p.numel() for p in params)
        n_train = sum(p.numel() for p in params if p.requires_grad)
        status = "yes" if n_train == n else ("no" if n_train == 0 else "partly")
        rows.append({"part": part.name, "params": n, "trainable_params": n_train, "status": status})
    return FreezeSummary(rows)


def no_weight_decay(name: str, p: torch.Tensor) -> bool:
    """The one rule for which parameters get no weight decay: biases and norm scales (1-D tensors).

    Weight decay pulls weights towards zero; for a bias or a norm's scale that only hurts.
    """
    return p.ndim <= 1 or name.endswith(".bias")


def param_groups(model: nn.Module, lr: float, lr_mult: float = 1.0,
                 weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups for discriminative learning rates.

    The head gets ``lr``; each part before it gets ``lr_mult`` times the LR of the part after it
    (ULMFiT, Howard & Ruder 2018: early layers hold general features and need only small changes).
    ``lr_mult=1.0`` gives every part the same LR. Only trainable parameters are included; biases and
    norm parameters get no weight decay (``no_weight_decay``). A hand-written model whose head tlkit
    cannot find (no ``head``/``fc``/``classifier``) still trains, as one part called "all", as long
    as ``lr_mult`` is 1.
    """
    if not 0 < lr_mult <= 1:
        raise ValueError(f"lr_mult must be in (0, 1], got {lr_mult}: earlier parts should not learn faster.")
    named = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not named:
        raise ValueError("Nothing to train: every parameter is frozen (requires_grad=False). "
                         "Call tlkit.freeze(model) to train the head, or tlkit.unfreeze(model).")
    try:
        all_parts = parts(model)
    except ValueError:
        if lr_mult != 1.0:
            raise
        all_parts = [Part("all", [""])]
    # Anything that no part covers (rare custom layers) learns at the base LR of the stem.
    all_parts.append(Part("other", [""]))
    seen: set[int] = set()
    groups: list[dict] = []
    for depth, part in enumerate(reversed(all_parts[:-1])):  # head first, depth 0
        groups += _groups_of(part, named, seen, lr * lr_mult**depth, weight_decay)
    groups += _groups_of(all_parts[-1], named, seen, lr * lr_mult ** (len(all_parts) - 2), weight_decay)
    return groups


def _groups_of(part: Part, named: dict, seen: set[int], lr: float, weight_decay: float) -> list[dict]:
    """The (up to two) parameter groups of one part: with weight decay, and without."""
    decay, no_decay = [], []
    for path in part.modules:
        prefix = f"{path}." if path else ""
        for name, p in named.items():
            if name.startswith(prefix) and id(p) not in seen:
                seen.add(id(p))
                (no_decay if no_weight_decay(name, p) else decay).append(p)
    return [{"name": part.name + suffix, "params": params, "lr": lr, "weight_decay": wd}
            for suffix, params, wd in (("", decay, weight_decay), (".no_decay", no_decay, 0.0)) if params]
