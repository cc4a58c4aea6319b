"""Exercise checks: instant feedback in the notebook, the same verdicts when an instructor grades.

Each graded item is split in two on purpose:

- ``collect(values) -> evidence``: runs in the learner's kernel and turns what the learner made
  (a number, a model, a function) into plain JSON-able *evidence* (numbers, strings, lists).
- ``judge(evidence) -> Verdict``: decides passed / not yet from the evidence alone.

In the notebook both run at once and a check cell prints one stable line::

    q1: passed
    q2: not yet — the head should have 8 outputs, it has 1000

When an instructor grades (``tlkit grade``), ``collect`` still runs in the submission's kernel but
``judge`` runs in the grader's own process, which imported this code before any submission ran. So
redefining ``check`` or patching the judge inside a notebook changes nothing about the grade: the
only way to produce passing evidence is to produce what the item asks for.

Exercises are defined in ``tlkit/course/checks/exNN.py`` modules; ``tl.exercise("01")`` loads one.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import pkgutil
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

EVIDENCE_MIME = "application/vnd.tlkit.evidence+json"
MAX_EVIDENCE_BYTES = 200_000


class ExerciseError(ValueError):
    """An exercise or item that does not exist, or evidence that is not plain JSON."""


@dataclass
class Verdict:
    """The result of one check: ``passed`` and, when not, a hint that says what to do next."""
    passed: bool
    hint: str = ""

    def line(self, item_id: str) -> str:
        """The stable one-line feedback that check cells print (and nbval compares)."""
        return f"{item_id}: passed" if self.passed else f"{item_id}: not yet — {self.hint or 'try again'}"


@dataclass
class Item:
    """One graded item of an exercise.

    ``needs`` names the notebook variables the learner defines (``collect`` receives their values
    as keyword arguments). ``points`` weighs the item in the grade.
    """
    id: str
    needs: tuple[str, ...]
    collect: Callable[..., dict]
    judge: Callable[[dict], Verdict]
    question: str = ""
    points: float = 1.0


@dataclass
class Exercise:
    """A named list of items, e.g. ``Exercise("01_what_a_pretrained_model_knows", [...])``."""
    name: str
    items: list[Item] = field(default_factory=list)

    def item(self, item_id: str) -> Item:
        for it in self.items:
            if it.id == item_id:
                return it
        known = ", ".join(it.id for it in self.items)
        raise ExerciseError(f"exercise {self.name!r} has no item {item_id!r}; its items are: {known}")

    @property
    def ids(self) -> list[str]:
        return [it.id for it in self.items]

    def collect(self, item_id: str, namespace: dict) -> dict:
        """Evidence for ``item_id`` from the learner's variables; problems become ``{"problem": ...}``."""
        item = self.item(item_id)
        missing = [name for name in item.needs if name not in namespace]
        if missing:
            names = ", ".join(f"`{n}`" for n in missing)
            return {"problem": f"{names} is not defined yet: write it in the cell above and run that cell"}
        try:
            evidence = item.collect(**{name: namespace[name] for name in item.needs})
        except NotImplementedError:
            return {"problem": "the cell above still says NotImplementedError: replace it with your code"}
        except Exception as err:  # the learner's code raised: that is feedback, not a crash
            return {"problem": f"your code raised {type(err).__name__}: {str(err)[:200]}"}
        try:
            return plain_evidence(evidence)
        except ExerciseError as err:  # e.g. a NaN the learner's code produced: feedback, not a crash
            return {"problem": f"the answer could not be recorded: {err}"}

    def judge(self, item_id: str, evidence: dict) -> Verdict:
        """The verdict for ``evidence``; never raises for bad evidence (it just does not pass)."""
        if not isinstance(evidence, dict):
            return Verdict(False, "no evidence was recorded for this item")
        if "problem" in evidence:
            return Verdict(False, str(evidence["problem"]))
        try:
            verdict = self.item(item_id).judge(evidence)
        except Exception as err:
            return Verdict(False, f"the answer has an unexpected form ({type(err).__name__}: {str(err)[:120]})")
        if type(verdict) is not Verdict:  # strict: an object that only pretends to be one does not count
            return Verdict(False, "the check could not judge this answer")
        return verdict

    def verdict(self, item_id: str, **values: Any) -> Verdict:
        """The verdict for one item. Without ``values``, the notebook's variables are used."""
        namespace = values or _caller_namespace(depth=2)
        return self.judge(item_id, self.collect(item_id, namespace))

    def check(self, item_id: str, **values: Any) -> None:
        """Check one item now and print its one-line feedback (what a check cell does)."""
        namespace = values or _caller_namespace(depth=2)
        print(self.judge(item_id, self.collect(item_id, namespace)).line(item_id))

    def __repr__(self) -> str:
        return f"Exercise({self.name!r}, items={self.ids})"


def plain_evidence(value: Any) -> dict:
    """Check that evidence is a small dict of plain JSON values (no objects, no NaN) and return it."""
    if not isinstance(value, dict):
        raise ExerciseError(f"collect must return a dict, got {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ExerciseError(f"evidence must be plain JSON (numbers, strings, lists, dicts): {err}") from None
    if len(text) > MAX_EVIDENCE_BYTES:
        raise ExerciseError(f"evidence is {len(text)} bytes; keep it under {MAX_EVIDENCE_BYTES}")
    return json.loads(text)  # a fresh copy made of plain types only


def _caller_namespace(depth: int = 2) -> dict:
    """The notebook's variables: IPython's user namespace, else the globals ``depth`` frames up."""
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None:
        return shell.user_ns
    return sys._getframe(depth).f_globals


# ---------------------------------------------------------------- common kinds of items

def digest(item_id: str, answer: Any) -> str:
    """A salted hash of an answer, so that answer keys are not readable at a glance in the source."""
    return hashlib.sha256(f"tlkit:{item_id}:{_normalise(answer)}".encode()).hexdigest()[:16]


def _normalise(answer: Any) -> str:
    return str(answer).strip().lower()


def choice_item(item_id: str, name: str, correct_digest: str, options: str,
                wrong_hint: str, question: str = "", points: float = 1.0) -> Item:
    """A multiple-choice item: the learner sets ``name = "b"``. ``options`` lists the valid letters."""
    def collect(**values):
        return {"answer": _normalise(values[name])}

    def judge(evidence):
        answer = evidence.get("answer")
        if type(answer) is not str or answer not in options:
            return Verdict(False, f"set {name} to one of {', '.join(repr(o) for o in options)}")
        if digest(item_id, answer) == correct_digest:
            return Verdict(True)
        return Verdict(False, wrong_hint)
    return Item(item_id, (name,), collect, judge, question, points)


def number_item(item_id: str, name: str, expected: float | Callable[[], float], *,
                rel_tol: float = 0.0, abs_tol: float = 0.0, wrong_hint: str = "",
                question: str = "", points: float = 1.0) -> Item:
    """A numeric item with a tolerance: the learner sets ``name = 42``.

    ``expected`` may be a function, computed when judging (e.g. a parameter count), so the key is not
    a constant sitting in the source.
    """
    def collect(**values):
        value = values[name]
        if hasattr(value, "item") and callable(value.item):  # a 0-d tensor or numpy scalar
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return {"problem": f"{name} should be a number, got {type(value).__name__}"}
        return {"value": float(value)}

    def judge(evidence):
        value = evidence.get("value")
        if type(value) is not float or not math.isfinite(value):
            return Verdict(False, f"{name} should be a finite number")
        target = expected() if callable(expected) else expected
        if math.isclose(value, target, rel_tol=rel_tol, abs_tol=abs_tol):
            return Verdict(True)
        return Verdict(False, wrong_hint or f"{name} = {value:g} is not right yet")
    return Item(item_id, (name,), collect, judge, question, points)


def quiz_item(item_id: str, name: str, quiz: str, question: str, points: float = 1.0) -> Item:
    """An item graded by a quiz question: the learner sets ``name`` to an answer.

    The key and the feedback live in a quiz file, judged the way the lessons' quiz widgets judge. The
    exercises use their own questions (``quiz="exercises/03"``: ``tlkit/course/quizzes/exercises/03.yaml``),
    variants and transfers of the lesson's ideas rather than the lesson quiz's questions again; a lesson
    quiz (``"03"``) works too. ``question`` is the question's id (``"q4"``). The judge reloads the file itself.
    """
    def collect(**values):
        value = values[name]
        if hasattr(value, "item") and callable(value.item):  # a 0-d tensor or numpy scalar
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return {"problem": f"{name} should be a letter or a number, got {type(value).__name__}"}
        return {"answer": str(value)}

    def judge(evidence):
        from .widgets.questions import load_quiz

        answer = evidence.get("answer")
        if type(answer) is not str:
            return Verdict(False, f"set {name} to your answer")
        loaded = load_quiz(quiz)
        result = loaded.judge(loaded.question(question), answer)
        return Verdict(True) if result.passed else Verdict(False, result.feedback)

    text = ""
    try:
        from .widgets.questions import load_quiz
        text = load_quiz(quiz).question(question).text
    except Exception:  # a broken quiz file shows up when judging, with the quiz's own message
        pass
    return Item(item_id, (name,), collect, judge, text, points)


# ---------------------------------------------------------------- finding exercises

def available_exercises() -> list[str]:
    """Names of the exercises tlkit can check, e.g. ``["01_what_a_pretrained_model_knows", ...]``."""
    from . import checks
    names = []
    for info in pkgutil.iter_modules(checks.__path__):
        if info.name.startswith("ex"):
            names.append(_load_module(info.name).EXERCISE.name)
    return sorted(names)


def exercise(name: str) -> Exercise:
    """Load an exercise by its number or name: ``tl.exercise("01")`` or the full notebook stem."""
    from . import checks
    key = str(name).strip()
    for info in pkgutil.iter_modules(checks.__path__):
        if not info.name.startswith("ex"):
            continue
        ex = _load_module(info.name).EXERCISE
        if ex.name == key or ex.name.split("_", 1)[0] == key.zfill(2):
            return ex
    raise ExerciseError(f"no exercise called {name!r}; available: {', '.join(available_exercises())}")


def _load_module(module_name: str):
    # relative to this package, so that a private copy of tlkit (see emit_evidence) loads its own checks
    return importlib.import_module(f"{__package__}.checks.{module_name}")


# ---------------------------------------------------------------- used by the grader's cells

def _private_tlkit(tag: str):
    """A private copy of the tlkit package, loaded from its files under the name ``_tlkit_grader_<tag>``.

    A submission may have patched the tlkit it imported (``Exercise.collect``, an item's ``collect``,
    ``tl.exercise``). A copy loaded from disk does not see those patches. The caller removes it
    from ``sys.modules`` again, so that no later cell of the submission can find and patch it.
    """
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent  # the tlkit package
    name = f"_tlkit_grader_{tag}"
    spec = importlib.util.spec_from_file_location(name, root / "__init__.py",
                                                  submodule_search_locations=[str(root)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return name


def emit_evidence(exercise_name: str, item_id: str, nonce: str) -> None:
    """Collect evidence for one item in the learner's kernel and hand it to the grader as output.

    The grader inserts a cell calling this in place of each check cell, with a fresh random
    ``nonce`` that no earlier cell could know, and reads the evidence from that cell's output.
    The checks used are a private copy of tlkit loaded from disk for this cell alone, so patching
    the checks earlier in the notebook changes nothing. (Code in the kernel can still tamper with
    Python itself; ``tlkit grade`` also flags submissions that reach into the grader's code.)
    """
    from IPython.display import display
    name = _private_tlkit(nonce)
    try:
        private = importlib.import_module(f"{name}.course.exercises")
        evidence = private.exercise(exercise_name).collect(item_id, _caller_namespace())
    except Exception as err:  # an unknown exercise or item: the grader reports it as a problem
        evidence = {"problem": f"{type(err).__name__}: {err}"}
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    display({EVIDENCE_MIME: {"nonce": nonce, "item": item_id, "evidence": evidence}}, raw=True)
