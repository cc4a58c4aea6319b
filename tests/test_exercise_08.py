"""The judges of exercise 08 (text): right answers pass, plausible wrong ones get their own hint, and
malformed evidence never passes (nor raises)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tlkit as tl
from tlkit.course.exercises import exercise
from tlkit.text import mean_pool

EX08 = exercise("08")


def _not_yet(verdict, *words):
    assert not verdict.passed, "a wrong answer passed"
    for word in words:
        assert word in verdict.hint, f"{word!r} not in hint {verdict.hint!r}"


def test_every_item_refuses_missing_or_malformed_evidence():
    assert len(EX08.ids) >= 4
    for item in EX08.items:
        assert item.question
        assert not EX08.judge(item.id, {}).passed
        assert not EX08.judge(item.id, {"problem": "x"}).passed
        assert not EX08.judge(item.id, {"labels": "x", "values": [1], "shape": [3, 5], "outputs": 4}).passed
        assert not EX08.judge(item.id, []).passed


def test_08_frozen_encoder_with_a_new_head():
    model = tl.load_pretrained("minilm", num_classes=4)
    _not_yet(EX08.verdict("q1", model=model), "nothing in the encoder is frozen")
    tl.freeze(model)
    assert EX08.verdict("q1", model=model).passed
    tl.unfreeze_last(model, 1)
    _not_yet(EX08.verdict("q1", model=model), "still learn")
    _not_yet(EX08.verdict("q1", model=tl.freeze(tl.load_pretrained("minilm", num_classes=3))), "4 scores")
    _not_yet(EX08.verdict("q1", model=tl.load_pretrained("minilm")), "no head")
    _not_yet(EX08.verdict("q1", model=tl.freeze(tl.load_pretrained("minilm", num_classes=4, pretrained=False))),
             "not the pretrained one")
    _not_yet(EX08.verdict("q1", model=torch.nn.Linear(384, 4)), "text model")


def _pool(hidden, mask):
    w = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * w).sum(1) / w.sum(1)


def test_08_mean_pool():
    assert EX08.verdict("q2", mean_pool=_pool).passed
    assert EX08.verdict("q2", mean_pool=mean_pool).passed  # the library's own
    _not_yet(EX08.verdict("q2", mean_pool=lambda h, m: h.mean(1)), "padding is counted")
    _not_yet(EX08.verdict("q2", mean_pool=lambda h, m: (h * m.unsqueeze(-1)).sum(1)), "divide it by")
    _not_yet(EX08.verdict("q2", mean_pool=lambda h, m: h[:, 0]), "[CLS]")
    _not_yet(EX08.verdict("q2", mean_pool=lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.shape[1]), "padded length")
    _not_yet(EX08.verdict("q2", mean_pool=lambda h, m: h.mean(2)), "N x H")
    _not_yet(EX08.verdict("q2", mean_pool=lambda h, m: _pool(h, m).tolist()), "return a tensor")


def _nearest(queries, keys, labels):
    return labels[(F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T).argmax(1)]


def test_08_nearest_labels():
    assert EX08.verdict("q3", nearest_labels=_nearest).passed
    assert EX08.verdict("q3", nearest_labels=lambda q, k, y: _nearest(q, k, y).tolist()).passed
    _not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: y[(q @ k.T).argmax(1)]), "normalise")
    _not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: y[(F.normalize(q, dim=1) @ F.normalize(k, dim=1).T)
                                                                 .argmin(1)]), "least similar")
    _not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: y[torch.cdist(q, k).argmin(1)]), "Euclidean")
    _not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: "0"), "integer label")


def test_08_head_on_cached_embeddings():
    encoder = tl.load_pretrained("minilm")
    tokens = tl.text_transform(encoder, 128)
    from tlkit.course.checks.ex08_transfer_beyond_images import GROUPS
    splits = tl.newsgroups(groups=GROUPS, val_per_class=10, seed=0)
    train_f = tl.extract_features(encoder, tl.few_shot(splits.train, 8, seed=0).with_transform(tokens))
    head = torch.nn.Linear(384, 4)
    _not_yet(EX08.verdict("q4", head=head), "")  # untrained: not above 70 %
    tl.fit(head, train_f, None, epochs=100, lr=1e-2, seed=0, progress=False, verbose=False)
    assert EX08.verdict("q4", head=head).passed
    _not_yet(EX08.verdict("q4", head=torch.nn.Linear(384, 3)), "N x 4")
    _not_yet(EX08.verdict("q4", head=encoder), "not the whole model")


def test_08_quiz_item():
    assert EX08.verdict("q5", answer_q5="b").passed
    _not_yet(EX08.verdict("q5", answer_q5="a"), "256 tokens")
