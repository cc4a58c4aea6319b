"""Shared fixtures. Every test runs offline: TLKIT_OFFLINE=1 makes any download attempt fail at once."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("TLKIT_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # Tests run on 2-core machines; more threads than cores only slows small models down.
    torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def lite0_imagenet():
    """The offline EfficientNet-Lite0 with its ImageNet head (loaded once per session)."""
    import tlkit

    return tlkit.load_pretrained("efficientnet_lite0")
