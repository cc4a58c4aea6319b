"""Exercise 08's probes: random token batches, random token vectors and masks, random embedding
matrices, and the held-out test posts' cached embeddings in a random order.

Every check draws its own inputs from the seed:

- q1: a batch of 2-4 random token sequences ([CLS] random word pieces [SEP], padded with 0; the
  first row is full length, the second padded) that the learner's model runs on;
- q2: N x L x H token vectors (random sizes and values, padded positions hold numbers too) and a
  right-padded mask with, in every draw, a full row, a padded row and a row of a single token;
- q3: four keys of very different lengths and six queries placed so that cosine similarity, the
  plain dot product, the least similar key and the Euclidean distance all pick differently, turned
  by a random rotation into 8-32 dimensions and scaled by a random factor (neither changes which
  key each rule picks), shuffled, with 4-8 more random queries and random key labels (10-99, so
  never a key's position);
- q4: the 100 held-out test posts (25 per group) embedded once per process by the probes' own
  frozen encoder, handed to the learner's head in a random order.

The cases a judge's hints tell apart are in every draw; the numbers, sizes, orders and labels change.
No right answer is computed here: the judges in ``tlkit/course/checks/ex08_*`` do that.
"""
from __future__ import annotations

import functools
import random

import torch
from torch import nn

from ..exercises import Ask
from ._shared import head_evidence

GROUPS = ["comp.graphics", "rec.autos", "sci.med", "sci.space"]
HIDDEN = 384
MAX_TOKENS = 128
TEST_PER_CLASS = 25
CLS, SEP, FIRST_WORD, VOCABULARY = 101, 102, 1000, 30522   # all-MiniLM-L6-v2's (BERT's) word pieces


@functools.lru_cache(maxsize=1)
def encoder() -> nn.Module:
    """A frozen all-MiniLM-L6-v2 without a head (outputs embeddings). Never handed to learner code."""
    from ...models import load_pretrained
    return load_pretrained("minilm").eval()


# ---------------------------------------------------------------- q1: a frozen encoder and a new head

def draw_tokens(seed: int) -> torch.Tensor:
    """N x L token ids (N 2-4, L 6-16): [CLS], random word pieces, [SEP], then padding (0).
    Row 0 is full length, row 1 is padded; the other rows have random lengths."""
    rng = random.Random(seed)
    n, length = rng.randint(2, 4), rng.randint(6, 16)
    lengths = [length, rng.randint(3, length - 1)] + [rng.randint(3, length) for _ in range(n - 2)]
    tokens = torch.zeros(n, length, dtype=torch.long)
    for row, k in enumerate(lengths):
        words = [rng.randrange(FIRST_WORD, VOCABULARY) for _ in range(k - 2)]
        tokens[row, :k] = torch.tensor([CLS] + words + [SEP])
    return tokens


def collect_model(tokens, model) -> dict:
    import copy

    if not isinstance(model, nn.Module) or not callable(getattr(model, "embed", None)):
        return {"problem": "model should be a text model: tl.load_pretrained('minilm', num_classes=4)"}
    params = [[name, p.numel(), bool(p.requires_grad)] for name, p in model.named_parameters()]
    probe = copy.deepcopy(model).eval().cpu()
    with torch.inference_mode():
        outputs = list(probe(tokens.clone()).shape)
        emb = probe.embed(tokens.clone())
    body = [round(v, 5) for v in emb[:, :32].float().flatten().tolist()] if torch.isfinite(emb).all() else None
    return {"params": params, "outputs": outputs, "body": body}


# ---------------------------------------------------------------- q2: mean pooling over the real tokens

def draw_pool(seed: int) -> dict:
    """``hidden`` N x L x H (N 4-6, L 6-10, H 4-12) and ``mask`` N x L (int64, 1 = real token, right-padded):
    always a full row, a padded row and a one-token row, in a random order."""
    rng = random.Random(seed)
    n, length, width = rng.randint(4, 6), rng.randint(6, 10), rng.randint(4, 12)
    lengths = [length, rng.randint(2, length - 1), 1] + [rng.randint(1, length) for _ in range(n - 3)]
    rng.shuffle(lengths)
    mask = torch.tensor([[1] * k + [0] * (length - k) for k in lengths])
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, length, width, generator=g) * rng.uniform(0.5, 3.0) + rng.uniform(-1.0, 1.0)
    return {"hidden": hidden, "mask": mask}


def collect_pool(probe, mean_pool) -> dict:
    if not callable(mean_pool):
        return {"problem": "mean_pool should be a function: def mean_pool(hidden, mask): ..."}
    out = mean_pool(probe["hidden"].clone(), probe["mask"].clone())
    if not isinstance(out, torch.Tensor):
        return {"type": type(out).__name__}
    return {"shape": list(out.shape), "values": [round(v, 6) for v in out.detach().float().flatten().tolist()]}


# ---------------------------------------------------------------- q3: nearest neighbours by cosine similarity

# In the plane, these four keys and six queries make cosine similarity, the dot product, the least
# similar key and the Euclidean distance each give another list of picks. A rotation into more
# dimensions and one common scale keep every angle, dot-product order and distance order.
PLANE_KEYS = [[10.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-3.0, 0.5]]
PLANE_QUERIES = [[1.0, 0.2], [0.1, 2.0], [2.0, 2.1], [-1.0, 0.0], [0.3, 1.0], [5.0, 0.1]]


def draw_neighbours(seed: int) -> dict:
    """``queries`` Q x H, ``keys`` 4 x H and ``key_labels`` (4 distinct ints from 10-99, never
    a key's position), H 8-32."""
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    width = rng.randint(8, 32)
    basis, _ = torch.linalg.qr(torch.randn(width, 2, generator=g, dtype=torch.float64))  # two orthonormal columns
    scale = 10 ** rng.uniform(-0.5, 0.5)
    keys = torch.tensor(PLANE_KEYS, dtype=torch.float64) @ basis.T * scale
    designed = torch.tensor(PLANE_QUERIES, dtype=torch.float64) @ basis.T * scale
    spread = scale * 10 ** rng.uniform(-0.5, 0.5)
    extra = torch.randn(rng.randint(4, 8), width, generator=g, dtype=torch.float64) * spread
    queries = torch.cat([designed, extra])
    key_order = list(range(len(keys)))
    query_order = list(range(len(queries)))
    rng.shuffle(key_order)
    rng.shuffle(query_order)
    return {"queries": queries[query_order].float(), "keys": keys[key_order].float(),
            "key_labels": torch.tensor(rng.sample(range(10, 100), len(keys)))}


def collect_neighbours(probe, nearest_labels) -> dict:
    if not callable(nearest_labels):
        return {"problem": "nearest_labels should be a function: def nearest_labels(queries, keys, key_labels): ..."}
    out = nearest_labels(probe["queries"].clone(), probe["keys"].clone(), probe["key_labels"].clone())
    if isinstance(out, torch.Tensor):
        out = out.tolist()
    if not isinstance(out, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
        return {"type": type(out).__name__}
    return {"labels": list(out)}


# ---------------------------------------------------------------- q4: a head on cached text embeddings

@functools.lru_cache(maxsize=1)
def test_set():
    """25 held-out test posts per group (never in the notebook's training or validation data)."""
    from ...data import few_shot, newsgroups
    return few_shot(newsgroups(groups=GROUPS, val_per_class=10, seed=0).test, TEST_PER_CLASS, seed=0)


@functools.lru_cache(maxsize=1)
def _test_embeddings() -> torch.Tensor:
    """The test posts through the probes' own frozen encoder, as the notebook computes features."""
    from ...features import extract_features
    from ...text import text_transform
    model = encoder()
    return extract_features(model, test_set().with_transform(text_transform(model, MAX_TOKENS)),
                            device="cpu").tensors[0]


def draw_test_posts(seed: int) -> dict:
    """The test posts' embeddings in a random order (``order[i]``: the test post in row i)."""
    order = list(range(len(test_set())))
    random.Random(seed).shuffle(order)
    return {"order": order, "features": _test_embeddings()[order]}


def collect_head(probe, head) -> dict:
    return head_evidence(head, probe["features"].clone(), f"nn.Linear({HIDDEN}, {len(GROUPS)})")


ASKS = {
    "q1": Ask(("model",), collect_model, draw_tokens),
    "q2": Ask(("mean_pool",), collect_pool, draw_pool),
    "q3": Ask(("nearest_labels",), collect_neighbours, draw_neighbours),
    "q4": Ask(("head",), collect_head, draw_test_posts),
}
