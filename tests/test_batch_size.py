"""The batch-size finder backs off on out-of-memory (simulated: no GPU is needed)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tlkit.batch_size import find_batch_size, is_out_of_memory


class MemoryLimited(nn.Module):
    """A tiny classifier that 'runs out of memory' above ``limit`` images per batch, like a GPU would."""

    def __init__(self, limit: int, error=torch.cuda.OutOfMemoryError):
        super().__init__()
        self.limit, self.error, self.tried = limit, error, []
        self.head = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):
        self.tried.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.head(x.flatten(1))


@pytest.mark.parametrize("limit, expected", [(100, 57), (64, 57), (1000, 460), (5, 3)])
def test_doubles_until_out_of_memory_then_backs_off(limit, expected):
    model = MemoryLimited(limit)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    size = find_batch_size(model, (3, 8, 8), device="cpu", start=16, max_size=4096, force_probe=True)
    assert size == expected  # the largest power of two <= limit, times 0.9 headroom
    assert size <= limit
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights untouched
    assert all(p.grad is None for p in model.parameters())


def test_a_start_that_does_not_fit_searches_downwards():
    model = MemoryLimited(20)
    assert find_batch_size(model, (3, 8, 8), device="cpu", start=64, force_probe=True) == 14  # 16 * 0.9
    assert model.tried[:3] == [64, 32, 16]


def test_the_callers_cap_is_kept_without_headroom_when_memory_is_not_the_limit():
    assert find_batch_size(MemoryLimited(10_000), (3, 8, 8), device="cpu", start=8, max_size=64,
                           force_probe=True) == 64


def test_mps_style_runtime_errors_count_as_out_of_memory_but_other_errors_do_not():
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 3 GB)"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    model = MemoryLimited(40, error=RuntimeError)
    assert find_batch_size(model, (3, 8, 8), device="cpu", start=8, force_probe=True) == 28
    broken = MemoryLimited(40, error=ValueError)  # a real bug is not hidden as "too big"
    with pytest.raises(ValueError):
        find_batch_size(broken, (3, 8, 8), device="cpu", start=8, force_probe=True)


def test_nothing_fits_says_what_to_do():
    with pytest.raises(RuntimeError, match="smaller"):
        find_batch_size(MemoryLimited(0), (3, 8, 8), device="cpu", start=4, force_probe=True)


def test_on_the_cpu_it_does_not_probe():
    model = MemoryLimited(2)
    assert find_batch_size(model, (3, 8, 8), device="cpu", start=32) == 32
    assert model.tried == []
    with pytest.raises(ValueError, match="start"):
        find_batch_size(model, (3, 8, 8), device="cpu", start=0)


def test_a_real_backbone_is_left_exactly_as_it_was():
    import tlkit as tl

    model = tl.load_pretrained("efficientnet_lite0", num_classes=3)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert find_batch_size(model, (3, 32, 32), device="cpu", start=2, max_size=4, force_probe=True) == 4
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics too
    assert all(p.grad is None for p in model.parameters())
