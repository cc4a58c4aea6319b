"""Calibration: when the model says 90 %, is it right 90 % of the time?

A model is *calibrated* when its confidence (the probability of its top class) matches how often
it is right. Modern networks tend to be over-confident: Guo et al. 2017 ("On Calibration of Modern
Neural Networks", ICML) measured an expected calibration error typically between 4 and 10 % on
standard vision and text benchmarks. Two tools:

- *measure*: sort the predictions into bins of equal width by confidence (Guo et al. use 15) and
  compare each bin's accuracy with its mean confidence (``reliability_bins``, drawn by
  ``tl.plot_reliability``). The expected calibration error (ECE) is the mean gap, each bin weighted
  by its share of the predictions: 0 for a calibrated model.
- *fix*: temperature scaling divides the logits by one number T > 0 before the softmax. T > 1
  softens over-confident probabilities, T < 1 sharpens under-confident ones. Dividing all of a
  row's logits by the same T keeps their order, so the predicted class, and the accuracy, stay the
  same. T is the one that minimises the negative log-likelihood (NLL) on validation data (as in
  Guo et al.); measure the result on the test data.

Temperature scaling needs logits, not probabilities: ``tl.model_outputs(model, data)`` returns the
logits and the labels.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .evaluation import as_labels, as_outputs

# fit_temperature searches T in [LOWEST_T, HIGHEST_T]; an optimum at either end means something is off.
LOWEST_T, HIGHEST_T = 0.01, 100.0


# ------------------------------------------------------------------------------------ measuring
@dataclass
class ReliabilityBins:
    """Predictions grouped by confidence (``reliability_bins``'s result); empty bins hold NaN."""

    edges: np.ndarray       # n_bins + 1 bin edges from 0 to 1; bin m holds confidences in (edges[m], edges[m+1]]
    confidence: np.ndarray  # mean confidence in each bin
    accuracy: np.ndarray    # share of right predictions in each bin
    count: np.ndarray       # predictions in each bin

    @property
    def ece(self) -> float:
        """Expected calibration error: sum over bins of (share of predictions) x |accuracy - confidence|."""
        share = self.count / self.count.sum()
        return float(np.sum(share[self.count > 0] * np.abs(self.accuracy - self.confidence)[self.count > 0]))

    def __repr__(self) -> str:
        lines = [f"ECE {self.ece:.4f} over {int(self.count.sum())} predictions",
                 "confidence bin   mean conf  accuracy  count"]
        for m in np.flatnonzero(self.count):
            lines.append(f"({self.edges[m]:.2f}, {self.edges[m + 1]:.2f}]    {self.confidence[m]:>9.3f}  "
                         f"{self.accuracy[m]:>8.3f}  {self.count[m]:>5d}")
        return "\n".join(lines)


def reliability_bins(probs: Any, y_true: Any, n_bins: int = 15) -> ReliabilityBins:
    """Group predictions into ``n_bins`` equal-width confidence bins: mean confidence, accuracy, count per bin.

    Confidence is the top class's probability; a prediction is right when that class is the label.
    """
    probs = as_outputs(probs, "probs")
    y_true = as_labels(y_true, "y_true", num_classes=probs.shape[1], n=len(probs))
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise ValueError(f"n_bins should be a whole number of bins, at least 1; got {n_bins!r}.")
    confidence = np.clip(probs.max(axis=1), 0.0, 1.0)
    right = (probs.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") - 1 puts c in bin m when edges[m] < c <= edges[m + 1] (c = 0 goes to bin 0)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore"):  # 0 / 0 in an empty bin gives the NaN we want
        mean_confidence = np.bincount(which, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=right, minlength=n_bins) / count
    return ReliabilityBins(edges=edges, confidence=mean_confidence, accuracy=accuracy, count=count)


def expected_calibration_error(probs: Any, y_true: Any, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): the gap between accuracy and confidence, averaged over equal-width bins.

    0 means calibrated: among predictions made with confidence about 0.8, 80 % are right. A model
    that is right 60 % of the time while claiming 95 % has an ECE of about 0.35.
    """
    return reliability_bins(probs, y_true, n_bins).ece


# ------------------------------------------------------------------------ temperature scaling
def _nll(logits: np.ndarray, y_true: np.ndarray, temperature: float) -> float:
    """Mean of -log softmax(logits / T)[label], computed stably (subtract each row's maximum first)."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(y_true)), y_true]))


def _temperature(temperature: Any) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"The temperature should be a number > 0 (1 changes nothing); got {temperature!r}.")
    return float(temperature)


def negative_log_likelihood(logits: Any, y_true: Any, temperature: float = 1.0) -> float:
    """The mean cross-entropy of ``softmax(logits / temperature)`` against the labels (lower is better)."""
    logits = as_outputs(logits, "logits", probabilities=False)
    y_true = as_labels(y_true, "y_true", num_classes=logits.shape[1], n=len(logits))
    return _nll(logits, y_true, _temperature(temperature))


def fit_temperature(logits_val: Any, y_val: Any) -> float:
    """The temperature T > 0 that minimises the NLL of ``softmax(logits_val / T)`` on validation data.

    The NLL is a convex function of 1/T, so it has a single minimum, and a golden-section search
    over log T finds it: each step keeps the part of the interval that must hold the minimum (61.8 %
    of it), so 60 steps narrow [0.01, 100] to under 1e-11 (in log T). Deterministic, no learning rate.
    T > 1: the model was over-confident. Use the validation data: fitted on the test data, the
    test calibration would look better than it is.
    """
    logits = as_outputs(logits_val, "logits_val", probabilities=False)
    y_val = as_labels(y_val, "y_val", num_classes=logits.shape[1], n=len(logits))
    if np.all(logits.argmax(axis=1) == y_val):
        raise ValueError("Every validation prediction is right, so the NLL keeps falling as T shrinks towards 0 "
                         "and no T is best: there are no mistakes to calibrate against. Use more, or harder, "
                         "validation data.")
    low, high = math.log(LOWEST_T), math.log(HIGHEST_T)
    keep = (math.sqrt(5) - 1) / 2  # the golden ratio's 0.618...
    for _ in range(60):
        left, right = high - keep * (high - low), low + keep * (high - low)
        if _nll(logits, y_val, math.exp(left)) < _nll(logits, y_val, math.exp(right)):
            high = right  # the minimum is left of `right`
        else:
            low = left
    temperature = math.exp((low + high) / 2)
    if temperature < LOWEST_T * 1.01:
        raise ValueError(f"The best temperature is below {LOWEST_T}: the model is right on almost every validation "
                         "example and its logits lie very close together; there is too little to calibrate against. "
                         "Use more, or harder, validation data.")
    if temperature > HIGHEST_T * 0.99:
        raise ValueError("The validation NLL keeps falling as T grows: the logits say (almost) nothing about "
                         "the labels (accuracy near chance, or the labels do not match the logits' order).")
    return temperature


def apply_temperature(logits: Any, temperature: float) -> torch.Tensor:
    """Probabilities ``softmax(logits / temperature)``, one row per example.

    A float32 CPU tensor, like ``tl.predict``'s. The order of each row, so the predicted class, is kept.
    """
    logits = as_outputs(logits, "logits", probabilities=False)
    return torch.softmax(torch.from_numpy(logits / _temperature(temperature)), dim=1).float()
