"""``tlkit grade`` on a class of awkward submissions: each one costs points only for itself.

One grading run over many submissions (a correct one, a blank one, wrong answers, tampering of
several kinds, a hang, a crash, an error, a flood of output, a file deleter, broken JSON) — then
assert on the CSV and the feedback files, as an instructor would read them.
"""
from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tlkit.course.grading import GradingError, grade

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "exercises" / "source" / "00_warmup.ipynb"
STUDENT = ROOT / "exercises" / "00_warmup.ipynb"


def _with_cell(nb, after_item: str | None, source: str):
    """A copy of ``nb`` with a code cell inserted after the check cell of ``after_item`` (or first)."""
    nb = copy.deepcopy(nb)
    position = 1
    if after_item:
        position = next(i for i, c in enumerate(nb.cells) if f'check("{after_item}")' in c.source) + 1
    nb.cells.insert(position, nbformat.v4.new_code_cell(source))
    return nb


def _answers(nb, class_count: str, answer: str, counter: str):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if "NotImplementedError" in cell.source or "BEGIN SOLUTION" in cell.source:
            if "class_count" in cell.source or "course_data" in cell.source:
                cell.source = f"data = tl.course_data()\ndef class_count(ds):\n    return {class_count}"
            elif "count_trainable" in cell.source:
                cell.source = f"def count_trainable(model):\n    return {counter}"
            else:
                cell.source = f"answer_q2 = {answer!r}"
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grading")
    subs = tmp / "submissions"
    subs.mkdir()
    source = nbformat.read(SOURCE, as_version=4)
    blank = nbformat.read(STUDENT, as_version=4)
    right = _answers(blank, "len(ds.classes)", "b",
                     "sum(p.numel() for p in model.parameters() if p.requires_grad)")
    cases = {
        "correct_source": source,
        "correct": right,
        "blank": blank,
        "wrong": _answers(blank, "len(data.classes)", "a", "sum(p.numel() for p in model.parameters())"),
        "tamper_redefine_check": _with_cell(blank, None, (
            "import tlkit\n"
            "class FakeEx:\n    def check(self, item): print(f'{item}: passed')\n"
            "tlkit.exercise = lambda name: FakeEx()")),
        "tamper_check_cells": _tamper_check_cells(blank),
        # honest work that merely *mentions* the grader's modules is graded like any other
        "mentions_internals": _with_cell(right, None, "# see tlkit.course.checks and tlkit.course.probes.answer"),
        "hang_interruptible": _with_cell(right, "q1", "import time\ntime.sleep(10**6)"),
        "hang_ignores_interrupt": _with_cell(right, "q1", (
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")),
        "crash": _with_cell(right, "q1", "import os\nos._exit(3)"),
        "raises": _with_cell(right, None, "raise RuntimeError('boom')"),
        "floods_output": _with_cell(right, None, "for _ in range(200):\n    print('x' * 100_000)"),
        "hogs_memory": _with_cell(right, None, "block = bytearray(64 * 2**30)"),
    }
    for name, nb in cases.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    (subs / "not_json.ipynb").write_text("{ this is not a notebook", encoding="utf-8")
    # Sorted first, it deletes the whole submissions folder before anyone else is graded.
    deleter = _with_cell(right, None, f"import shutil\nshutil.rmtree({str(subs)!r}, ignore_errors=True)")
    (subs / "a_deleter").mkdir()
    nbformat.write(deleter, subs / "a_deleter" / "00_warmup.ipynb")
    (subs / "notes.txt").write_text("not a notebook; ignored")

    out = tmp / "grades.csv"
    lines: list[str] = []
    results = grade(STUDENT, subs, out, progress=lines.append, cell_timeout=20, notebook_timeout=60,
                    memory=4 * 2**30, jobs=2)
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    return {"rows": rows, "results": {r.student: r for r in results}, "out": out, "progress": lines,
            "feedback": tmp / "grades_feedback", "subs": subs}


def _tamper_check_cells(blank):
    nb = copy.deepcopy(blank)
    for cell in nb.cells:
        if "NBVAL_CHECK_OUTPUT" in cell.source:  # keep the stored "passed" outputs, print them too
            item = cell.metadata["tlkit"]["check"]
            cell.source = f"print('{item}: passed')"
            cell.metadata = {}
    return nb


def _score(graded, student):
    row = graded["rows"][student]
    return [row["q1"], row["q2"], row["q3"], row["total"]]


pytestmark = pytest.mark.slow


def test_every_submission_gets_a_row(graded):
    assert set(graded["rows"]) == {
        "a_deleter", "correct_source", "correct", "blank", "wrong", "tamper_redefine_check", "tamper_check_cells",
        "mentions_internals", "hang_interruptible", "hang_ignores_interrupt", "crash", "raises", "floods_output",
        "hogs_memory", "not_json"}
    assert all(row["max"] == "3" for row in graded["rows"].values())
    assert len(graded["progress"]) == 16 and graded["progress"][0].startswith("sandbox: ")


def test_correct_submissions_get_full_marks(graded):
    assert _score(graded, "correct_source") == ["1", "1", "1", "3"]
    assert _score(graded, "correct") == ["1", "1", "1", "3"]
    assert graded["rows"]["correct"]["problems"] == ""


def test_blank_and_wrong_get_nothing_with_hints(graded):
    assert _score(graded, "blank") == ["0", "0", "0", "0"]
    assert _score(graded, "wrong") == ["0", "0", "0", "0"]
    feedback = (graded["feedback"] / "wrong.md").read_text()
    assert "q3: not yet — you counted every parameter" in feedback
    assert "q2: not yet — requires_grad is about gradients" in feedback
    assert "q1: not yet — class_count gave the same number for data sets with different classes" in feedback


@pytest.mark.parametrize("student", ["tamper_redefine_check", "tamper_check_cells"])
def test_tampering_earns_no_points(graded, student):
    assert _score(graded, student) == ["0", "0", "0", "0"]


def test_naming_the_graders_modules_is_no_crime(graded):
    """The old text filter gave honest work 0 for a comment; the sandbox makes such filters unnecessary."""
    assert _score(graded, "mentions_internals") == ["1", "1", "1", "3"]
    assert graded["rows"]["mentions_internals"]["problems"] == ""


def test_a_hang_costs_time_not_points(graded):
    assert _score(graded, "hang_interruptible") == ["1", "1", "1", "3"]
    assert "ran too long" in graded["rows"]["hang_interruptible"]["problems"]


def test_a_hang_that_ignores_interrupts_keeps_what_came_before(graded):
    # q1 ran before the hang; q2 is a quiz answer, read from the text whatever the kernel did; q3 never ran
    assert _score(graded, "hang_ignores_interrupt") == ["1", "1", "0", "2"]
    assert "time limit" in graded["rows"]["hang_ignores_interrupt"]["problems"]


def test_a_crash_keeps_what_came_before(graded):
    assert _score(graded, "crash") == ["1", "1", "0", "2"]
    assert "kernel died" in graded["rows"]["crash"]["problems"]


def test_errors_output_floods_and_memory_hogs_are_reported(graded):
    assert _score(graded, "raises") == ["1", "1", "1", "3"]
    assert "RuntimeError: boom" in graded["rows"]["raises"]["problems"]
    assert _score(graded, "floods_output") == ["1", "1", "1", "3"]
    assert "printed too much" in graded["rows"]["floods_output"]["problems"]
    assert _score(graded, "hogs_memory") == ["1", "1", "1", "3"]
    assert "MemoryError" in graded["rows"]["hogs_memory"]["problems"]


def test_deleting_files_hurts_no_one_else(graded):
    from tlkit.course.sandbox import PROCESSES, detect_mode

    # in the sandbox the submissions folder does not even exist; in the fallback it really is deleted ...
    assert graded["subs"].exists() == (detect_mode() != PROCESSES)
    assert _score(graded, "a_deleter") == ["1", "1", "1", "3"]
    assert _score(graded, "correct") == ["1", "1", "1", "3"]  # ... and the others were still graded


def test_invalid_json_is_a_zero_with_a_reason(graded):
    assert _score(graded, "not_json") == ["0", "0", "0", "0"]
    assert "not a valid notebook" in graded["rows"]["not_json"]["problems"]
    assert "not a valid notebook" in (graded["feedback"] / "not_json.md").read_text()


def test_grades_are_never_overwritten(graded, tmp_path):
    before = graded["out"].read_text()
    (tmp_path / "subs").mkdir()
    nbformat.write(nbformat.read(STUDENT, as_version=4), tmp_path / "subs" / "x.ipynb")
    with pytest.raises(GradingError, match="already exists"):
        grade(STUDENT, tmp_path / "subs", graded["out"])
    assert graded["out"].read_text() == before


@pytest.mark.parametrize("make, message", [
    (lambda tmp: (tmp / "missing.ipynb", tmp), "no such assignment"),
    (lambda tmp: (STUDENT, tmp / "nowhere"), "not a folder"),
    (lambda tmp: (STUDENT, tmp), "no .ipynb submissions"),
])
def test_bad_grading_inputs_say_what_to_do(tmp_path, make, message):
    assignment, subs = make(tmp_path)
    with pytest.raises(GradingError, match=message):
        grade(assignment, subs, tmp_path / "g.csv")


def test_cli_check_scores_a_notebook(tmp_path):
    nb = nbformat.read(STUDENT, as_version=4)
    nb = _answers(nb, "len(ds.classes)", "c", "sum(p.numel() for p in model.parameters() if p.requires_grad)")
    path = tmp_path / "mine.ipynb"
    nbformat.write(nb, path)
    proc = subprocess.run([sys.executable, "-m", "tlkit", "check", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[:3] == ["q1: passed", "q2: not yet — requires_grad is about gradients: "
                                            "which parameters the optimiser may change", "q3: passed"]
    assert "score: 2/3 items passed" in proc.stdout
    assert json.loads(path.read_text())  # the learner's notebook is untouched and still valid


def test_problems_name_the_cell_as_the_learner_counts_it(graded):
    nb = nbformat.read(STUDENT, as_version=4)
    # "raises" has its RuntimeError cell inserted at position 1, i.e. the learner's cell 2
    assert graded["rows"]["raises"]["problems"].startswith("cell 2 raised RuntimeError: boom")
    q1_check = next(i for i, c in enumerate(nb.cells) if 'check("q1")' in c.source)
    assert f"cell {q1_check + 2} ran too long" in graded["rows"]["hang_interruptible"]["problems"]


def test_the_grader_reads_untrusted_lines_with_limits():
    """A line longer than allowed ends the run as a flood; unreadable lines are skipped, never raised."""
    import os
    import threading

    from tlkit.course.grading import MAX_LINE_BYTES, _read_events

    class Box:
        killed = False

        def kill(self):
            self.killed = True

    def send(fd, data):
        try:
            for start in range(0, len(data), 1 << 16):
                os.write(fd, data[start:start + (1 << 16)])
        except BrokenPipeError:  # the reader stopped at the limit, as it should
            pass
        os.close(fd)

    cases = ((b'{"event": "done"}\nnot json\n[1, 2]\n{"event": 3}\n', ["done", "garbled", "garbled", "garbled"]),
             (b"x" * (MAX_LINE_BYTES + 10) + b"\n", ["flood"]))
    for payload, expected in cases:
        read, write = os.pipe()
        writer = threading.Thread(target=send, args=(write, payload))
        writer.start()
        events, box = [], Box()
        _read_events(read, events, box)
        writer.join()
        assert [e["event"] for e in events] == expected
        assert box.killed == (expected == ["flood"])
