"""Which way of using the offline text model beats a bag of words on the drug reviews? (issue 16)

The search behind the text recipe, on the same splits for every method: k training reviews per
class (drawn per seed from the 480 training reviews; "all" = every one of them), the 120 validation
reviews for every choice a method makes (its regularisation C, its best epoch), and macro-F1 and
accuracy on the 379 test reviews (imbalanced: 65 % positive, 10 % neutral).

Methods:
- ``tfidf``: TF-IDF of words and word pairs + logistic regression (balanced class weights, C chosen
  on validation): the baseline the recipe must beat.
- ``frozen``: mean-pooled all-MiniLM-L6-v2 embeddings + the same logistic regression.
- ``top2``: the last two transformer layers and a new head fine-tuned with ``tl.fit`` (balanced class
  weights, best epoch on validation accuracy) on cached inputs (``tl.TextTop``), at ``--lrs``.
- ``zero_shot``: no labelled review at all: each review goes to the class whose two hand-written
  descriptions (``DESCRIPTIONS``, written once before any measurement) its embedding is closest to.
- ``centroid``: nearest class centroid, each centroid halfway between the descriptions' embedding
  and the mean embedding of that class's k training reviews.

    python benchmarks/text_recipe_search.py --seeds 0 1 2 --sizes 8 32 all

Prints one JSON object: per method and size, mean and spread (standard deviation) over seeds of
macro-F1 and accuracy, and the seconds each run took. The table is in ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import tlkit as tl
from text_benchmark import logistic, macro_f1  # the same baseline and score as the text benchmark

DESCRIPTIONS = {
    "negative": ["This medicine did not work for me and the side effects were terrible.",
                 "I hate this drug, it made everything worse."],
    "neutral": ["This medicine helped a little but had some side effects.",
                "It is okay, it works somewhat, mixed feelings."],
    "positive": ["This medicine worked great for me, I am very happy with it.",
                 "This drug changed my life, highly recommend it."],
}
def draw(labels: np.ndarray, k: int | None, seed: int, classes: int) -> np.ndarray:
    """k indices per class, seeded; all of them for k=None."""
    if k is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), k, replace=False)
                                   for c in range(classes)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", nargs="+", default=["8", "32", "all"])
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-4])
    parser.add_argument("--methods", nargs="+", default=["tfidf", "frozen", "zero_shot", "centroid", "top2"])
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    sizes = [None if s == "all" else int(s) for s in args.sizes]

    data = tl.drug_reviews()
    classes = len(data.classes)
    y = {s: np.asarray(getattr(data, s).labels) for s in ("train", "val", "test")}
    texts = {s: getattr(data, s).texts for s in ("train", "val", "test")}
    model = tl.load_pretrained("minilm", num_classes=classes)
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    tokens = tl.text_transform(model, args.max_length)
    inputs = {s: tl.text_top_inputs(model, getattr(data, s).with_transform(tokens), 2, progress=False).tensors
              for s in ("train", "val", "test")}
    top = tl.TextTop(model, 2).eval()
    with torch.inference_mode():
        emb = {s: F.normalize(torch.cat([top.embed(x) for x in inputs[s][0].split(64)]), dim=1).numpy()
               for s in inputs}
        model.eval()
        described = np.stack([F.normalize(model.embed(model.tokenize(DESCRIPTIONS[c])), dim=1).mean(0).numpy()
                              for c in data.classes])
    described /= np.linalg.norm(described, axis=1, keepdims=True)

    runs = []
    for k in sizes:
        for seed in args.seeds:
            idx = draw(y["train"], k, seed, classes)
            for method in args.methods:
                variants = [{"lr": lr} for lr in args.lrs] if method == "top2" else [{}]
                for variant in variants:
                    started = time.perf_counter()
                    if method == "tfidf":
                        from sklearn.feature_extraction.text import TfidfVectorizer

                        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit([texts["train"][i] for i in idx])
                        pred = logistic(vec.transform([texts["train"][i] for i in idx]), y["train"][idx],
                                        vec.transform(texts["val"]), y["val"], vec.transform(texts["test"]), classes)
                    elif method == "frozen":
                        pred = logistic(emb["train"][idx], y["train"][idx], emb["val"], y["val"], emb["test"], classes)
                    elif method == "zero_shot":
                        pred = (emb["test"] @ described.T).argmax(1)
                    elif method == "centroid":
                        means = np.stack([emb["train"][idx][y["train"][idx] == c].mean(0) for c in range(classes)])
                        means /= np.linalg.norm(means, axis=1, keepdims=True)
                        pred = (emb["test"] @ (0.5 * described + 0.5 * means).T).argmax(1)
                    else:  # top2
                        model.load_state_dict(start_state)
                        tl.seed_everything(seed)
                        torch.nn.init.normal_(model.classifier.weight, std=0.02)
                        torch.nn.init.zeros_(model.classifier.bias)
                        net = tl.unfreeze(tl.TextTop(model, 2))
                        pick = torch.as_tensor(idx)
                        tl.fit(net, TensorDataset(inputs["train"][0][pick], inputs["train"][1][pick]),
                               TensorDataset(*inputs["val"]), epochs=10, lr=variant["lr"], lr_mult=0.5,
                               batch_size=16, weight_decay=0.01,
                               class_weights=tl.balanced_class_weights(y["train"][idx], classes),
                               progress=False, verbose=False, seed=seed)
                        out, _ = tl.model_outputs(net, TensorDataset(inputs["test"][0]))
                        pred = out.argmax(1).numpy()
                    runs.append({"method": method + "".join(f" lr={v:g}" for v in variant.values()),
                                 "k": "all" if k is None else k, "seed": seed,
                                 "macro_f1": macro_f1(y["test"], pred, classes),
                                 "accuracy": float((pred == y["test"]).mean()),
                                 "seconds": round(time.perf_counter() - started, 2)})
                    print(f"{runs[-1]['method']:<16} k={runs[-1]['k']:<4} seed {seed}: macro-F1 "
                          f"{runs[-1]['macro_f1']:.3f}, {runs[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    summary = {}
    for run in runs:
        summary.setdefault(f"{run['method']} @ {run['k']}", []).append(run)
    print(json.dumps({
        "data": "drug reviews: k per class from 480 training reviews, C/epoch chosen on 120 validation, 379 test",
        "seeds": args.seeds, "max_length": args.max_length, "torch_threads": torch.get_num_threads(),
        "results": {name: {"macro_f1_mean": round(float(np.mean([r["macro_f1"] for r in rs])), 4),
                           "macro_f1_sd": round(float(np.std([r["macro_f1"] for r in rs])), 4),
                           "accuracy_mean": round(float(np.mean([r["accuracy"] for r in rs])), 4),
                           "accuracy_sd": round(float(np.std([r["accuracy"] for r in rs])), 4),
                           "seconds_mean": round(float(np.mean([r["seconds"] for r in rs])), 2)}
                    for name, rs in summary.items()},
        "runs": runs}))


if __name__ == "__main__":
    main()
