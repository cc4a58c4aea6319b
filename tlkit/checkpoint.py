"""Saving and loading fine-tuned models so that they load anywhere, years later.

A checkpoint is a folder with two plain files:
- ``model.pt``: the state dict only (tensors), loaded with ``torch.load(..., weights_only=True)``,
  which cannot run code hidden in the file (pickled objects can);
- ``config.json``: architecture name, classes and preprocessing, readable by a person.
To rebuild, tlkit creates the architecture from the name (no download: weights come from the
file) and loads the tensors. No pickled notebook functions, so nothing breaks when a notebook moves.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from .config import ModelConfig, get_config

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says why and what to do."""


def save_model(model: nn.Module, directory: str | os.PathLike, *, extra: dict | None = None,
               force: bool = False) -> Path:
    """Save ``model`` (state dict + config.json) into ``directory``; returns the folder.

    Refuses to overwrite an existing checkpoint unless ``force=True``, so a good model is never
    lost to a second run. ``extra`` (e.g. metrics) is stored in config.json under ``"extra"``.
    """
    folder = Path(directory)
    if (folder / WEIGHTS_FILE).exists() and not force:
        raise FileExistsError(
            f"{folder / WEIGHTS_FILE} already exists; not overwriting it. Choose another folder, "
            "or pass force=True (CLI: --force) to replace it."
        )
    folder.mkdir(parents=True, exist_ok=True)
    config = get_config(model).to_dict()
    if extra:
        config["extra"] = extra
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    # Write to temporary names, then rename: an interrupted save never leaves half a checkpoint.
    tmp_weights, tmp_config = folder / (WEIGHTS_FILE + ".tmp"), folder / (CONFIG_FILE + ".tmp")
    torch.save(state, tmp_weights)
    tmp_config.write_text(json.dumps(config, indent=2))
    tmp_weights.replace(folder / WEIGHTS_FILE)
    tmp_config.replace(folder / CONFIG_FILE)
    return folder


def read_config(directory: str | os.PathLike) -> ModelConfig:
    """The ``ModelConfig`` stored in a checkpoint folder."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise CheckpointError(f"{path} not found: is {directory} a folder written by tlkit.save_model "
                              "or `tlkit finetune --out`?")
    return ModelConfig.from_dict(json.loads(path.read_text()))


def load_model(directory: str | os.PathLike, num_classes: int | None = None) -> nn.Module:
    """Rebuild a saved model: architecture from config.json, tensors from model.pt (eval mode).

    ``num_classes``, if given, must match the checkpoint; a mismatch is an error that says how many
    classes the checkpoint was trained for.
    """
    from .models import load_pretrained

    config = read_config(directory)
    if num_classes is not None and num_classes != config.num_classes:
        raise CheckpointError(
            f"The checkpoint in {directory} was trained for {config.num_classes} classes "
            f"({', '.join(config.classes[:10])}), not {num_classes}. Load it without num_classes, or "
            "fine-tune a new model for your classes."
        )
    model = load_pretrained(config.name, num_classes=config.num_classes, pretrained=False,
                            classes=config.classes or None)
    load_weights(model, Path(directory) / WEIGHTS_FILE)
    model.tlkit_config = config
    return model.eval()


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a state dict file into ``model`` safely, explaining shape mismatches in words."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.exists():
        raise CheckpointError(f"No weights file at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, a pickled object, not a torch file at all
        raise CheckpointError(f"Could not read {path} as a tensors-only checkpoint ({err}). "
                              "Was it written by tlkit.save_model?") from None
    own = model.state_dict()
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
             if k in own and v.shape != own[k].shape]
    if wrong:
        key, theirs, ours = wrong[0]
        raise CheckpointError(
            f"{path} does not fit this model: {key} is {theirs} in the file but {ours} in the model"
            f"{' (the head: the checkpoint was trained for a different number of classes)' if len(wrong) <= 2 else ''}. "
            "Build the model with the checkpoint's number of classes, e.g. tlkit.load_model(folder)."
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} is for a different architecture: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}.")
    return model
