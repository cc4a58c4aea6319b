"""Exporting a fine-tuned model for use without tlkit (a phone, a C++ program, an edge device).

``tl.save_model`` keeps a state dict: to use it you need Python, torch, and the code that builds
the architecture. An *exported* model carries its computation with it:

- TorchScript (``export_torchscript``): one ``.pt`` file that ``torch.jit.load`` runs in Python
  without tlkit or timm, and that libtorch runs from C++ and PyTorch Mobile on phones.
  PyTorch now marks TorchScript as deprecated in favour of ``torch.export``; it is still the
  format most deployment tools read, and it is what this course shows.
- ONNX (``export_onnx``): the format ONNX Runtime, TensorRT and OpenVINO read. Needs extra
  packages (``pip install onnx onnxscript onnxruntime``).

An export can silently change what a model computes (a layer that behaves differently when traced,
a model left in train mode). So every export here is loaded back and compared with the original
on real inputs; if any prediction differs, the file is not written and you get an error instead.
"""
from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .evaluation import keep_modes


class ExportError(RuntimeError):
    """The exported model does not predict what the original predicts (or cannot be written)."""


def compare_predictions(original: nn.Module, exported: Any, images: torch.Tensor,
                        batch_size: int = 64) -> dict:
    """Run both models on ``images`` (N, C, H, W) and say how far apart their predictions are.

    Returns ``{"n", "same_class", "max_prob_diff"}``: how many images, on how many of them the
    predicted class is the same, and the largest difference between their class probabilities.
    ``exported`` is anything callable on a batch that returns logits.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a batch tensor (N, C, H, W), e.g. "
                         "torch.stack([test[i][0] for i in range(len(test))]).")
    same, worst = 0, 0.0
    with keep_modes(original), torch.inference_mode():
        original.eval()
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            p_orig = torch.softmax(original(batch).float(), dim=1)
            p_exp = torch.softmax(exported(batch).float(), dim=1)
            same += int((p_orig.argmax(1) == p_exp.argmax(1)).sum())
            worst = max(worst, float((p_orig - p_exp).abs().max()))
    return {"n": len(images), "same_class": same, "max_prob_diff": worst}


def _check_target(path: str | os.PathLike, force: bool) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; not overwriting it. Choose another name, or pass "
                              "force=True to replace it.")
    if path.exists() and path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as model.pt.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _verify(original: nn.Module, exported: Any, images: torch.Tensor, atol: float, what: str) -> dict:
    """Raise ExportError unless ``exported`` agrees with ``original`` on every image."""
    result = compare_predictions(original, exported, images)
    if result["same_class"] != result["n"] or result["max_prob_diff"] > atol:
        raise ExportError(
            f"The {what} model does not predict what the original does: same class on "
            f"{result['same_class']} of {result['n']} images, largest probability difference "
            f"{result['max_prob_diff']:.2g} (allowed {atol:g}). Nothing was written. Common causes: the "
            "model has Python control flow that depends on the input (tracing records one path only), "
            "or layers that behave differently in train mode.")
    return result


def export_torchscript(model: nn.Module, path: str | os.PathLike, example: torch.Tensor, *,
                       check: torch.Tensor | None = None, force: bool = False,
                       atol: float = 1e-4) -> Path:
    """Trace ``model`` on ``example`` (a batch), save it as TorchScript, and verify the file.

    The saved file is loaded back and must give the same class, and probabilities within
    ``atol``, on ``check`` (default: ``example``) as the original model; otherwise ExportError and
    nothing is written. The model's ``tlkit_config`` (classes, mean/std, size) goes into the file
    as ``config.json`` (see ``load_torchscript``). An existing file is kept unless ``force=True``.
    """
    path = _check_target(path, force)
    if not isinstance(example, torch.Tensor) or example.dim() != 4:
        raise ValueError("example must be a batch of images (N, C, H, W) like the ones the model will see.")
    config = getattr(model, "tlkit_config", None)
    extra = {"config.json": json.dumps(config.to_dict() if config is not None else {})}
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings(), keep_modes(model), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit is deprecated": see module notes
        model.eval()  # BatchNorm and dropout in inference mode, as they will be on the device
        traced = torch.jit.trace(model, example, check_trace=False)  # we check it ourselves below
        torch.jit.save(traced, str(tmp), _extra_files=extra)
        loaded = torch.jit.load(str(tmp), map_location="cpu")
    try:
        _verify(model, loaded, example if check is None else check, atol, "TorchScript")
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)  # only a verified file gets the real name
    return path


def load_torchscript(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """Load an exported TorchScript model (on the CPU, eval mode) with its config as ``.tlkit_config``.

    ``.tlkit_config`` is the plain dict stored at export time (classes, mean, std, input size),
    so that a program using the file knows how to prepare images and name the outputs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No exported model at {path}.")
    extra = {"config.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    module.tlkit_config = json.loads(extra["config.json"] or "{}")
    return module.eval()


def export_onnx(model: nn.Module, path: str | os.PathLike, example: torch.Tensor, *,
                force: bool = False, atol: float = 1e-4) -> Path:
    """Export ``model`` to ONNX and, when ``onnxruntime`` is installed, verify it like above.

    Needs ``pip install onnx onnxscript`` (and ``onnxruntime`` for the check). The batch dimension
    is left dynamic, so the file accepts any number of images; the weights are inside the one file.
    """
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"ONNX export needs {' and '.join(missing)}: pip install onnx onnxscript onnxruntime "
                          "(then run this again). TorchScript export (export_torchscript) needs nothing extra.")
    path = _check_target(path, force)
    tmp = path.with_name(path.name + ".tmp")
    with keep_modes(model), torch.no_grad():
        model.eval()
        torch.onnx.export(model, (example,), str(tmp), input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, external_data=False)
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])

        def run(batch: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"images": batch.numpy()})[0])

        try:
            _verify(model, run, example, atol, "ONNX")
        except Exception:
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(path)
    return path
