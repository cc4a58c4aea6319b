"""Helpers shared by the tests of each exercise's checks (tests/test_exercise_NN.py)."""
from __future__ import annotations

from tlkit.course.exercises import Exercise, new_seed

MALFORMED = ({}, {"runs": "x"}, {"eval": [1], "train": None}, {"value": "1"}, {"answer": 3},
             {"params": [["a", 1]], "outputs": [2, 8]}, {"returned": [], "weights": [1.0]},
             {"shape": [120, 8], "predictions": "all"}, {"answer": None, "value": "1", "picks": "x", "runs": 3},
             {"labels": "x", "values": [1], "shape": [3, 5], "outputs": 4}, {"counts": [True, 1.5]},
             "not a dict", None, [])


def hint(ex: Exercise, item: str, **values) -> str:
    """The hint a wrong answer gets (and the proof that it did not pass)."""
    verdict = ex.verdict(item, **values)
    assert not verdict.passed, f"{item} passed a wrong answer"
    return verdict.hint


def not_yet(verdict, *words) -> None:
    assert not verdict.passed, "a wrong answer passed"
    for word in words:
        assert word in verdict.hint, f"{word!r} not in hint {verdict.hint!r}"


def judge_on_probe(ex: Exercise, item: str, evidence, seed: int | None = None):
    """Judge hand-made evidence against a freshly drawn probe (None for items without one)."""
    return ex.judge(item, evidence, ex.item(item).probe(new_seed() if seed is None else seed))


def assert_malformed_evidence_never_passes(ex: Exercise) -> None:
    """No item passes, or raises, on evidence of the wrong shape; a recorded problem is passed on as the hint."""
    for item in ex.ids:
        for evidence in MALFORMED:
            verdict = judge_on_probe(ex, item, evidence)
            assert not verdict.passed and verdict.hint, (item, evidence)
        problem = judge_on_probe(ex, item, {"problem": "`x` is not defined yet"})
        assert not problem.passed and problem.hint == "`x` is not defined yet"
