"""The offline text encoder (tlkit/text.py): all-MiniLM-L6-v2 as an nn.Module that tlkit's tools accept."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import tlkit as tl
from tlkit.config import ModelConfig


@pytest.fixture(scope="module")
def minilm():
    torch.manual_seed(0)
    return tl.load_pretrained("minilm", num_classes=3, classes=["negative", "neutral", "positive"])


def test_parts_freezing_and_the_new_head(minilm):
    assert [p.name for p in tl.parts(minilm)] == ["stem"] + [f"layers.{i}" for i in range(6)] + ["head"]
    total = sum(p.numel() for p in minilm.parameters())
    assert 22.5e6 < total < 22.8e6  # 22.7M in the encoder (its unused pooler left out) + a 384 x 3 head
    tl.freeze(minilm)
    assert sum(p.numel() for p in minilm.parameters() if p.requires_grad) == 384 * 3 + 3
    tl.unfreeze_last(minilm, 1)  # the last transformer layer, and the head
    trainable = {n.split(".")[0] + "." + n.split(".")[3] if n.startswith("body.encoder") else n.split(".")[0]
                 for n, p in minilm.named_parameters() if p.requires_grad}
    assert trainable == {"body.5", "classifier"}
    assert minilm.tlkit_config.classes == ["negative", "neutral", "positive"]


def test_related_sentences_are_close_and_unrelated_ones_are_not():
    encoder = tl.load_pretrained("minilm")  # no head: the sentence embedding itself
    with torch.inference_mode():
        e = F.normalize(encoder(["This medicine helped my headache a lot.",
                                 "The pills relieved my migraine quickly.",
                                 "The stock market fell sharply today."]), dim=1)
    related, unrelated = float(e[0] @ e[1]), float(e[0] @ e[2])
    assert e.shape == (3, 384)
    assert related > 0.6 and unrelated < 0.2, (related, unrelated)


def test_padding_changes_nothing(minilm):
    short, long = "Great drug.", "It took weeks, but in the end the side effects faded and my skin cleared up."
    with torch.inference_mode():
        alone = minilm.embed(minilm.tokenize([short]))
        batched = minilm.embed(minilm.tokenize([short, long]))[:1]
        padded = minilm.embed(tl.text_transform(minilm)(short).unsqueeze(0))  # 256 ids, mostly padding
    assert torch.allclose(alone, batched, atol=1e-5) and torch.allclose(alone, padded, atol=1e-5)


def test_features_and_training_go_through_the_usual_tools(minilm):
    texts = ["awful, it made me sick", "terrible side effects", "it did nothing either way",
             "no change at all", "wonderful, it worked", "best medicine I have taken"] * 2
    data = tl.TextDataset(texts, [0, 0, 1, 1, 2, 2] * 2, ["negative", "neutral", "positive"])
    tokens = data.with_transform(tl.text_transform(minilm))
    feats, labels = tl.extract_features(minilm, tokens).tensors
    with torch.inference_mode():
        assert torch.allclose(feats, minilm.embed(minilm.tokenize(texts)), atol=1e-5)
    assert labels.tolist() == data.labels.tolist()
    tl.freeze(minilm)
    history = tl.fit(minilm, tokens, None, epochs=15, lr=3e-2, batch_size=6, progress=False, verbose=False, seed=0)
    assert history["train_loss"][-1] < history["train_loss"][0] * 0.6
    assert tl.evaluate(minilm, tokens).accuracy > 0.8


def test_save_and_load_keep_the_tokenizer_and_the_predictions(minilm, tmp_path):
    minilm.eval()  # dropout off: the comparison below is of two deterministic models
    folder = tl.save_model(minilm, tmp_path / "text-model")
    stored = json.loads((folder / "config.json").read_text())
    assert stored["modality"] == "text" and stored["max_length"] == 256 and "mean" not in stored
    again = tl.load_model(folder)
    with torch.inference_mode():
        assert torch.allclose(again(["a new review"]), minilm(["a new review"]), atol=1e-5)
    assert ModelConfig.from_dict(stored).modality == "text"


def test_from_scratch_is_the_same_shape_with_other_weights(minilm):
    scratch = tl.load_pretrained("minilm", num_classes=3, pretrained=False)
    assert scratch.tlkit_config.pretrained == "none"
    ours, theirs = minilm.body.encoder.layer[0].attention, scratch.body.encoder.layer[0].attention
    assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
    assert not torch.allclose(next(ours.parameters()), next(theirs.parameters()))


def test_misuse_says_what_to_do(minilm):
    with pytest.raises(TypeError, match="token ids"):
        minilm("one review, not in a list")
    with pytest.raises(ValueError, match="text_transform"):
        tl.eval_transforms(minilm.tlkit_config, 96)
    with pytest.raises(ValueError, match="no tokenizer"):
        tl.text_transform(tl.load_pretrained("efficientnet_lite0", num_classes=2))
    with pytest.raises(tl.WeightsNotAvailableError, match="minilm"):  # tests run offline
        tl.load_pretrained("hf:someone/not-downloaded-model", num_classes=2)
    with pytest.raises(ValueError, match="model id"):
        tl.load_pretrained("hf:", num_classes=2)
    with pytest.raises(TypeError, match="a str"):
        tl.text_transform(minilm)(["a list"])


def test_cached_features_of_texts_are_computed_once_per_texts_and_length(minilm, monkeypatch):
    from tlkit import feature_cache as fc

    calls = []
    real = fc.extract_features
    monkeypatch.setattr(fc, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    fc.clear_feature_cache()
    data = tl.TextDataset(["good", "bad", "fine"], [2, 0, 1], ["negative", "neutral", "positive"])
    tokens = data.with_transform(tl.text_transform(minilm, max_length=16))
    first = tl.cached_features(minilm, tokens)
    again = tl.cached_features(minilm, data.with_transform(tl.text_transform(minilm, max_length=16)))
    assert again is first and len(calls) == 1
    tl.cached_features(minilm, data.with_transform(tl.text_transform(minilm, max_length=8)))  # another length
    tl.cached_features(minilm, tl.TextDataset(["good", "bad", "okay"], [2, 0, 1], data.classes,
                                              transform=tokens.transform))  # another text
    assert len(calls) == 3


def test_the_top_layers_on_cached_inputs_compute_what_the_whole_model_computes(minilm):
    texts = ["It worked within a day.", "Terrible nausea, I stopped after a week.", "No difference at all."]
    data = tl.TextDataset(texts, [2, 0, 1], ["negative", "neutral", "positive"])
    tokens = data.with_transform(tl.text_transform(minilm, max_length=24))
    inputs, labels = tl.text_top_inputs(minilm, tokens, 2).tensors
    assert inputs.shape == (3, 24, 384 + 1) and labels.tolist() == [2, 0, 1]
    assert inputs[..., -1].sum(dim=1).tolist() == (torch.stack([tokens[i][0] for i in range(3)]) != 0).sum(1).tolist()
    top = tl.TextTop(minilm, 2).eval()
    minilm.eval()
    with torch.inference_mode():
        assert torch.allclose(top(inputs), minilm(texts), atol=1e-4)
    assert [p.name for p in tl.parts(top)] == ["layers.4", "layers.5", "head"]
    # The top shares the model's layers: training it changes the model, and only its top.
    tl.unfreeze(top)
    before = {n: p.clone() for n, p in minilm.named_parameters()}
    tl.fit(top, tl.text_top_inputs(minilm, tokens, 2), epochs=2, lr=1e-3, batch_size=3, progress=False, verbose=False,
           schedule="constant", seed=0)
    changed = {n.split(".")[3] if n.startswith("body.encoder") else n.split(".")[0]
               for n, p in minilm.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"4", "5", "classifier"}
    with pytest.raises(ValueError, match="between 0 .* and 6"):
        tl.TextTop(minilm, 7)
