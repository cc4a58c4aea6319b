"""Exercise notebooks: released copies are current, solutions pass, blank copies fail every item.

The last two are the promise to instructors: ``pytest --nbval-lax`` on a student's notebook passes
for a correct submission and fails, item by item, for a blank one.
"""
from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

import tlkit as tl

from tlkit.course.exercises import Exercise, Item, Verdict, choice_item, digest, exercise, number_item, plain_evidence
from tlkit.course.release import ReleaseError, check_item, is_stale, release, release_notebook, strip_solutions

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "exercises" / "source").glob("*.ipynb"))


def test_there_are_exercises():
    assert SOURCES, "exercises/source/ has no notebooks"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_student_copy_is_a_current_release(source: Path):
    student = ROOT / "exercises" / source.name
    assert student.exists(), f"exercises/{source.name} is missing: run `tlkit release {source.relative_to(ROOT)}`"
    assert not is_stale(source), f"exercises/{source.name} is stale: run `tlkit release {source.relative_to(ROOT)}`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_student_copy_gives_away_no_solution(source: Path):
    src = nbformat.read(source, as_version=4)
    student_text = (ROOT / "exercises" / source.name).read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in student_text
    for cell in src.cells:
        inside = False
        for line in cell.source.splitlines():
            if line.strip() in ("### BEGIN SOLUTION", "### END SOLUTION"):
                inside = line.strip() == "### BEGIN SOLUTION"
            elif inside and len(line.strip()) > 8:
                assert line.strip() not in student_text, f"solution line leaked: {line.strip()!r}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_every_item_of_the_exercise_has_a_check_cell(source: Path):
    nb = nbformat.read(source, as_version=4)
    ex = exercise(nb.metadata["tlkit"]["exercise"])
    checked = [check_item(c) for c in nb.cells if check_item(c)]
    assert checked == ex.ids, f"{source.name} checks {checked}, the exercise defines {ex.ids}"
    assert len(ex.ids) >= 3, f"{source.name}: an exercise needs at least 3 graded items"


def _nbval_failures(notebook: Path, tmp_path: Path) -> tuple[int, set[int]]:
    """Run nbval on one notebook in a subprocess; return (exit code, indices of failed code cells)."""
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", str(notebook), f"--junitxml={junit}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    failed = set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.add(int(re.search(r"Cell (\d+)", case.get("name")).group(1)))
    return proc.returncode, failed


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_blank_student_copy_fails_every_graded_item(source: Path, tmp_path: Path):
    student = ROOT / "exercises" / source.name
    nb = nbformat.read(student, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    check_cells = {i for i, c in enumerate(code) if check_item(c)}
    code_rc, failed = _nbval_failures(student, tmp_path)
    assert code_rc != 0
    assert check_cells <= failed, f"check cells {sorted(check_cells - failed)} passed on a blank copy"


# ---------------------------------------------------------------- release, unit by unit

def test_strip_solutions_keeps_indentation_and_code_around():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\nz = 2"
    out = strip_solutions(src, "cell")
    assert "return x + y" not in out
    assert "    raise NotImplementedError(" in out and out.startswith("def f(x):\n    y = 1\n    # YOUR CODE HERE")
    assert out.endswith("z = 2")
    compile(out, "cell", "exec")  # still valid Python


@pytest.mark.parametrize("src, message", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_strip_solutions_rejects_broken_markers(src, message):
    with pytest.raises(ReleaseError, match=message):
        strip_solutions(src, "cell 3")


def _mini_source(passed: bool = True) -> nbformat.NotebookNode:
    check = nbformat.v4.new_code_cell('# NBVAL_CHECK_OUTPUT\nex.check("q1")', execution_count=2)
    check.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                            text="q1: passed\n" if passed else "q1: not yet — hint\n")]
    solution = nbformat.v4.new_code_cell("### BEGIN SOLUTION\nn_classes = 8\n### END SOLUTION", execution_count=1)
    solution.outputs = [nbformat.v4.new_output("stream", name="stdout", text="noise\n")]
    nb = nbformat.v4.new_notebook(cells=[solution, check, nbformat.v4.new_markdown_cell(
        "Why? <!-- BEGIN SOLUTION -->Because.<!-- END SOLUTION -->")])
    nb.metadata["tlkit"] = {"exercise": "00_warmup"}
    return nb


def test_release_clears_outputs_but_keeps_passed_lines():
    out = release_notebook(_mini_source())
    solution, check, markdown = out.cells
    assert solution.outputs == [] and solution.execution_count is None
    assert "n_classes = 8" not in solution.source
    assert check.execution_count == 2 and len(check.outputs) == 1
    assert check.outputs[0]["data"]["text/plain"] == "q1: passed"   # what nbval compares
    assert check.outputs[0]["data"]["image/png"]                    # what a learner sees: a labelled picture
    assert check.metadata["tlkit"] == {"check": "q1"}
    assert "Because" not in markdown.source and "Your answer here" in markdown.source


def test_release_refuses_a_source_whose_check_does_not_pass():
    with pytest.raises(ReleaseError, match="run the source top to bottom"):
        release_notebook(_mini_source(passed=False))


def test_release_refuses_a_notebook_without_exercise_name():
    nb = _mini_source()
    nb.metadata.pop("tlkit")
    with pytest.raises(ReleaseError, match="metadata.tlkit.exercise"):
        release_notebook(nb)


def test_release_never_overwrites_a_worked_in_copy(tmp_path: Path):
    source = tmp_path / "source" / "00_warmup.ipynb"
    source.parent.mkdir()
    nbformat.write(_mini_source(), source)
    target, what = release(source)
    assert what == "written" and target == tmp_path / "00_warmup.ipynb"
    assert release(source) == (target, "unchanged")
    worked = nbformat.read(target, as_version=4)  # a learner ran a cell in the student copy
    worked.cells[0].execution_count = 1
    worked.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="my work\n")]
    nbformat.write(worked, target)
    with pytest.raises(ReleaseError, match="someone has worked in it"):
        release(source)
    assert "my work" in target.read_text()
    assert release(source, force=True)[1] == "written"
    assert "my work" not in target.read_text()


# ---------------------------------------------------------------- items

def test_choice_and_number_items_judge_from_evidence_only():
    ex = Exercise("t", [choice_item("q1", "a1", digest("q1", "c"), "abc", "think again"),
                        number_item("q2", "a2", lambda: 10.0, rel_tol=0.05)])
    assert ex.verdict("q1", a1="C").passed
    assert ex.verdict("q1", a1="b").hint == "think again"
    assert "one of" in ex.verdict("q1", a1="z").hint
    assert ex.verdict("q2", a2=10.4).passed and not ex.verdict("q2", a2=11).passed
    assert not ex.verdict("q2", a2="10").passed  # a string is not a number
    assert not ex.judge("q2", {"value": float("nan")}).passed
    assert "not defined yet" in ex.verdict("q2", other=1).hint


def test_quiz_answers_are_read_as_literals_from_the_text():
    from tlkit.course.exercises import NOT_LITERAL, answer_written_as_literal, literal_assignment

    cells = ["x = 1", 'answer_q4 = "a"', "%matplotlib inline\nanswer_q4 = 'b'  # changed my mind",
             "answer_q5 = 1_027_848 / 3_381_256", "answer_q6 = 2e-3 * 0.5**3", "answer_q7 = -(1 - 0.75 * 0.8)",
             "answer_q8 = tp / (tp + fp)", "answer_q9 = open('key').read()", "answer_q10 = 2 ** 10 ** 10"]
    assert literal_assignment(cells, "answer_q4") == (True, "b")
    assert literal_assignment(cells, "answer_q5") == (True, 1027848 / 3381256)
    assert literal_assignment(cells, "answer_q6") == (True, 2e-3 * 0.5 ** 3)
    assert literal_assignment(cells, "answer_q7") == (True, -(1 - 0.75 * 0.8))
    for name in ("answer_q8", "answer_q9", "answer_q10"):  # computed, a call, too large to evaluate
        assert literal_assignment(cells, name) == (True, NOT_LITERAL)
    assert literal_assignment(cells, "answer_q2") == (False, None)
    assert literal_assignment(["def f(:", "answer_q2 = 'c'"], "answer_q2") == (True, "c")  # a broken cell is skipped
    # in the learner's kernel, the same rule: a computed answer gets a hint before the grader would refuse it
    assert "write the answer itself" in answer_written_as_literal("answer_q8", cells)
    assert answer_written_as_literal("answer_q4", cells) is None
    assert answer_written_as_literal("answer_q4", None) is None  # not IPython: nothing to read


def test_probed_items_draw_fresh_inputs_and_judge_on_them():
    from tlkit.course.exercises import Ask, probed_item

    ask = Ask(("double",), lambda probe, double: {"out": [double(v) for v in probe]}, lambda seed: [seed, seed + 1])
    ex = Exercise("t", [probed_item("q1", ask, lambda ev, probe: Verdict(ev["out"] == [2 * v for v in probe], "no"))])
    assert ex.verdict("q1", double=lambda v: 2 * v).passed
    assert not ex.verdict("q1", double=lambda v: v + v + 1).passed
    evidence = ex.collect("q1", {"double": lambda v: 2 * v}, [3, 4])
    assert ex.judge("q1", evidence, [3, 4]).passed and not ex.judge("q1", evidence, [5, 6]).passed


def test_a_judge_that_returns_a_lookalike_does_not_pass():
    class Fake:
        passed = True
    ex = Exercise("t", [Item("q1", ("x",), lambda x: {"x": x}, lambda e: Fake())])
    assert not ex.verdict("q1", x=1).passed


def test_evidence_must_be_plain_json():
    with pytest.raises(ValueError, match="plain JSON"):
        plain_evidence({"model": object()})
    with pytest.raises(ValueError, match="plain JSON"):
        plain_evidence({"x": float("inf")})
    assert plain_evidence({"a": [1, 2.5, "s", None]}) == {"a": [1, 2.5, "s", None]}


def test_check_prints_one_stable_line(capsys):
    ex = exercise("00")
    ex.check("q1", class_count=lambda ds: len(ds.classes))
    ex.check("q1", class_count=lambda ds: 8)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "q1: passed" and lines[1].startswith("q1: not yet — ")


def test_unknown_exercise_and_item_say_what_exists():
    with pytest.raises(ValueError, match="available: .*00_warmup"):
        exercise("99")
    with pytest.raises(ValueError, match="its items are: q1, q2, q3"):
        exercise("00").item("q9")


def test_quiz_item_grades_with_the_lesson_quiz_and_its_feedback():
    from tlkit.course.exercises import quiz_item
    from tlkit.course.widgets import load_quiz

    q1 = load_quiz("03").question("q1")
    wrong = next(letter for letter in "abc"[:len(q1.options)] if letter != q1.answer)
    ex = Exercise("t", [quiz_item("q1", "answer_q1", "03", "q1")])
    assert ex.item("q1").question == q1.text
    assert ex.verdict("q1", answer_q1=q1.answer.upper()).passed
    verdict = ex.verdict("q1", answer_q1=wrong)
    assert not verdict.passed and verdict.hint == q1.feedback[wrong]
    assert "letter" in ex.verdict("q1", answer_q1="z").hint
    assert "should be a letter or a number" in ex.verdict("q1", answer_q1=["a"]).hint


def test_evidence_that_is_not_plain_json_is_feedback_not_a_crash(capsys):
    ex = Exercise("t", [Item("q1", ("x",), lambda x: {"value": x}, lambda e: Verdict(True))])
    ex.check("q1", x=float("nan"))
    line = capsys.readouterr().out.strip()
    assert line.startswith("q1: not yet — the answer could not be recorded")


def test_release_ignores_warnings_on_stderr_in_check_cells():
    nb = nbformat.v4.new_notebook(metadata={"tlkit": {"exercise": "00_warmup"}})
    check = nbformat.v4.new_code_cell('# NBVAL_CHECK_OUTPUT\nex.check("q1")', execution_count=2)
    check.outputs = [nbformat.v4.new_output("stream", name="stderr", text="UserWarning: something\n"),
                     nbformat.v4.new_output("stream", name="stdout", text="q1: passed\n")]
    nb.cells = [nbformat.v4.new_code_cell("x = 1", execution_count=1), check]
    student = release_notebook(nb)
    assert [o["data"]["text/plain"] for o in student.cells[1].outputs] == ["q1: passed"]


def test_release_takes_the_line_a_check_displays_in_a_notebook():
    """In a kernel ex.check shows its line as display data (text/plain); release reads it from there."""
    nb = nbformat.v4.new_notebook(metadata={"tlkit": {"exercise": "00_warmup"}})
    check = nbformat.v4.new_code_cell('# NBVAL_CHECK_OUTPUT\nex.check("q2")', execution_count=2)
    check.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "q2: passed"})]
    nb.cells = [nbformat.v4.new_code_cell("x = 1", execution_count=1), check]
    assert release_notebook(nb).cells[1].outputs[0]["data"]["text/plain"] == "q2: passed"
    check.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "q2: not yet — try again"})]
    with pytest.raises(ReleaseError, match="prints 'q2: not yet"):
        release_notebook(nb)


def test_exercise_questions_are_new_not_the_lesson_quiz_again():
    """An exercise asks a variant or a transfer of the lesson's idea, never the quiz question just answered."""
    from tlkit.course.widgets.questions import QUIZ_DIR, load_quiz
    lesson_texts = {" ".join(q.text.split()).lower() for stem in tl.available_quizzes() for q in load_quiz(stem).questions}
    exercise_files = sorted((QUIZ_DIR / "exercises").glob("*.yaml"))
    assert len(exercise_files) == 8, exercise_files  # exercises 01-08; 00 has no quiz item
    for path in exercise_files:
        for q in load_quiz(f"exercises/{path.stem}").questions:
            assert " ".join(q.text.split()).lower() not in lesson_texts, f"{path.name} {q.id} repeats a lesson quiz"
