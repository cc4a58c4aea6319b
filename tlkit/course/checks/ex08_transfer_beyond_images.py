"""Exercise 08: transfer beyond images, a pretrained text encoder (lessons/08_transfer_beyond_images.ipynb).

q1 (code):   ``model``: all-MiniLM-L6-v2 with a new 4-class head, everything but the head frozen.
q2 (code):   ``mean_pool(hidden, mask)``: the mean of the token vectors over the real tokens only.
q3 (code):   ``nearest_labels(queries, keys, key_labels)``: the label of each query's nearest key by
             cosine similarity (embeddings of different lengths, so a plain dot product is wrong).
q4 (code):   ``head``: a linear head trained on cached embeddings of 8 posts per newsgroup that beats
             70 % on held-out test posts (the check embeds them with its own frozen encoder).
q5 (exercises/08.yaml): which change keeps cached text embeddings valid.

The judge recomputes what it compares with (a fresh encoder's outputs, reference poolings and
neighbours on fixed probes, the test labels); the evidence holds only what the learner's code produced.
"""
from __future__ import annotations

import copy
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..exercises import Exercise, Item, Verdict, quiz_item
from ..probes._shared import head_evidence
from ._reference import head_test_accuracy

GROUPS = ["comp.graphics", "rec.autos", "sci.med", "sci.space"]
N_CLASSES = len(GROUPS)
HIDDEN = 384
MAX_TOKENS = 128
PASS_ACCURACY = 0.70
TEST_PER_CLASS = 25


@functools.lru_cache(maxsize=1)
def _encoder() -> nn.Module:
    """The checks' own frozen all-MiniLM-L6-v2 without a head (outputs embeddings). Never given to learner code."""
    from ...models import load_pretrained
    return load_pretrained("minilm").eval()


# ---------------------------------------------------------------- q1: a frozen encoder and a new head

PROBE_TOKENS = torch.tensor([[101, 7592, 2088, 2003, 2307, 102, 0, 0],   # [CLS] hello world is great [SEP]
                             [101, 1996, 4440, 2001, 2813, 2006, 2051, 102]])


@functools.lru_cache(maxsize=1)
def _reference_embedding() -> list[float]:
    with torch.inference_mode():
        return [round(v, 5) for v in _encoder().embed(PROBE_TOKENS)[:, :32].flatten().tolist()]


def _collect_model(model) -> dict:
    if not isinstance(model, nn.Module) or not callable(getattr(model, "embed", None)):
        return {"problem": "model should be a text model: tl.load_pretrained('minilm', num_classes=4)"}
    params = [[name, p.numel(), bool(p.requires_grad)] for name, p in model.named_parameters()]
    probe = copy.deepcopy(model).eval().cpu()
    with torch.inference_mode():
        outputs = list(probe(PROBE_TOKENS).shape)
        emb = probe.embed(PROBE_TOKENS)
    body = [round(v, 5) for v in emb[:, :32].float().flatten().tolist()] if torch.isfinite(emb).all() else None
    return {"params": params, "outputs": outputs, "body": body}


def _judge_model(evidence: dict) -> Verdict:
    outputs, params = evidence.get("outputs"), evidence.get("params")
    if type(params) is not list or not all(type(p) is list and len(p) == 3 and type(p[0]) is str
                                           and type(p[1]) is int and type(p[2]) is bool for p in params):
        return Verdict(False, "model should be a text model with parameters: tl.load_pretrained('minilm', num_classes=4)")
    if outputs == [2, HIDDEN]:
        return Verdict(False, f"model has no head (it outputs the {HIDDEN} numbers of the embedding): "
                              f"load it with num_classes={N_CLASSES}")
    if outputs != [2, N_CLASSES]:
        return Verdict(False, f"model should output {N_CLASSES} scores per text (one per group), it outputs shape {outputs}")
    body = evidence.get("body")
    reference = _reference_embedding()
    if type(body) is not list or len(body) != len(reference) or not all(type(v) in (int, float) for v in body) \
            or not torch.allclose(torch.tensor(body), torch.tensor(reference), rtol=1e-3, atol=1e-3):
        return Verdict(False, "the encoder is not the pretrained one: use tl.load_pretrained('minilm', ...) "
                              "(pretrained=True) and change only the head")
    head = [p for p in params if p[0].startswith("classifier.")]
    body_params = [p for p in params if not p[0].startswith("classifier.")]
    if not head or not all(p[2] for p in head):
        return Verdict(False, "the new head (model.classifier) must learn: freeze the body, not the head "
                              "(tl.freeze(model) does both)")
    learning = [p[0] for p in body_params if p[2]]
    if len(learning) == len(body_params):
        return Verdict(False, "nothing in the encoder is frozen: tl.freeze(model) freezes everything but the head")
    if learning:
        shown = ", ".join(learning[:2]) + (" ..." if len(learning) > 2 else "")
        return Verdict(False, f"{len(learning)} encoder parameters still learn ({shown}): freeze everything but the head")
    return Verdict(True)


# ---------------------------------------------------------------- q2: mean pooling over the real tokens

def _pool_probes():
    g = torch.Generator().manual_seed(8)
    hidden = torch.randn(3, 6, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    return hidden, mask


def _pool_variants() -> dict:
    hidden, mask = _pool_probes()
    m = mask.unsqueeze(-1).float()
    return {"right": (hidden * m).sum(1) / m.sum(1),
            "padding counted": hidden.mean(1),
            "sum": (hidden * m).sum(1),
            "first token": hidden[:, 0],
            "divided by length": (hidden * m).sum(1) / hidden.shape[1]}


def _collect_pool(mean_pool) -> dict:
    if not callable(mean_pool):
        return {"problem": "mean_pool should be a function: def mean_pool(hidden, mask): ..."}
    hidden, mask = _pool_probes()
    out = mean_pool(hidden.clone(), mask.clone())
    if not isinstance(out, torch.Tensor):
        return {"type": type(out).__name__}
    return {"shape": list(out.shape), "values": [round(v, 6) for v in out.detach().float().flatten().tolist()]}


def _judge_pool(evidence: dict) -> Verdict:
    if "type" in evidence:
        return Verdict(False, f"mean_pool returned a {evidence['type']}: return a tensor, N x H")
    shape, values = evidence.get("shape"), evidence.get("values")
    if shape != [3, 5]:
        return Verdict(False, f"for hidden N x L x H (3 x 6 x 5) mean_pool should return N x H (3 x 5), got {shape}")
    if type(values) is not list or len(values) != 15 or not all(type(v) in (int, float) for v in values):
        return Verdict(False, "mean_pool should return one vector of numbers per text")
    if not all(math.isfinite(v) for v in values):
        return Verdict(False, "mean_pool gave NaN or infinity: divide by the number of real tokens (at least 1)")
    found = torch.tensor(values).view(3, 5)
    variants = _pool_variants()
    if torch.allclose(found, variants["right"], atol=1e-5):
        return Verdict(True)
    hints = {"padding counted": "padding is counted: multiply by the mask so that padded positions add nothing, "
                                "and divide by the number of real tokens (mask.sum), not by L",
             "sum": "that is the sum over the real tokens: divide it by how many real tokens each text has",
             "first token": "that is the first token's vector ([CLS]); this encoder was trained with the mean of all "
                            "real tokens",
             "divided by length": "you divide by L (the padded length): divide by each text's number of real tokens"}
    for name, hint in hints.items():
        if torch.allclose(found, variants[name], atol=1e-5):
            return Verdict(False, hint)
    return Verdict(False, "not the mean over the real tokens yet: (hidden * mask[..., None]).sum(1) / "
                          "mask.sum(1, keepdim=True)")


# ---------------------------------------------------------------- q3: nearest neighbours by cosine similarity

def _neighbour_probes():
    keys = torch.tensor([[10.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-3.0, 0.5]])
    labels = torch.tensor([0, 1, 2, 3])
    queries = torch.tensor([[1.0, 0.2], [0.1, 2.0], [2.0, 2.1], [-1.0, 0.0], [0.3, 1.0], [5.0, 0.1]])
    return queries, keys, labels


def _neighbour_variants() -> dict:
    q, k, labels = _neighbour_probes()
    cos = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T
    return {"right": labels[cos.argmax(1)].tolist(),
            "dot product": labels[(q @ k.T).argmax(1)].tolist(),
            "least similar": labels[cos.argmin(1)].tolist(),
            "euclidean": labels[torch.cdist(q, k).argmin(1)].tolist()}


def _collect_neighbours(nearest_labels) -> dict:
    if not callable(nearest_labels):
        return {"problem": "nearest_labels should be a function: def nearest_labels(queries, keys, key_labels): ..."}
    q, k, labels = _neighbour_probes()
    out = nearest_labels(q.clone(), k.clone(), labels.clone())
    if isinstance(out, torch.Tensor):
        out = out.tolist()
    if not isinstance(out, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
        return {"type": type(out).__name__}
    return {"labels": list(out)}


def _judge_neighbours(evidence: dict) -> Verdict:
    if "type" in evidence:
        return Verdict(False, f"nearest_labels returned a {evidence['type']}: return one integer label per query "
                              "(a tensor or a list of ints)")
    found = evidence.get("labels")
    variants = _neighbour_variants()
    if type(found) is not list or len(found) != len(variants["right"]) or not all(type(v) is int for v in found):
        return Verdict(False, "nearest_labels should return one label per query")
    if found == variants["right"]:
        return Verdict(True)
    if found == variants["dot product"]:
        return Verdict(False, "that is the largest dot product, which favours long vectors: normalise queries "
                              "and keys to length 1 first (F.normalize), then take the dot product")
    if found == variants["least similar"]:
        return Verdict(False, "you picked the least similar key: the nearest has the largest cosine similarity (argmax)")
    if found == variants["euclidean"]:
        return Verdict(False, "that is the nearest by Euclidean distance of the raw vectors: compare directions "
                              "(cosine similarity of normalised vectors) instead")
    return Verdict(False, "not the nearest by cosine similarity yet: F.normalize both, similarity = queries @ keys.T, "
                          "then key_labels[similarity.argmax(1)]")


# ---------------------------------------------------------------- q4: a head on cached text embeddings

@functools.lru_cache(maxsize=1)
def _test_set():
    from ...data import few_shot, newsgroups
    return few_shot(newsgroups(groups=GROUPS, val_per_class=10, seed=0).test, TEST_PER_CLASS, seed=0)


@functools.lru_cache(maxsize=1)
def _test_embeddings() -> torch.Tensor:
    """The held-out test posts through the checks' own frozen encoder, as the notebook computes features."""
    from ...features import extract_features
    from ...text import text_transform
    model = _encoder()
    return extract_features(model, _test_set().with_transform(text_transform(model, MAX_TOKENS)),
                            device="cpu").tensors[0]


def _collect_head(head) -> dict:
    return head_evidence(head, _test_embeddings(), f"nn.Linear({HIDDEN}, {N_CLASSES})")


def _judge_head(evidence: dict) -> Verdict:
    accuracy, problem = head_test_accuracy(evidence, _test_set().labels.tolist(), N_CLASSES, HIDDEN,
                                           f"the {HIDDEN} numbers of a text's embedding")
    if accuracy is None:
        return Verdict(False, problem)
    if accuracy > PASS_ACCURACY:
        return Verdict(True)
    if accuracy < 0.35:
        return Verdict(False, f"test accuracy {accuracy:.0%}, about chance (25%): the head has not learned - train "
                              "this very head on train_f (the embeddings, not the texts), e.g. tl.fit for 100 epochs")
    return Verdict(False, f"test accuracy {accuracy:.0%}, it should beat {PASS_ACCURACY:.0%}: train longer or with a "
                          "larger learning rate (lr=1e-2), on the embeddings of the cell above")


EXERCISE = Exercise("08_transfer_beyond_images", [
    Item("q1", ("model",), _collect_model, _judge_model,
         question="Load all-MiniLM-L6-v2 with a new 4-class head and freeze everything but the head."),
    Item("q2", ("mean_pool",), _collect_pool, _judge_pool,
         question="Write mean_pool(hidden, mask): the mean of the token vectors over the real tokens."),
    Item("q3", ("nearest_labels",), _collect_neighbours, _judge_neighbours,
         question="Write nearest_labels(queries, keys, key_labels): each query's nearest key by cosine similarity."),
    Item("q4", ("head",), _collect_head, _judge_head,
         question="Train head on cached embeddings so it beats 70% on held-out test posts."),
    quiz_item("q5", "answer_q5", "exercises/08", "q5"),
])
