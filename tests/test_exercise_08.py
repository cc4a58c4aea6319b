"""The judges of exercise 08 (text): right answers pass, plausible wrong ones get their own hint, and
malformed evidence never passes (nor raises).

Code items are checked the way a notebook checks them, ``EX08.verdict("qN", fn=...)``, on a freshly
drawn probe each time (a random token batch, random token vectors, rotated and shuffled embeddings,
the test posts in a random order).
"""
from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

import tlkit as tl
from tlkit.course.checks.ex08_transfer_beyond_images import EXERCISE as EX08
from tlkit.course.checks.ex08_transfer_beyond_images import GROUPS
from tlkit.text import mean_pool

from _exercise_helpers import assert_malformed_evidence_never_passes, hint, judge_on_probe, not_yet  # noqa: F401


def test_the_exercise_is_found_by_number_and_has_enough_items():
    assert tl.exercise("08") is EX08
    assert len(EX08.ids) >= 4 and all(it.question for it in EX08.items)


def test_malformed_evidence_never_passes_and_never_raises():
    assert_malformed_evidence_never_passes(EX08)


@functools.lru_cache(maxsize=1)
def _loaded():
    """all-MiniLM-L6-v2 with a new 4-class head, loaded once: each test changes a copy of it."""
    return tl.load_pretrained("minilm", num_classes=4)


@functools.lru_cache(maxsize=1)
def _no_head():
    return tl.load_pretrained("minilm")


def _model(frozen=True, classifier=None):
    model = copy.deepcopy(_loaded())
    if frozen:
        tl.freeze(model)
    if classifier is not None:
        model.classifier = classifier
    return model


def test_08_frozen_encoder_with_a_new_head():
    model = _model(frozen=False)
    not_yet(EX08.verdict("q1", model=model), "nothing in the encoder is frozen")
    tl.freeze(model)
    assert EX08.verdict("q1", model=model).passed
    tl.unfreeze_last(model, 1)
    not_yet(EX08.verdict("q1", model=model), "still learn")
    not_yet(EX08.verdict("q1", model=_model(classifier=torch.nn.Linear(384, 3))), "4 scores")
    not_yet(EX08.verdict("q1", model=_no_head()), "no head")
    not_yet(EX08.verdict("q1", model=tl.freeze(tl.load_pretrained("minilm", num_classes=4, pretrained=False))),
            "not the pretrained one")
    not_yet(EX08.verdict("q1", model=torch.nn.Linear(384, 4)), "text model")
    head_frozen = _model()
    head_frozen.classifier.requires_grad_(False)
    not_yet(EX08.verdict("q1", model=head_frozen), "must learn")


def _pool(hidden, mask):
    w = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * w).sum(1) / w.sum(1)


def test_08_mean_pool():
    assert EX08.verdict("q2", mean_pool=_pool).passed
    assert EX08.verdict("q2", mean_pool=mean_pool).passed  # the library's own
    not_yet(EX08.verdict("q2", mean_pool=lambda h, m: h.mean(1)), "padding is counted")
    not_yet(EX08.verdict("q2", mean_pool=lambda h, m: (h * m.unsqueeze(-1)).sum(1)), "divide it by")
    not_yet(EX08.verdict("q2", mean_pool=lambda h, m: h[:, 0]), "[CLS]")
    not_yet(EX08.verdict("q2", mean_pool=lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.shape[1]), "padded length")
    not_yet(EX08.verdict("q2", mean_pool=lambda h, m: h.mean(2)), "N x H")
    not_yet(EX08.verdict("q2", mean_pool=lambda h, m: _pool(h, m).tolist()), "return a tensor")
    not_yet(EX08.verdict("q2", mean_pool=lambda h, m: _pool(h, m) + 0.01), "not the mean over the real tokens")


def _nearest(queries, keys, labels):
    return labels[(F.normalize(queries, dim=1) @ F.normalize(keys, dim=1).T).argmax(1)]


def test_08_nearest_labels():
    assert EX08.verdict("q3", nearest_labels=_nearest).passed
    assert EX08.verdict("q3", nearest_labels=lambda q, k, y: _nearest(q, k, y).tolist()).passed
    not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: y[(q @ k.T).argmax(1)]), "normalise")
    not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: y[(F.normalize(q, dim=1) @ F.normalize(k, dim=1).T)
                                                                .argmin(1)]), "least similar")
    not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: y[torch.cdist(q, k).argmin(1)]), "Euclidean")
    not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: "0"), "integer label")
    not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: (F.normalize(q, dim=1) @ F.normalize(k, dim=1).T)
                         .argmax(1)), "positions of the nearest keys")
    not_yet(EX08.verdict("q3", nearest_labels=lambda q, k, y: y[:1].repeat(len(q))), "not the nearest")


@functools.lru_cache(maxsize=1)
def _heads():
    """An untrained head and one trained the way the notebook trains it."""
    encoder = _no_head()
    tokens = tl.text_transform(encoder, 128)
    splits = tl.newsgroups(groups=GROUPS, val_per_class=10, seed=0)
    train_f = tl.extract_features(encoder, tl.few_shot(splits.train, 8, seed=0).with_transform(tokens))
    torch.manual_seed(0)
    untrained, trained = torch.nn.Linear(384, 4), torch.nn.Linear(384, 4)
    tl.fit(trained, train_f, None, epochs=100, lr=1e-2, seed=0, progress=False, verbose=False)
    return untrained, trained, encoder


def test_08_head_on_cached_embeddings():
    untrained, trained, encoder = _heads()
    not_yet(EX08.verdict("q4", head=untrained), "test accuracy")  # untrained: not above 70 %
    assert EX08.verdict("q4", head=trained).passed
    not_yet(EX08.verdict("q4", head=torch.nn.Linear(384, 3)), "N x 4")
    not_yet(EX08.verdict("q4", head=encoder), "not the whole model")
    not_yet(EX08.verdict("q4", head="head"), "should be a model")


def test_08_quiz_item():
    assert EX08.verdict("q5", answer_q5="b").passed
    not_yet(EX08.verdict("q5", answer_q5="a"), "256 tokens")


@functools.lru_cache(maxsize=1)
def _right() -> dict:
    return {"q1": {"model": _model()}, "q2": {"mean_pool": _pool}, "q3": {"nearest_labels": _nearest},
            "q4": {"head": _heads()[1]}}


def test_08_answers_are_judged_on_their_own_probe():
    """Evidence from one draw (an honest run replayed) fails on another draw: every code item."""
    for item, values in _right().items():
        first, second = EX08.item(item).probe(1), EX08.item(item).probe(2)
        evidence = EX08.collect(item, values, first)
        assert EX08.judge(item, evidence, first).passed, item
        assert not EX08.judge(item, evidence, second).passed, item


@pytest.mark.parametrize("seed", range(5))
def test_08_verdicts_do_not_depend_on_the_draw(seed):
    """Instant feedback must not be a lottery: right stays right and each mistake keeps its hint on every draw."""
    for item, values in _right().items():
        assert EX08.verdict(item, seed=seed, **values).passed, (item, seed)
    assert "no head" in EX08.verdict("q1", seed=seed, model=_no_head()).hint
    assert "padding is counted" in EX08.verdict("q2", seed=seed, mean_pool=lambda h, m: h.mean(1)).hint
    assert "divide it by" in EX08.verdict("q2", seed=seed, mean_pool=lambda h, m: (h * m.unsqueeze(-1)).sum(1)).hint
    assert "[CLS]" in EX08.verdict("q2", seed=seed, mean_pool=lambda h, m: h[:, 0]).hint
    assert "padded length" in EX08.verdict(
        "q2", seed=seed, mean_pool=lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.shape[1]).hint
    assert "normalise" in EX08.verdict("q3", seed=seed, nearest_labels=lambda q, k, y: y[(q @ k.T).argmax(1)]).hint
    assert "least similar" in EX08.verdict(
        "q3", seed=seed, nearest_labels=lambda q, k, y: y[(F.normalize(q, dim=1) @ F.normalize(k, dim=1).T)
                                                          .argmin(1)]).hint
    assert "Euclidean" in EX08.verdict("q3", seed=seed,
                                       nearest_labels=lambda q, k, y: y[torch.cdist(q, k).argmin(1)]).hint
    assert "about chance" in EX08.verdict("q4", seed=seed, head=_constant_head()).hint


def _constant_head():
    """A head that always answers the first group: 25 % on the balanced test posts, whatever their order."""
    head = torch.nn.Linear(384, 4)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    return head
