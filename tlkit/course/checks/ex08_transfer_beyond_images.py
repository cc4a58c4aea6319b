"""Exercise 08: transfer beyond images, a pretrained text encoder (lessons/08_transfer_beyond_images.ipynb).

q1 (code):   ``model``: all-MiniLM-L6-v2 with a new 4-class head, everything but the head frozen.
q2 (code):   ``mean_pool(hidden, mask)``: the mean of the token vectors over the real tokens only.
q3 (code):   ``nearest_labels(queries, keys, key_labels)``: the label of each query's nearest key by
             cosine similarity (embeddings of different lengths, so a plain dot product is wrong).
q4 (code):   ``head``: a linear head trained on cached embeddings of 8 posts per newsgroup that beats
             70 % on held-out test posts (embedded by the probes' own frozen encoder).
q5 (exercises/08.yaml): which change keeps cached text embeddings valid.

Every code item runs on a probe drawn afresh for each check (``tlkit/course/probes/ex08_*``): the
learner's model on a random batch of token ids, mean_pool on random token vectors and masks,
nearest_labels on randomly rotated, scaled and shuffled embeddings with random labels, the head on
the test posts' embeddings in a random order. The judge draws the same probe in its own process and
works out what it compares with (its own encoder's embeddings of those tokens, the right pooling
and its plausible mistakes, the neighbours by each rule, the test labels in that order); the
evidence holds only what the learner's code produced on that probe.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..exercises import Exercise, Verdict, probed_item, quiz_item
from ..probes.ex08_transfer_beyond_images import ASKS, GROUPS, HIDDEN, encoder, test_set
from ._reference import head_test_accuracy

N_CLASSES = len(GROUPS)
PASS_ACCURACY = 0.70


# ---------------------------------------------------------------- q1: a frozen encoder and a new head

def _reference_embedding(tokens: torch.Tensor) -> torch.Tensor:
    """The first 32 numbers of each text's embedding by the checks' own pretrained encoder, as collected."""
    with torch.inference_mode():
        return torch.tensor([round(v, 5) for v in encoder().embed(tokens.clone())[:, :32].flatten().tolist()])


def _judge_model(evidence: dict, tokens: torch.Tensor) -> Verdict:
    outputs, params = evidence.get("outputs"), evidence.get("params")
    if type(params) is not list or not all(type(p) is list and len(p) == 3 and type(p[0]) is str
                                           and type(p[1]) is int and type(p[2]) is bool for p in params):
        return Verdict(False, "model should be a text model with parameters: tl.load_pretrained('minilm', num_classes=4)")
    n = len(tokens)
    if outputs == [n, HIDDEN]:
        return Verdict(False, f"model has no head (it outputs the {HIDDEN} numbers of the embedding): "
                              f"load it with num_classes={N_CLASSES}")
    if outputs != [n, N_CLASSES]:
        return Verdict(False, f"model should output {N_CLASSES} scores per text (one per group), it outputs shape {outputs}")
    body = evidence.get("body")
    reference = _reference_embedding(tokens)
    if type(body) is not list or len(body) != len(reference) or not all(type(v) in (int, float) for v in body) \
            or not torch.allclose(torch.tensor(body, dtype=torch.float32), reference, rtol=1e-3, atol=1e-3):
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

def _pool_variants(hidden: torch.Tensor, mask: torch.Tensor) -> dict:
    m = mask.unsqueeze(-1).float()
    return {"right": (hidden * m).sum(1) / m.sum(1),
            "padding counted": hidden.mean(1),
            "sum": (hidden * m).sum(1),
            "first token": hidden[:, 0],
            "divided by length": (hidden * m).sum(1) / hidden.shape[1]}


def _judge_pool(evidence: dict, probe) -> Verdict:
    if "type" in evidence:
        return Verdict(False, f"mean_pool returned a {evidence['type']}: return a tensor, N x H")
    hidden, mask = probe["hidden"], probe["mask"]
    n, length, width = hidden.shape
    shape, values = evidence.get("shape"), evidence.get("values")
    if shape != [n, width]:
        return Verdict(False, f"for hidden N x L x H ({n} x {length} x {width}) mean_pool should return N x H "
                              f"({n} x {width}), got {shape}")
    if type(values) is not list or len(values) != n * width or not all(type(v) in (int, float) for v in values):
        return Verdict(False, "mean_pool should return one vector of numbers per text")
    if not all(math.isfinite(v) for v in values):
        return Verdict(False, "mean_pool gave NaN or infinity: divide by the number of real tokens (at least 1)")
    found = torch.tensor(values, dtype=torch.float32).view(n, width)
    variants = _pool_variants(hidden, mask)
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

def _neighbour_variants(probe) -> dict:
    q, k, labels = probe["queries"], probe["keys"], probe["key_labels"]
    cos = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T
    return {"right": labels[cos.argmax(1)].tolist(),
            "dot product": labels[(q @ k.T).argmax(1)].tolist(),
            "least similar": labels[cos.argmin(1)].tolist(),
            "euclidean": labels[torch.cdist(q, k).argmin(1)].tolist(),
            "positions": cos.argmax(1).tolist()}


def _judge_neighbours(evidence: dict, probe) -> Verdict:
    if "type" in evidence:
        return Verdict(False, f"nearest_labels returned a {evidence['type']}: return one integer label per query "
                              "(a tensor or a list of ints)")
    found = evidence.get("labels")
    variants = _neighbour_variants(probe)
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
    if found == variants["positions"]:
        return Verdict(False, "those are the positions of the nearest keys (0, 1, ...): return their labels, "
                              "key_labels[similarity.argmax(1)]")
    return Verdict(False, "not the nearest by cosine similarity yet: F.normalize both, similarity = queries @ keys.T, "
                          "then key_labels[similarity.argmax(1)]")


# ---------------------------------------------------------------- q4: a head on cached text embeddings

def _judge_head(evidence: dict, probe) -> Verdict:
    labels = test_set().labels.tolist()
    accuracy, problem = head_test_accuracy(evidence, [labels[i] for i in probe["order"]], N_CLASSES, HIDDEN,
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
    probed_item("q1", ASKS["q1"], _judge_model,
                question="Load all-MiniLM-L6-v2 with a new 4-class head and freeze everything but the head."),
    probed_item("q2", ASKS["q2"], _judge_pool,
                question="Write mean_pool(hidden, mask): the mean of the token vectors over the real tokens."),
    probed_item("q3", ASKS["q3"], _judge_neighbours,
                question="Write nearest_labels(queries, keys, key_labels): each query's nearest key by cosine "
                         "similarity."),
    probed_item("q4", ASKS["q4"], _judge_head,
                question="Train head on cached embeddings so it beats 70% on held-out test posts."),
    quiz_item("q5", "answer_q5", "exercises/08", "q5"),
])
