"""Exercise checks: instant feedback in the notebook, the same verdicts when an instructor grades.

Each graded item is split on purpose, so that the part that decides never runs beside the learner's code:

- ``draw(seed) -> probe``: fresh inputs for this one check (random tensors, a randomly initialised
  model, a shuffled table), the same for the same ``seed`` wherever it is drawn;
- ``collect(probe, **values) -> evidence``: runs in the learner's kernel and turns what the learner's
  code does *on the probe* into plain JSON evidence (numbers, strings, lists; tensors as safetensors);
- ``judge(evidence, probe) -> Verdict``: decides passed / not yet, working out the right answer for
  the same probe itself.

``draw`` and ``collect`` live in ``tlkit/course/probes/exNN_*.py`` and know nothing of the answer;
``judge`` lives in ``tlkit/course/checks/exNN_*.py``. In the learner's notebook all three run at once
and a check cell prints one stable line::

    q1: passed
    q2: not yet — the head should have 8 outputs, it has 1000

When an instructor grades (``tlkit grade``), the submission runs in a sandbox where the checks and
the quiz keys do not exist; the grader draws a probe from a seed nobody can predict, the sandboxed
kernel reports what the learner's code did on it, and the grader judges in its own process. Evidence
replayed from an honest run, or from a classmate's, answers another probe and fails.

Quiz items (``choice_item``, ``number_item``, ``quiz_item``) have no probe: their answer is a value,
which the grader reads from the notebook's *text* (``answer_q4 = "b"`` or ``answer_q5 = 30 / 40``),
never from the running kernel. So the check in the notebook asks for the answer written as such a
literal too (``literal_assignment``).

Exercises are defined in ``tlkit/course/checks/exNN.py`` modules; ``tl.exercise("01")`` loads one.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import importlib
import json
import math
import pkgutil
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

EVIDENCE_MIME = "application/vnd.tlkit.evidence+json"
MAX_EVIDENCE_BYTES = 2_000_000


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
    as keyword arguments). ``points`` weighs the item in the grade. With ``draw``, every check draws
    a fresh probe: ``collect(probe, **values)`` and ``judge(evidence, probe)``. Without it (items
    that only look at what the learner made) they are ``collect(**values)`` and ``judge(evidence)``.
    ``answer`` is set for quiz items: the name whose literal value the grader reads from the text.
    """
    id: str
    needs: tuple[str, ...]
    collect: Callable[..., dict]
    judge: Callable[..., Verdict]
    question: str = ""
    points: float = 1.0
    draw: Callable[[int], Any] | None = None
    answer: str | None = None

    def probe(self, seed: int):
        return self.draw(seed) if self.draw is not None else None


@dataclass(frozen=True)
class Ask:
    """The learner's side of a probed item, as ``tlkit/course/probes/exNN.py`` declares it."""
    needs: tuple[str, ...]
    collect: Callable[..., dict]
    draw: Callable[[int], Any] | None = None


def probed_item(item_id: str, ask: Ask, judge: Callable[..., Verdict], question: str = "",
                points: float = 1.0) -> Item:
    """An item whose ``needs``, ``collect`` and ``draw`` come from the probes module, its judge from the checks."""
    return Item(item_id, ask.needs, ask.collect, judge, question, points, draw=ask.draw)


def new_seed() -> int:
    """A seed nobody can predict (the operating system's randomness), for one probe."""
    return secrets.randbits(62)


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

    def collect(self, item_id: str, namespace: dict, probe: Any = None, *, from_notebook: bool = False) -> dict:
        """Evidence for ``item_id`` from the learner's variables; problems become ``{"problem": ...}``.

        ``from_notebook``: the values are the notebook's own variables, so a quiz answer must also be
        written as a literal in the cell that sets it (the grader reads it from there).
        """
        item = self.item(item_id)
        if item.answer and from_notebook:
            problem = answer_written_as_literal(item.answer, namespace.get("In"))
            if problem:
                return {"problem": problem}
        return collect_evidence(item.needs, item.collect, namespace, probe, probed=item.draw is not None)

    def judge(self, item_id: str, evidence: dict, probe: Any = None) -> Verdict:
        """The verdict for ``evidence`` (on ``probe``); never raises for bad evidence (it just does not pass)."""
        if not isinstance(evidence, dict):
            return Verdict(False, "no evidence was recorded for this item")
        if "problem" in evidence:
            return Verdict(False, str(evidence["problem"]))
        item = self.item(item_id)
        try:
            verdict = item.judge(evidence, probe) if item.draw is not None else item.judge(evidence)
        except Exception as err:
            return Verdict(False, f"the answer has an unexpected form ({type(err).__name__}: {str(err)[:120]})")
        if type(verdict) is not Verdict:  # strict: an object that only pretends to be one does not count
            return Verdict(False, "the check could not judge this answer")
        return verdict

    def verdict(self, item_id: str, *, seed: int | None = None, **values: Any) -> Verdict:
        """The verdict for one item on a fresh probe (or the one ``seed`` draws). Without ``values``,
        the notebook's variables are used."""
        namespace = values or caller_namespace(depth=2)
        item = self.item(item_id)
        probe = item.probe(new_seed() if seed is None else seed)
        return self.judge(item_id, self.collect(item_id, namespace, probe, from_notebook=not values), probe)

    def check(self, item_id: str, **values: Any) -> None:
        """Check one item now and print its one-line feedback (what a check cell does)."""
        namespace = values or caller_namespace(depth=2)
        item = self.item(item_id)
        probe = item.probe(new_seed())
        evidence = self.collect(item_id, namespace, probe, from_notebook=not values)
        show_line(self.judge(item_id, evidence, probe).line(item_id))

    def __repr__(self) -> str:
        return f"Exercise({self.name!r}, items={self.ids})"


def collect_evidence(needs: tuple[str, ...], collect: Callable[..., dict], namespace: dict, probe: Any = None,
                     probed: bool = False) -> dict:
    """Run one item's ``collect`` on the learner's variables; whatever goes wrong becomes a problem to show.

    The one place that calls a learner's code for a check: in the notebook (``Exercise.check``) and in
    the grader's cells inside the sandbox (``tlkit.course.probes.answer``).
    """
    missing = [name for name in needs if name not in namespace]
    if missing:
        names = ", ".join(f"`{n}`" for n in missing)
        return {"problem": f"{names} is not defined yet: write it in the cell above and run that cell"}
    values = {name: namespace[name] for name in needs}
    try:
        evidence = collect(probe, **values) if probed else collect(**values)
    except NotImplementedError:
        return {"problem": "the cell above still says NotImplementedError: replace it with your code"}
    except Exception as err:  # the learner's code raised: that is feedback, not a crash
        return {"problem": f"your code raised {type(err).__name__}: {str(err)[:200]}"}
    try:
        return plain_evidence(evidence)
    except ExerciseError as err:  # e.g. a NaN the learner's code produced: feedback, not a crash
        return {"problem": f"the answer could not be recorded: {err}"}


def tensor_evidence(tensors: dict) -> str:
    """Tensors as evidence: safetensors bytes in base64 (inert data: loading them runs no code)."""
    from safetensors.torch import save

    return base64.b64encode(save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})).decode()


def tensors_from(evidence: Any) -> dict:
    """The tensors ``tensor_evidence`` packed; raises ``ExerciseError`` for anything else."""
    from safetensors.torch import load

    if type(evidence) is not str:
        raise ExerciseError("expected tensors")
    try:
        return load(base64.b64decode(evidence, validate=True))
    except Exception as err:
        raise ExerciseError(f"not a safetensors payload ({type(err).__name__})") from None


# ---------------------------------------------------------------- quiz answers, read from the text

class _NotLiteral(Exception):
    pass


def literal_value(node: ast.AST) -> Any:
    """The value of a literal answer: a string or number, or arithmetic on numbers (``30 / 40``, ``2e-3 * 0.5**3``).

    Evaluated from the syntax tree alone: no name, call or attribute is looked up, so nothing runs.
    """
    if isinstance(node, ast.Constant) and type(node.value) in (str, int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = literal_value(node.operand)
        if type(value) in (int, float):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
        left, right = literal_value(node.left), literal_value(node.right)
        if type(left) in (int, float) and type(right) in (int, float):
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
                raise _NotLiteral
            try:
                return {ast.Add: lambda: left + right, ast.Sub: lambda: left - right,
                        ast.Mult: lambda: left * right, ast.Div: lambda: left / right,
                        ast.Pow: lambda: left ** right}[type(node.op)]()
            except (ZeroDivisionError, OverflowError):
                raise _NotLiteral from None
    raise _NotLiteral


def _statements(source: str) -> list[ast.stmt]:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # IPython magics
    try:
        return ast.parse("\n".join(lines)).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []


def literal_assignment(sources: list[str], name: str) -> tuple[bool, Any]:
    """``(found, value)`` of the last top-level ``name = <literal>`` in ``sources`` (cells in order).

    ``found`` is False when no cell assigns ``name``; ``value`` is ``NOT_LITERAL`` when the last
    assignment computes its value instead of writing it (``answer_q5 = tp / (tp + fp)``).
    """
    found, value = False, None
    for source in sources:
        if name not in source:
            continue
        for stmt in _statements(source):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else (
                [stmt.target] if isinstance(stmt, ast.AnnAssign) and stmt.value is not None else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found = True
                try:
                    value = literal_value(stmt.value)
                except (_NotLiteral, RecursionError):
                    value = NOT_LITERAL
    return found, value


NOT_LITERAL = object()


def not_literal_hint(name: str) -> str:
    return (f"write the answer itself, e.g. `{name} = \"b\"` or `{name} = 30 / 40`: quiz answers are read from "
            f"the notebook's text, so compute it elsewhere and write the result here")


def answer_written_as_literal(name: str, history: Any) -> str | None:
    """In the learner's kernel: a problem when the cell that set ``name`` computed it instead of writing it."""
    if not isinstance(history, list):  # not IPython (a plain script or a test): nothing to read
        return None
    found, value = literal_assignment([h for h in history if isinstance(h, str)], name)
    if found and value is NOT_LITERAL:
        return not_literal_hint(name)
    return None


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
    return Item(item_id, (name,), collect, judge, question, points, answer=name)


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
    return Item(item_id, (name,), collect, judge, question, points, answer=name)


def quiz_item(item_id: str, name: str, quiz: str, question: str, points: float = 1.0) -> Item:
    """An item graded by a quiz question: the learner sets ``name`` to an answer.

    The key and the feedback live in a quiz file, judged the way the lessons' quiz widgets judge. The
    exercises use their own questions (``quiz="exercises/03"``: ``tlkit/course/quizzes/exercises/03.yaml``),
    variants and transfers of the lesson's ideas rather than the lesson quiz's questions again; a lesson
    quiz (``"03"``) works too. ``question`` is the question's id (``"q4"``). The file is read once, when
    the exercise is loaded: a grader that loaded it before any submission ran keeps that key in memory,
    whatever happens to the file later.
    """
    from .widgets.questions import QuizError, load_quiz

    try:
        loaded = load_quiz(quiz)
        q, broken = loaded.question(question), None
    except (QuizError, OSError, ValueError, KeyError) as err:  # shown when judging, in the quiz's own words
        loaded, q, broken = None, None, f"the quiz file for this item could not be read: {err}"

    def collect(**values):
        value = values[name]
        if hasattr(value, "item") and callable(value.item):  # a 0-d tensor or numpy scalar
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return {"problem": f"{name} should be a letter or a number, got {type(value).__name__}"}
        return {"answer": str(value)}

    def judge(evidence):
        answer = evidence.get("answer")
        if type(answer) is not str:
            return Verdict(False, f"set {name} to your answer")
        if broken:
            return Verdict(False, broken)
        result = loaded.judge(q, answer)
        return Verdict(True) if result.passed else Verdict(False, result.feedback)

    return Item(item_id, (name,), collect, judge, q.text if q else "", points, answer=name)


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
    """Load an exercise by its number or name: ``tl.exercise("01")`` or the full notebook stem.

    Inside the grader's sandbox the checks do not exist; there this returns an exercise without
    items, whose ``check`` says that the grader judges (the grader replaces the check cells anyway).
    """
    from . import checks
    key = str(name).strip()
    modules = [info.name for info in pkgutil.iter_modules(checks.__path__) if info.name.startswith("ex")]
    for module in modules:
        ex = _load_module(module).EXERCISE
        if ex.name == key or ex.name.split("_", 1)[0] == key.zfill(2):
            return ex
    if not modules:
        return GradedElsewhere(key)
    raise ExerciseError(f"no exercise called {name!r}; available: {', '.join(available_exercises())}")


def show_line(line: str) -> None:
    """A check cell's line. In a notebook it is shown as display data (``text/plain``), the form the
    student copies store under each check cell (with a picture saying what the line means, see
    ``tlkit.course.release``), so that ``pytest --nbval-lax`` compares like with like; elsewhere it is printed."""
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is None:
        print(line)
        return
    from IPython.display import display
    display({"text/plain": line}, raw=True)


class GradedElsewhere(Exercise):
    """What ``tl.exercise`` gives inside the grader's sandbox, where the checks are hidden."""

    def __init__(self, name: str):
        super().__init__(name, [])

    def item(self, item_id: str) -> Item:
        raise ExerciseError("the checks are not available here: the grader judges this notebook")

    def check(self, item_id: str, **values: Any) -> None:
        show_line(f"{item_id}: judged by the grader")


def _load_module(module_name: str):
    return importlib.import_module(f"{__package__}.checks.{module_name}")


def caller_namespace(depth: int = 2) -> dict:
    """The notebook's variables: IPython's user namespace, else the globals ``depth`` frames up."""
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None:
        return shell.user_ns
    return sys._getframe(depth).f_globals
