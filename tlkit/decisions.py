"""Decisions from probabilities: where to put a threshold, and for whom the model works.

``evaluate`` scores the model's top guess. A clinic asks other questions:

- *Screening*: "find (almost) every case of this class". Flag an example when that class's
  probability is at least a threshold t. Lowering t finds more cases (recall goes up) and raises
  more false alarms (precision goes down); the precision-recall curve shows the trade-off for every
  t at once (``precision_recall_curve``).
- *Choosing t* happens on validation data (``threshold_for_recall``). The test data then measures
  the chosen t as it will behave on new cases (``screening_report``): chosen and measured on the
  same data, the recall would look better than it is.
- *Subgroups*: one accuracy can hide a group the model fails (one hospital's scanner; here one
  source photo or texture). ``group_metrics`` reports each group and the gap between best and worst.

(These live next to ``evaluation.py`` rather than in it to keep each module short enough to read.)
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .evaluation import as_labels, as_outputs, confusion_matrix


def _one_vs_rest(probs: Any, y_true: Any, positive: int, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(the positive class's probability per example, is the example of that class?), checked."""
    probs = as_outputs(probs, names[0])
    y_true = as_labels(y_true, names[1], num_classes=probs.shape[1], n=len(probs))
    if isinstance(positive, bool) or not isinstance(positive, numbers.Integral) \
            or not 0 <= positive < probs.shape[1]:
        raise ValueError(f"positive should be a class index from 0 to {probs.shape[1] - 1}; got {positive!r}. "
                         "For a class name: data.classes.index(name).")
    is_positive = y_true == positive
    if not is_positive.any():
        raise ValueError(f"{names[1]} has no example of class {positive}: recall (the share of them "
                         "that is found) is undefined.")
    return probs[:, positive], is_positive


def _fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise ValueError(f"{name} should be a fraction in (0, 1], e.g. 0.9 for 90 %; got {value!r}.")
    return float(value)


# ----------------------------------------------------------------------- precision and recall
class PrecisionRecall(NamedTuple):
    """``precision_recall_curve``'s result: one point per threshold, thresholds from high to low."""

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray
    average_precision: float
    prevalence: float  # the share of positives: the precision of flagging at random


def precision_recall_curve(probs: Any, y_true: Any, positive: int) -> PrecisionRecall:
    """Precision and recall of "flag when ``probs[:, positive] >= t``" for every threshold t that matters.

    One-vs-rest: class ``positive`` against all the others. The thresholds that matter are the
    distinct scores, from high to low; each one flags the next score's examples too (equal scores
    are flagged together), so recall never falls. At each threshold:

        precision = found / flagged,   recall = found / all examples of the class.

    Average precision = the sum over thresholds of (gain in recall) x (precision there): the area
    under the step-shaped curve; 1.0 when every positive is ranked above every negative. Flagging at
    random gives a precision equal to the prevalence, the share of positives (Saito & Rehmsmeier
    2015): compare the curve with that floor, not with 0.5.
    """
    scores, is_positive = _one_vs_rest(probs, y_true, positive, ("probs", "y_true"))
    order = np.argsort(-scores, kind="stable")
    scores, is_positive = scores[order], is_positive[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last example of each distinct score
    found = np.cumsum(is_positive)[last]
    flagged = last + 1
    precision = found / flagged
    recall = found / is_positive.sum()
    average_precision = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    return PrecisionRecall(precision, recall, scores[last], average_precision, float(is_positive.mean()))


# ----------------------------------------------------------------------------------- screening
def threshold_for_recall(probs_val: Any, y_val: Any, positive: int, target_recall: float,
                         max_flagged: float | None = None) -> float:
    """The highest threshold that still finds ``target_recall`` of class ``positive`` in the validation data.

    Screening flags an example when ``probs[:, positive] >= threshold``. Sort the P positives'
    scores from high to low: to find k = ceil(target x P) of them the threshold must come down to
    the k-th score. Any higher finds fewer; any lower only adds false alarms. Choose it on
    validation data, then measure it on the test data with ``screening_report``: there the recall
    can come out below the target, and the lesson shows by how much.

    Any target up to 1 can be met by flagging everything. ``max_flagged`` (a share of the
    validation examples, e.g. 0.3 when a clinic can review 30 % of cases) says what you can afford;
    a target that needs more raises an error instead of returning a threshold that flags too much.
    """
    target_recall = _fraction(target_recall, "target_recall")
    if max_flagged is not None:
        max_flagged = _fraction(max_flagged, "max_flagged")
    scores, is_positive = _one_vs_rest(probs_val, y_val, positive, ("probs_val", "y_val"))
    positives = np.sort(scores[is_positive])[::-1]
    # The 1e-9 absorbs rounding: 0.9 * 10 is 9.000000000000002 in floating point, not 9.
    k = max(1, math.ceil(target_recall * len(positives) - 1e-9))
    threshold = float(positives[k - 1])
    flagged = float(np.mean(scores >= threshold))
    if max_flagged is not None and flagged > max_flagged:
        raise ValueError(f"A recall of {target_recall:.0%} on class {positive} needs the threshold down at "
                         f"{threshold:.3g}, which flags {flagged:.0%} of the validation examples, more than "
                         f"max_flagged={max_flagged:.0%}. Lower the target, allow more flags, or improve the model.")
    return threshold


@dataclass
class ScreeningReport:
    """What a threshold does on one data set (``screening_report``'s result)."""

    threshold: float
    positive: int
    recall: float     # found / positives
    precision: float  # found / flagged (0 when nothing is flagged)
    flagged: int      # examples at or above the threshold
    found: int        # flagged examples that are of the class (true positives)
    positives: int    # examples of the class
    n: int            # examples in all

    def __repr__(self) -> str:
        return (f"threshold {self.threshold:.4g} on class {self.positive}: flags {self.flagged} of {self.n} "
                f"examples; finds {self.found} of the {self.positives} positives (recall {self.recall:.3f}), "
                f"misses {self.positives - self.found}; precision {self.precision:.3f}")


def screening_report(probs_test: Any, y_test: Any, positive: int, threshold: float) -> ScreeningReport:
    """Recall, precision and the number flagged when ``probs_test[:, positive] >= threshold`` flags an example.

    Use it on test data with a threshold chosen on validation data (``threshold_for_recall``).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold should be a probability in [0, 1]; got {threshold!r}.")
    scores, is_positive = _one_vs_rest(probs_test, y_test, positive, ("probs_test", "y_test"))
    flags = scores >= threshold
    found, flagged, positives = int(np.sum(flags & is_positive)), int(flags.sum()), int(is_positive.sum())
    return ScreeningReport(threshold=float(threshold), positive=int(positive), recall=found / positives,
                           precision=found / flagged if flagged else 0.0, flagged=flagged, found=found,
                           positives=positives, n=len(scores))


# ------------------------------------------------------------------------------------ subgroups
@dataclass
class GroupReport:
    """Accuracy and per-class recall within each subgroup (``group_metrics``'s result)."""

    groups: list[str]
    support: np.ndarray   # examples per group
    accuracy: np.ndarray  # one per group
    recall: np.ndarray    # groups x classes; NaN where a group has no example of the class
    classes: list[str]
    gap: float            # best minus worst group accuracy
    worst: str            # the group with the lowest accuracy

    def _rows(self) -> list[list[str]]:
        """The table as text cells: group, n, accuracy, then recall per class ("-": no such example)."""
        return [[g, str(n), f"{acc:.3f}", *("-" if np.isnan(r) else f"{r:.2f}" for r in recall)]
                for g, n, acc, recall in zip(self.groups, self.support, self.accuracy, self.recall)]

    def _header(self) -> list[str]:
        return ["group", "n", "accuracy", *(f"recall {c}" for c in self.classes)]

    def __repr__(self) -> str:
        table = [self._header(), *self._rows()]
        widths = [max(len(row[k]) for row in table) for k in range(len(table[0]))]
        lines = ["  ".join(cell.rjust(w) if k else cell.ljust(w) for k, (cell, w) in enumerate(zip(row, widths)))
                 for row in table]
        return "\n".join(lines + [f"gap (best - worst accuracy) {self.gap:.3f}; worst group: {self.worst}"])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self._header())
        rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in self._rows())
        return (f"<table><tr>{head}</tr>{rows}</table><p>gap (best &minus; worst accuracy) "
                f"<b>{self.gap:.3f}</b>; worst group: {self.worst}</p>")


def group_metrics(y_true: Any, y_pred: Any, groups: Any, classes: list[str] | None = None) -> GroupReport:
    """Accuracy and per-class recall in each subgroup of the examples, and the gap between groups.

    ``groups[i]`` names example i's group (e.g. the photo or texture it was cut from); ``classes``
    (names in label order) default to "0", "1", ... Recall is NaN for a class a group does not
    contain. Read the gap with the group sizes: in a group of 20 examples one mistake moves the
    accuracy by 5 points.
    """
    y_true = as_labels(y_true, "y_true", num_classes=None if classes is None else len(classes))
    y_pred = as_labels(y_pred, "y_pred", num_classes=None if classes is None else len(classes), n=len(y_true))
    groups = np.asarray([str(g) for g in (groups.tolist() if hasattr(groups, "tolist") else groups)])
    if len(groups) != len(y_true):
        raise ValueError(f"groups has {len(groups)} entries but there are {len(y_true)} predictions: "
                         "one group per example.")
    names, which = np.unique(groups, return_inverse=True)
    if len(names) == len(groups) > 1:
        raise ValueError("Every example is in a group of its own: pass what examples share (the source photo, "
                         "the texture), not an id per example.")
    num_classes = len(classes) if classes is not None else int(max(y_true.max(), y_pred.max())) + 1
    support, accuracy, recall = [], [], []
    for g in range(len(names)):
        cm = confusion_matrix(y_true[which == g], y_pred[which == g], num_classes)
        present = cm.sum(axis=1)
        support.append(int(cm.sum()))
        accuracy.append(np.trace(cm) / cm.sum())
        recall.append(np.where(present > 0, np.diag(cm) / np.maximum(present, 1), np.nan))
    accuracy = np.array(accuracy)
    return GroupReport(groups=[str(n) for n in names], support=np.array(support), accuracy=accuracy,
                       recall=np.array(recall), gap=float(accuracy.max() - accuracy.min()),
                       classes=[str(c) for c in classes] if classes is not None else
                       [str(k) for k in range(num_classes)], worst=str(names[int(np.argmin(accuracy))]))
