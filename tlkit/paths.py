"""Where tlkit keeps files: generated data sets, downloaded weights, runs.

Everything lives under one folder so that a workshop can pre-fill it (``tlkit fetch``) and copy it
to 30 laptops. Set ``TLKIT_HOME`` to move it; the default is ``~/.cache/tlkit``.
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The root of tlkit's cache (``$TLKIT_HOME`` or ``~/.cache/tlkit``)."""
    return Path(os.environ.get("TLKIT_HOME") or Path.home() / ".cache" / "tlkit").expanduser()


def data_dir() -> Path:
    """Generated and downloaded data sets (``$TLKIT_DATA`` overrides)."""
    return Path(os.environ.get("TLKIT_DATA") or home() / "data").expanduser()


def torch_hub_dir() -> Path:
    """Where torchvision looks for downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"
