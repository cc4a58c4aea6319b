"""Find the largest batch size that fits in the accelerator's memory (``tl.find_batch_size``).

On a GPU the batch size is limited by memory: activations for the backward pass grow linearly with
it. Guessing too high ends in ``CUDA out of memory``; guessing too low wastes the GPU. The finder
does what you would do by hand: try a training step at a batch size, double it while it fits,
and when a step runs out of memory, back off to the last size that worked.

On the CPU nothing is probed: memory is large and speed barely depends on the batch size, so the
finder returns ``start`` (the course's lessons use 16–32).
"""
from __future__ import annotations

import torch
from torch import nn

#: Errors that mean "this batch does not fit". MPS reports a RuntimeError with this text.
_OOM_TEXT = ("out of memory", "MPS backend out of memory")


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA's ``OutOfMemoryError`` and the RuntimeErrors other backends raise instead."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(text in str(err) for text in _OOM_TEXT)


def free_cached_memory(device: torch.device) -> None:
    """Give the memory PyTorch's allocator keeps cached back to the GPU (after an out-of-memory error)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def _try_step(model: nn.Module, input_shape: tuple[int, ...], batch_size: int,
              device: torch.device, train: bool) -> None:
    """One forward (and, for training, backward) pass on random data of ``batch_size`` images.

    The loss is a stand-in (the mean square of the outputs): the memory a backward pass needs
    depends on the activations, not on which loss produced the gradient.
    """
    images = torch.randn(batch_size, *input_shape, device=device)
    if train:
        model(images).float().pow(2).mean().backward()
        model.zero_grad(set_to_none=True)
    else:
        with torch.inference_mode():
            model(images)


def find_batch_size(model: nn.Module, input_shape: tuple[int, ...] = (3, 128, 128), *,
                    device: torch.device | str | None = None, start: int = 32, max_size: int = 1024,
                    train: bool = True, safety: float = 0.9,
                    force_probe: bool = False) -> int:
    """The largest power-of-two batch size (times ``safety``) for which a step fits in memory.

    ``input_shape`` is one image's shape (C, H, W). Doubles from ``start`` up to ``max_size``;
    on out-of-memory, backs off to the last size that worked (halving ``start`` if even that
    fails). ``safety`` leaves headroom for what the probe does not see (the optimiser's state, a
    larger last batch). The model is left as it was: gradients are cleared and BatchNorm statistics
    restored.
    On the CPU the finder returns ``start`` without probing unless ``force_probe=True``.
    """
    from .device import get_device

    device = get_device(device)
    if start < 1 or max_size < start:
        raise ValueError(f"need 1 <= start <= max_size, got start={start}, max_size={max_size}")
    if device.type == "cpu" and not force_probe:
        return start
    was_training = model.training
    model.to(device).train(train)
    # Train-mode passes update BatchNorm's running statistics: keep a copy to put back.
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    fits, size, ran_out = 0, start, False
    try:
        while size <= max_size:
            try:
                _try_step(model, input_shape, size, device, train)
            except Exception as err:  # only out-of-memory means "too big"; anything else is a real bug
                if not is_out_of_memory(err):
                    raise
                free_cached_memory(device)
                ran_out = True
                if fits:                 # the last size that worked is the answer
                    break
                if size == 1:
                    raise RuntimeError("Even a batch of one image does not fit in memory: use smaller "
                                       "images (image_size) or a smaller model.") from err
                size //= 2               # nothing fitted yet: search downwards from start
                continue
            fits = size
            if ran_out:                  # came down from a start that did not fit: done
                break
            size *= 2
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        free_cached_memory(device)
    # Headroom only matters when memory was the limit; max_size is the caller's own cap.
    return max(1, int(fits * safety)) if ran_out else fits
