"""How a model wants its images: the small, plain record every layer of tlkit passes around.

Each pretrained backbone was trained on images prepared in one particular way (size, mean/std,
resize interpolation). Feeding it images prepared differently is one of the most common silent bugs
in transfer learning, so tlkit attaches this record to every model it builds
(``model.tlkit_config``) and the data presets read it from there.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ModelConfig:
    """Preprocessing and identity of a model, saved next to every checkpoint as plain JSON.

    Attributes:
        name: the name given to ``tlkit.load_pretrained`` (e.g. ``"efficientnet_lite0"``).
        input_size: the (height, width) the weights were trained at.
        mean, std: per-channel normalisation for RGB inputs scaled to [0, 1].
        interpolation: ``"bilinear"`` or ``"bicubic"``: how images are resized.
        num_classes: outputs of the classifier head.
        classes: class names, in output order (empty when unknown).
        pretrained: where the weights came from (``"imagenet"``, ``"none"``, or a file path).
        modality: ``"image"``, or ``"text"`` for the text encoders (``tlkit.text``): their input is token
            ids, made by the tokenizer that travels with the model; the image fields do not apply.
        max_length: text models only: the most tokens of a text the model reads (longer texts are cut).
    """

    name: str
    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    num_classes: int = 1000
    classes: list[str] = field(default_factory=list)
    pretrained: str = "imagenet"
    modality: str = "image"
    max_length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.modality == "text":  # no pixels: leave out what would only mislead a reader of config.json
            for key in ("input_size", "mean", "std", "interpolation"):
                d.pop(key)
            return d
        d.pop("max_length")
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for key in ("input_size", "mean", "std"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def get_config(model: Any) -> ModelConfig:
    """The ``ModelConfig`` attached to a model by tlkit, or a clear error if there is none."""
    cfg = getattr(model, "tlkit_config", None)
    if cfg is None:
        raise ValueError(
            "This model has no tlkit preprocessing config. Build it with tlkit.load_pretrained(...), "
            "or attach one: model.tlkit_config = tlkit.ModelConfig(name=..., mean=..., std=...)."
        )
    return cfg
