"""The learner's side of each exercise item: what to draw, and how to run the learner's code on it.

``exNN_<name>.py`` declares ``ASKS = {"q1": Ask(needs, collect, draw), ...}``. These modules hold
no answers: ``draw(seed)`` makes the inputs (random tensors, randomly initialised models, shuffled
tables) and ``collect(probe, **values)`` records what the learner's function or model does with
them. The right answers are worked out by the judges in ``tlkit/course/checks/``, which the grader's
sandbox hides.

When ``tlkit grade`` runs a submission, each item's grader cell is one call::

    import tlkit.course.probes as _probes
    _probes.answer("03_freezing_and_fine_tuning", "q1", 2718281828459045)

with a seed the grader drew for this submission alone; the grader draws the same probe from the
same seed and judges what comes back. Nothing here is trusted: a submission may patch all of it,
and can still only pass by answering the probe it was given.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..exercises import EVIDENCE_MIME, Ask, ExerciseError, caller_namespace, collect_evidence


def asks(exercise_name: str) -> dict[str, Ask]:
    """The ``ASKS`` of one exercise, by its full name (``"03_freezing_and_fine_tuning"``)."""
    module = f"ex{exercise_name}"
    if module not in {info.name for info in pkgutil.iter_modules(__path__)}:
        raise ExerciseError(f"no probes for exercise {exercise_name!r}")
    return importlib.import_module(f"{__name__}.{module}").ASKS


def answer(exercise_name: str, item_id: str, seed: int) -> None:
    """A grader cell: run the learner's code on the probe ``seed`` draws, and show the evidence as output."""
    from IPython.display import display

    try:
        ask = asks(exercise_name)[item_id]
        probe: Any = ask.draw(seed) if ask.draw is not None else None
        evidence = collect_evidence(ask.needs, ask.collect, caller_namespace(), probe, probed=ask.draw is not None)
    except Exception as err:  # an unknown item, or a draw that failed here: the grader reports it
        evidence = {"problem": f"{type(err).__name__}: {str(err)[:200]}"}
    display({EVIDENCE_MIME: {"item": item_id, "evidence": evidence}}, raw=True)
