"""lr_find: the LR range test leaves the model exactly as it found it and suggests a sensible LR."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlkit.lr_finder import LRFindResult, lr_find, suggest_lr


def blobs(n: int = 96, seed: int = 0) -> TensorDataset:
    """3 classes of 3 x 8 x 8 images whose mean brightness per channel tells the class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = 0.5 * torch.randn(n, 3, 8, 8, generator=g)
    images[torch.arange(n), labels] += 1.0
    return TensorDataset(images, labels)


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))

    def forward(self, x):
        return self.head(self.features(x))


def test_range_test_restores_weights_buffers_and_modes():
    torch.manual_seed(0)
    model = SmallNet()
    model.eval()
    model.head.train()  # a mixed state, which must come back exactly
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]

    result = lr_find(model, blobs(), num_steps=30, batch_size=16, device="cpu", progress=False)

    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k  # includes BN running_mean/var/num_batches_tracked
    assert [m.training for m in model.modules()] == modes
    assert isinstance(result, LRFindResult)


def test_lrs_increase_exponentially_and_suggestion_is_inside_the_range():
    torch.manual_seed(0)
    result = lr_find(SmallNet(), blobs(), start_lr=1e-5, end_lr=10, num_steps=40, batch_size=16,
                     device="cpu", progress=False)
    lrs = result.lrs
    assert 5 <= len(lrs) <= 40
    assert lrs[0] == pytest.approx(1e-5)
    ratios = np.diff(np.log(lrs))
    assert np.allclose(ratios, math.log(1e6) / 39)  # equal steps in log(LR)
    assert len(result.losses) == len(result.raw_losses) == len(lrs)
    assert lrs[0] <= result.suggestion <= lrs[-1]
    assert result.suggestion <= result.min_loss_lr  # the steepest point comes before the minimum
    assert all(math.isfinite(x) for x in result.losses)
    assert "Suggested lr=" in repr(result)


def test_loader_is_cycled_when_it_has_fewer_batches_than_steps():
    torch.manual_seed(0)
    result = lr_find(SmallNet(), blobs(48), start_lr=1e-6, end_lr=1e-3, num_steps=20, batch_size=16,
                     diverge_factor=1e9, device="cpu", progress=False)
    assert len(result.lrs) == 20  # 3 batches per pass, 20 steps: the loader restarted
    assert result.lrs[-1] == pytest.approx(1e-3)
    assert not result.stopped_early


def test_stops_early_when_the_loss_explodes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    result = lr_find(model, blobs(), start_lr=1e-4, end_lr=1e4, num_steps=60, batch_size=16,
                     diverge_factor=2.0, device="cpu", progress=False)
    assert result.stopped_early
    assert len(result.lrs) < 60


def test_suggestion_rule_on_a_known_curve():
    lrs = np.logspace(-6, 0, 61)
    x = np.log10(lrs)
    # Falls fastest at lr=1e-3 (a logistic step centred at x=-3), lowest at 1e-2, then blows up.
    losses = 2.0 - 1.5 / (1 + np.exp(-4 * (x + 3))) + np.where(x > -2, 5 * (x + 2) ** 2, 0)
    assert suggest_lr(list(lrs), list(losses)) == pytest.approx(1e-3, rel=0.3)
    # Lowest loss at the very start: nothing to go by but the fallback (that LR / 10, kept in range).
    assert suggest_lr([1e-3, 1e-2, 1e-1], [0.5, 1.0, 2.0]) == pytest.approx(1e-3)
    assert suggest_lr([], []) is None
