"""A lesson's claims: the sentence, the number behind it, and the line nbval compares.

A check cell in a lesson states what the lesson measured, so that nbval notices when it stops
holding::

    tl.claim("Fine-tuning all layers beats the frozen body by more than 8 points", gain, ">", 0.08)

prints ``Fine-tuning all layers beats the frozen body by more than 8 points: True`` (the line that a
``# NBVAL_CHECK_OUTPUT`` cell compares) and returns whether it holds. A claim that needs no
threshold takes a yes/no value: ``tl.claim("chelsea's top-1 is a cat class", 281 <= i <= 285)``.

Why a function and not a ``print``: fine-tuning is chaotic, so a claim counts only if it holds over
seeds and machines with room to spare. ``benchmarks/claims.py`` runs each lesson many times (seeds
and torch thread counts) with the environment variable ``TLKIT_CLAIMS_LOG`` set to a file; every
claim then also appends one JSON line there (its value, threshold and margin), and the benchmark
prints, per claim, the worst case over all runs and the margin left.
"""
from __future__ import annotations

import json
import math
import operator
import os
from numbers import Real

LOG_VARIABLE = "TLKIT_CLAIMS_LOG"

# comparison -> (how it is tested, how the margin is measured: positive = holds with room to spare)
COMPARISONS = {
    ">": (operator.gt, lambda value, threshold: value - threshold),
    ">=": (operator.ge, lambda value, threshold: value - threshold),
    "<": (operator.lt, lambda value, threshold: threshold - value),
    "<=": (operator.le, lambda value, threshold: threshold - value),
}


def claim(text: str, value, comparison: str | None = None, threshold: float | None = None) -> bool:
    """Print ``"<text>: True"`` or ``"<text>: False"`` and return whether the claim holds.

    ``value`` is the measured number and the claim is ``value <comparison> threshold`` (one of
    ``>``, ``>=``, ``<``, ``<=``); or, without a comparison, ``value`` is a yes/no answer.
    With ``TLKIT_CLAIMS_LOG`` set, the claim is also appended to that file as one JSON line.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("claim(text, ...): text must be the sentence the check states, e.g. "
                         "'Fine-tuning beats the frozen body by more than 8 points'.")
    if comparison is None:
        if threshold is not None:
            raise ValueError("claim: a threshold needs a comparison, e.g. claim(text, gain, '>', 0.08).")
        if not isinstance(value, bool):
            raise TypeError(f"claim {text!r}: without a comparison the value must be True or False, got "
                            f"{type(value).__name__}; for a number write claim(text, value, '>', threshold).")
        holds, margin, number = value, None, None
    else:
        if comparison not in COMPARISONS:
            raise ValueError(f"claim {text!r}: comparison must be one of {sorted(COMPARISONS)}, got {comparison!r}.")
        number = _as_number(value, "value", text)
        limit = _as_number(threshold, "threshold", text)
        test, measure = COMPARISONS[comparison]
        holds = bool(test(number, limit))
        margin = float(measure(number, limit))
    print(f"{text}: {holds}")
    _record(text=text, value=number, comparison=comparison, threshold=threshold, holds=holds, margin=margin)
    return holds


def _as_number(x, what: str, text: str) -> float:
    if hasattr(x, "item") and callable(x.item):  # a one-element tensor or NumPy scalar
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, Real) or math.isnan(float(x)):
        raise TypeError(f"claim {text!r}: the {what} must be a number, got {x!r}.")
    return float(x)


def _record(**fields) -> None:
    path = os.environ.get(LOG_VARIABLE)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(fields) + "\n")
