"""Quizzes: short questions with immediate feedback, written as plain YAML (or JSON) files.

A quiz file (``tlkit/course/quizzes/NN_<lesson>.yaml``)::

    title: Freezing and fine-tuning
    lesson: 03_freezing_and_fine_tuning        # optional
    questions:
      - id: q1                                  # optional; default q1, q2, ... by position
        type: choice                            # one right option
        text: What does `requires_grad = False` stop?
        options:                                # lettered a, b, c, ... in this order
          - The weights from learning
          - BatchNorm's running statistics from moving
        answer: a
        explanation: Shown once the answer is right: the why, in a sentence or two.
        feedback:                               # optional: what to say about a wrong option
          b: Those still move in train mode; that is the BatchNorm pitfall.
        hint: Optional, shown after a wrong answer that has no feedback of its own.
      - type: number                            # a number, right within an absolute tolerance
        text: How many weights does a Linear(1280 -> 8) layer have, with biases?
        answer: 10248
        tolerance: 0                            # optional, default 0
        explanation: 1280 x 8 weights + 8 biases.

A learner answers in the widget, or from code: ``quiz.answer("q1", "a")`` returns an ``AnswerResult``
that prints as ``q1: passed`` or ``q1: not yet — <feedback>``, which check cells and graders
compare. Numbers may be typed as ``0.25``, ``1e-3`` or ``25%`` (= 0.25).

This module imports ipywidgets only to draw the widget, so graders can load and check quizzes
without it.
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUIZ_DIR = Path(__file__).resolve().parent.parent / "quizzes"
TYPES = ("choice", "number")
_KEYS = {
    "choice": {"id", "type", "text", "options", "answer", "explanation", "feedback", "hint"},
    "number": {"id", "type", "text", "answer", "tolerance", "explanation", "hint", "unit"},
}
_REQUIRED = {"choice": ("text", "options", "answer", "explanation"), "number": ("text", "answer", "explanation")}
LETTERS = "abcdefghij"


class QuizError(ValueError):
    """A quiz file that cannot be used; the message names the file, the question and the fix."""


@dataclass
class Question:
    id: str
    type: str
    text: str
    answer: Any
    explanation: str
    options: list[str] = field(default_factory=list)
    feedback: dict[str, str] = field(default_factory=dict)
    hint: str = ""
    tolerance: float = 0.0
    unit: str = ""


@dataclass
class AnswerResult:
    """The verdict on one answer. ``str(result)`` is the stable line check cells print."""

    question: str
    passed: bool
    feedback: str
    explanation: str = ""

    def __str__(self) -> str:
        return f"{self.question}: passed" if self.passed else f"{self.question}: not yet — {self.feedback}"

    def __bool__(self) -> bool:
        return self.passed


# ------------------------------------------------------------------------------------ loading
def available_quizzes() -> dict[str, str]:
    """The course's quizzes: file stem -> title."""
    return {p.stem: _read(p).get("title", p.stem) for p in sorted(QUIZ_DIR.glob("[0-9][0-9]_*.*"))
            if p.suffix in (".yaml", ".yml", ".json")}


def _find(source: str | Path) -> Path:
    """A path, a file stem ("03_freezing_and_fine_tuning"), a lesson number ("03"), or an exercise's own
    questions ("exercises/03": ``quizzes/exercises/03.yaml``, asked in the exercise, never in the lesson)."""
    path = Path(source)
    if path.suffix == "" and path.parent == Path("exercises") and (QUIZ_DIR / f"{source}.yaml").is_file():
        return QUIZ_DIR / f"{source}.yaml"
    if path.suffix in (".yaml", ".yml", ".json") or path.parent != Path("."):
        if not path.is_file():
            raise QuizError(f"No quiz file at {path}.")
        return path
    name = str(source)
    hits = [p for p in sorted(QUIZ_DIR.glob(f"{name}*")) if p.suffix in (".yaml", ".yml", ".json")
            and (p.stem == name or p.stem.startswith(f"{name}_"))]
    if len(hits) != 1:
        known = ", ".join(available_quizzes()) or "none"
        raise QuizError(f"{'No' if not hits else 'More than one'} quiz matches {name!r}; the course has: {known}.")
    return hits[0]


def _read(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:  # the parsers' messages say where (line, column)
        raise QuizError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from None
    if not isinstance(data, dict):
        raise QuizError(f"{path}: the file must hold a mapping with 'title' and 'questions', "
                        f"not a {type(data).__name__}.")
    return data


def load_quiz(source: str | Path) -> Quiz:
    """Read and check a quiz file; every problem raises ``QuizError`` saying where and what to fix."""
    path = _find(source)
    data = _read(path)
    unknown = set(data) - {"title", "lesson", "questions"}
    if unknown:
        raise QuizError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: title, lesson, questions.")
    raw = data.get("questions")
    if not isinstance(raw, list) or not raw:
        raise QuizError(f"{path}: 'questions' must be a non-empty list of questions.")
    questions = [_question(q, k, path) for k, q in enumerate(raw, start=1)]
    ids = [q.id for q in questions]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise QuizError(f"{path}: question id(s) {repeated} appear more than once; ids must be unique.")
    return Quiz(title=str(data.get("title", path.stem)), questions=questions, lesson=str(data.get("lesson", "")),
                path=path)


def _question(raw: Any, number: int, path: Path) -> Question:
    where = f"{path}, question {number}"
    if not isinstance(raw, dict):
        raise QuizError(f"{where}: a question is a mapping (text:, type:, answer:, ...), got {raw!r}.")
    if "id" in raw:
        where += f" ({raw['id']!r})"
    kind = raw.get("type", "choice")
    if kind not in TYPES:
        raise QuizError(f"{where}: type must be one of {TYPES}, got {kind!r}.")
    unknown = set(raw) - _KEYS[kind]
    if unknown:
        raise QuizError(f"{where}: unknown key(s) {sorted(unknown)}; a {kind} question may have {sorted(_KEYS[kind])}.")
    missing = [k for k in _REQUIRED[kind] if raw.get(k) in (None, "", [])]
    if missing:
        raise QuizError(f"{where}: missing {missing}.")
    q = Question(id=str(raw.get("id", f"q{number}")), type=kind, text=str(raw["text"]), answer=raw["answer"],
                 explanation=str(raw["explanation"]), hint=str(raw.get("hint", "")), unit=str(raw.get("unit", "")))
    if kind == "choice":
        options = raw["options"]
        if not isinstance(options, list) or not 2 <= len(options) <= len(LETTERS):
            raise QuizError(f"{where}: options must be a list of 2 to {len(LETTERS)} answers (lettered a, b, ...).")
        q.options = [str(o) for o in options]
        letters = LETTERS[:len(options)]
        if not isinstance(q.answer, str) or q.answer not in letters:
            raise QuizError(f"{where}: answer must be one of the option letters {list(letters)}, got {q.answer!r}.")
        feedback = raw.get("feedback") or {}
        if not isinstance(feedback, dict) or any(str(k) not in letters for k in feedback):
            raise QuizError(f"{where}: feedback maps option letters {list(letters)} to sentences, got {feedback!r}. "
                            "(In YAML, quote letters such as 'n' or 'y', which would read as booleans.)")
        q.feedback = {str(k): str(v) for k, v in feedback.items()}
    else:
        if isinstance(q.answer, bool) or not isinstance(q.answer, (int, float)):
            raise QuizError(f"{where}: the answer of a number question must be a number, got {q.answer!r}.")
        tolerance = raw.get("tolerance", 0)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
            raise QuizError(f"{where}: tolerance must be a number >= 0 (absolute), got {tolerance!r}.")
        q.tolerance = float(tolerance)
    return q


def parse_number(response: Any) -> float:
    """A learner's number: 0.25, "0.25", "0,25", "1e-3", "25%" (= 0.25), "10,248" or "10 248" (= 10248)."""
    if isinstance(response, bool):
        raise ValueError("an answer of True/False is not a number")
    if isinstance(response, (int, float)):
        return float(response)
    text = str(response).strip().replace("_", "").replace(" ", "")
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?%?", text):
        text = text.replace(",", "")  # thousands separators
    elif text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")  # a decimal comma
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1].strip(), 0.01
    return float(text) * scale


# ------------------------------------------------------------------------------------- the quiz
class Quiz:
    """A list of questions; ``answer`` checks one, ``check`` several; shows itself as a widget."""

    def __init__(self, title: str, questions: list[Question], lesson: str = "", path: Path | None = None):
        self.title, self.questions, self.lesson, self.path = title, questions, lesson, path
        self.results: dict[str, AnswerResult] = {}  # the latest verdict per question id
        self._responses: dict[str, Any] = {}  # and the answer it judged
        self._ui = None
        self._views: dict[str, dict] = {}  # question id -> its widgets: entry, check (button), verdict

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(f"No question {qid!r} in this quiz; the ids are {[q.id for q in self.questions]}.")

    def answer(self, qid: str, response: Any) -> AnswerResult:
        """Check ``response`` for question ``qid``; the widget (if shown) shows the same verdict."""
        q = self.question(qid)
        result = self.judge(q, response)
        self.results[qid] = result
        self._responses[qid] = response
        if qid in self._views:
            self._show(q, result, response)
        return result

    def check(self, responses: dict[str, Any]) -> list[AnswerResult]:
        """``answer`` for several questions at once, e.g. ``quiz.check({"q1": "b", "q2": 0.25})``."""
        return [self.answer(qid, response) for qid, response in responses.items()]

    @property
    def score(self) -> tuple[int, int]:
        """(questions answered right, questions in the quiz)."""
        return sum(r.passed for r in self.results.values()), len(self.questions)

    def judge(self, q: Question, response: Any) -> AnswerResult:
        """The verdict on ``response`` to question ``q``, without recording it or touching the widget.

        ``answer`` uses it and records the result; graders call it directly (``tlkit.course.exercises``).
        """
        if q.type == "choice":
            choice = str(response).strip().lower().rstrip(")") if response is not None else ""
            letters = LETTERS[:len(q.options)]
            if choice not in letters:
                return AnswerResult(q.id, False, f"answer with one of the letters {', '.join(letters)}.")
            if choice == q.answer:
                return AnswerResult(q.id, True, "right.", q.explanation)
            return AnswerResult(q.id, False, q.feedback.get(choice) or q.hint or "that is not it; read the options again.")
        try:
            value = parse_number(response)
        except (TypeError, ValueError):
            return AnswerResult(q.id, False, f"{response!r} is not a number; type e.g. 0.25, 1e-3 or 25%.")
        if abs(value - float(q.answer)) <= q.tolerance + 1e-12 * max(1.0, abs(float(q.answer))):
            return AnswerResult(q.id, True, "right.", q.explanation)
        return AnswerResult(q.id, False, q.hint or "not quite; check your calculation.")

    # ---- the widget
    @property
    def ui(self):
        if self._ui is None:
            self._ui = self._build_ui()
        return self._ui

    def _build_ui(self):
        import ipywidgets as W

        boxes = [W.HTML(f"<b>{html.escape(self.title)}</b> — answer each question and press Check.")]
        for k, q in enumerate(self.questions, start=1):
            text = f"<p><b>{k}.</b> {_inline(q.text)}</p>"
            if q.type == "choice":
                # Options are listed as text (long ones wrap cleanly); the learner picks a letter.
                text += _options_html(q)
                entry = W.ToggleButtons(options=[(l, l) for l in LETTERS[:len(q.options)]], value=None,
                                        tooltips=list(q.options), style={"button_width": "42px"})
            else:
                entry = W.Text(placeholder="a number, e.g. 0.25 or 25%" + (f" ({q.unit})" if q.unit else ""),
                               layout=W.Layout(width="260px"))
            button = W.Button(description="Check", icon="check", layout=W.Layout(width="90px"))
            verdict = W.HTML()
            button.on_click(lambda _, q=q, entry=entry: self.answer(q.id, entry.value))
            self._views[q.id] = {"entry": entry, "check": button, "verdict": verdict}
            prompt = W.HTML(text, layout=W.Layout(width="auto"))
            box = W.VBox([prompt, W.HBox([entry, button], layout=W.Layout(align_items="center")), verdict],
                         layout=W.Layout(margin="0 0 8px 0"))
            box.add_class(f"tlkit-question-{q.id}")
            boxes.append(box)
        self._score = W.HTML(self._score_text())
        boxes.append(self._score)
        for qid, result in self.results.items():  # answers given from code before the widget was shown
            self._show(self.question(qid), result, self._responses[qid])
        ui = W.VBox(boxes, layout=W.Layout(border="1px solid #ccc", padding="6px 10px"))
        ui.add_class("tlkit-quiz")
        return ui

    def _show(self, q: Question, result: AnswerResult, response: Any) -> None:
        entry, verdict = self._views[q.id]["entry"], self._views[q.id]["verdict"]
        if q.type == "choice" and str(response).strip().lower().rstrip(")") in LETTERS[:len(q.options)]:
            entry.value = str(response).strip().lower().rstrip(")")
        elif q.type == "number" and entry.value != str(response):
            entry.value = str(response)
        if result.passed:
            verdict.value = (f"<div style='color:#1a7f37'><b>Right.</b> {_inline(result.explanation)}</div>")
        else:
            verdict.value = f"<div style='color:#a00000'><b>Not yet:</b> {_inline(result.feedback)}</div>"
        self._score.value = self._score_text()

    def _score_text(self) -> str:
        right, total = self.score
        return f"<i>Score: {right} of {total} right.</i>"

    # ---- showing
    def summary_html(self) -> str:
        """The questions without the answers: what a reader without a live kernel sees."""
        items = []
        for q in self.questions:
            done = self.results.get(q.id)
            mark = " <span style='color:#1a7f37'>&#10003; answered</span>" if done and done.passed else ""
            body = _options_html(q) if q.type == "choice" else "<p><i>(a number)</i></p>"
            items.append(f"<li><code>{html.escape(q.id)}</code> {_inline(q.text)}{mark}{body}</li>")
        return (f"<p><b>Quiz: {html.escape(self.title)}</b></p><ol>{''.join(items)}</ol>"
                f"<p><i>Answer in a running notebook, or from code: "
                f"<code>quiz.answer(\"{html.escape(self.questions[0].id)}\", ...)</code></i></p>")

    def summary_text(self) -> str:
        lines = [f"Quiz: {self.title}"]
        for q in self.questions:
            lines.append(f"  {q.id}: {q.text}")
            lines += [f"      {l}) {o}" for l, o in zip(LETTERS, q.options)]
        return "\n".join(lines)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs) -> dict:
        bundle = {}
        try:
            bundle.update(self.ui._repr_mimebundle_() or {})
        except ImportError:  # no ipywidgets: the static view only
            pass
        bundle["text/html"] = self.summary_html()
        bundle["text/plain"] = self.summary_text()
        return bundle

    def __repr__(self) -> str:
        return f"Quiz({self.title!r}, {len(self.questions)} questions)"


def _options_html(q: Question) -> str:
    """The options as "a) ...", "b) ...": the letters are written out, whatever the page's CSS does to lists."""
    items = "".join(f"<li>{letter}) {_inline(o)}</li>" for letter, o in zip(LETTERS, q.options))
    return f"<ul style='list-style:none;padding-left:1.2em'>{items}</ul>"


def _inline(text: str) -> str:
    """Escape HTML, then turn `code` into <code>code</code> (the only markup quizzes use)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def quiz(source: str | Path) -> Quiz:
    """The quiz of a lesson (``quiz("03")``), by file stem, or from a YAML/JSON file path.

    Show it as the last line of a cell; check answers from code with ``.answer(id, response)``.
    """
    return load_quiz(source)
