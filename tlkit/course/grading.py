"""Grade a folder of submitted exercise notebooks (``tlkit grade``) or one's own (``tlkit check``).

Where trust ends: anything computed next to a submission's code can be forged by it. So:

1. **Before any submission runs**, the grader loads every check and quiz key it needs into memory,
   and claims the grades file and the feedback folder (never through a symbolic link, never over
   an existing file without ``--force``).
2. **Quiz answers** are read from the notebook's *text* (``answer_q4 = "b"``): no code runs for them.
3. **Code items** are judged on fresh probes. For each submission and item the grader draws a seed
   nobody can predict; the submission's notebook runs, its check cells replaced by grader cells that
   call the learner's code on the probe that seed draws (``tlkit.course.probes.answer``); the grader
   draws the same probe in its own process and judges what came back. Replayed evidence (from an
   honest run, or a classmate's notebook) answers another probe and fails.
4. **The notebook runs in a sandbox** (``tlkit.course.sandbox``): no network, no view of the grader,
   the solutions, the checks or the other submissions; a memory limit that counts all memory, a
   process limit, time limits per cell and per notebook; every process it started is killed at the
   end. What comes back is inert data (JSON lines, tensors as safetensors), read with size limits.
   A malformed line, a crash or a flood costs that submission only.
5. **The grades file** is written once, at the end, atomically (a temporary file renamed over the
   path claimed at the start).
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .exercises import NOT_LITERAL, Exercise, exercise, literal_assignment, new_seed, not_literal_hint
from .release import CHECK_CALL, CHECK_MARK

CELL_TIMEOUT = 120         # seconds per cell
NOTEBOOK_TIMEOUT = 900     # seconds per notebook
MEMORY_LIMIT = 6 * 2**30   # bytes per submission, every process and every kind of memory together
MAX_OUTPUT = 2_000_000     # bytes of a submission's own output kept per notebook
MAX_NOTEBOOK_BYTES = 20_000_000   # a submission larger than this is not run
MAX_LINE_BYTES = 6_000_000        # one event line from the sandbox
MAX_EVENT_BYTES = 40_000_000      # all event lines of one submission together


# The grader's own computations (drawing probes, judging) run one at a time: draws seed torch's global
# random generator for a moment and judges share cached models, so two threads must not interleave.
# They take milliseconds to seconds; the notebooks, which take the time, still run side by side.
JUDGING = threading.Lock()


class GradingError(ValueError):
    """Bad grading inputs: a missing assignment, an empty submissions folder, an existing grades file."""


@dataclass
class SubmissionResult:
    """What happened to one submission: verdicts per item and the problems met on the way."""
    student: str
    verdicts: dict = field(default_factory=dict)   # item -> (points, line)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def points(self, ex: Exercise) -> float:
        return sum(self.verdicts.get(it.id, (0.0, ""))[0] for it in ex.items)


# ---------------------------------------------------------------- reading a submission (untrusted bytes)

@dataclass
class Cell:
    kind: str
    source: str
    check: str | None = None   # the item, if the cell is (or pretends to be) a check cell


def read_cells(raw: bytes) -> list[Cell]:
    """The cells of a submitted notebook: only their kind, text and whether they are check cells.

    Ids, metadata and stored outputs are never used, so duplicate ids, deep metadata or forged
    outputs neither break grading nor count. Raises ``ValueError`` with a reason for anything that
    is not a notebook.
    """
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"the file is {len(raw) / 1e6:.0f} MB; a notebook for grading must be under "
                         f"{MAX_NOTEBOOK_BYTES / 1e6:.0f} MB (clear large outputs)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"not JSON ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
    if type(data) is not dict or type(data.get("cells")) is not list:
        raise ValueError("JSON without a list of cells")
    cells = []
    for cell in data["cells"]:
        if type(cell) is not dict or cell.get("cell_type") not in ("code", "markdown", "raw"):
            continue
        source = cell.get("source", "")
        if type(source) is list and all(type(s) is str for s in source):
            source = "".join(source)
        if type(source) is not str:
            continue
        metadata = cell.get("metadata") if type(cell.get("metadata")) is dict else {}
        tlkit_meta = metadata.get("tlkit") if type(metadata.get("tlkit")) is dict else {}
        check = None
        if cell["cell_type"] == "code":
            found = CHECK_CALL.search(source)
            if source.lstrip().startswith(CHECK_MARK) or "NBVAL_CHECK_OUTPUT" in source or "check" in tlkit_meta:
                check = found.group("item") if found else str(tlkit_meta.get("check", "?"))
        cells.append(Cell(cell["cell_type"], source, check))
    return cells


def exercise_of(nb: nbformat.NotebookNode, where: str) -> Exercise:
    name = nb.metadata.get("tlkit", {}).get("exercise")
    if not name:
        raise GradingError(f"{where} is not a tlkit exercise (metadata.tlkit.exercise is missing)")
    return exercise(name)


@dataclass
class Plan:
    """One submission's graded run: the notebook to execute and, per code item, its seed and grader cell."""
    notebook: nbformat.NotebookNode
    seeds: dict[str, int]
    cell_of: dict[str, int]            # item -> index of its grader cell in ``notebook``
    numbers: list[int | None]         # per graded cell: the learner's cell number (markdown counted)
    code_before: dict[str, list[str]]  # item -> the learner's code cells that come before its check


def plan(cells: list[Cell], ex: Exercise) -> Plan:
    """The submission's own code cells (check cells dropped) with one grader cell per code item.

    Each grader cell takes the place of the submission's check cell for its item, so it runs after
    the learner's answer however many cells the learner added; an item whose check cell is gone is
    checked at the end of the notebook.
    """
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    graded, numbers, learner_code = [], [], []
    seeds: dict[str, int] = {}
    code_before: dict[str, list[str]] = {}

    def grader_cell(item) -> None:
        code_before[item.id] = list(learner_code)
        if item.answer:
            return  # read from the text, no cell runs for it
        seeds[item.id] = new_seed()
        cell = nbformat.v4.new_code_cell(
            "import tlkit.course.probes as _tlkit_probes\n"
            f"_tlkit_probes.answer({ex.name!r}, {item.id!r}, {seeds[item.id]})")
        cell.metadata["grader_item"] = item.id
        graded.append(cell)
        numbers.append(None)

    known = {item.id: item for item in ex.items}
    for number, cell in enumerate(cells, 1):
        if cell.kind != "code":
            continue
        if cell.check is None:
            graded.append(nbformat.v4.new_code_cell(cell.source))
            numbers.append(number)
            learner_code.append(cell.source)
        elif cell.check in known and cell.check not in code_before:
            grader_cell(known[cell.check])
    for item in ex.items:
        if item.id not in code_before:
            grader_cell(item)
    nb.cells = graded
    cell_of = {c.metadata["grader_item"]: i for i, c in enumerate(graded) if "grader_item" in c.metadata}
    return Plan(nb, seeds, cell_of, numbers, code_before)


def learners_copy(cells: list[Cell]) -> bytes:
    """What the sandbox's working directory holds: the learner's own cells, no grader cell, no seed."""
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
                "raw": nbformat.v4.new_raw_cell}[cell.kind]
        nb.cells.append(make(cell.source))
    return nbformat.writes(nb).encode()


# ---------------------------------------------------------------- running it, in the sandbox

@dataclass
class RunLimits:
    cell_timeout: int = CELL_TIMEOUT
    notebook_timeout: int = NOTEBOOK_TIMEOUT
    memory: int = MEMORY_LIMIT
    max_output: int = MAX_OUTPUT


def run_submission(graded: nbformat.NotebookNode, own_copy: bytes,
                   limits: RunLimits) -> tuple[list[dict], float, list[str]]:
    """Run a graded notebook in a fresh sandbox; return its events, the seconds it took, and problems
    the grader saw from outside (time limit, memory limit, a flood of events)."""
    from .sandbox import Limits, Sandbox

    box = Sandbox(Limits(memory=limits.memory), files={"submission.ipynb": own_copy})
    nb_read, nb_write = os.pipe()
    ev_read, ev_write = os.pipe()
    events: list[dict] = []
    seen_from_outside: list[str] = []
    start = time.perf_counter()
    try:
        argv = [sys.executable, "-I", "-m", "tlkit.course.runner", str(nb_read), str(ev_write),
                str(int(limits.cell_timeout)), str(int(limits.max_output))]
        proc = box.start(argv, pass_fds=(nb_read, ev_write))
        os.close(nb_read)
        os.close(ev_write)
        payload = nbformat.writes(graded).encode()
        threading.Thread(target=_write_all, args=(nb_write, payload), daemon=True).start()
        reader = threading.Thread(target=_read_events, args=(ev_read, events, box), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=limits.notebook_timeout)
        except Exception:  # subprocess.TimeoutExpired
            seen_from_outside.append("the notebook ran longer than the time limit and was stopped")
        box.kill()  # and with it every process the submission started
        reader.join(timeout=10)
        if box.out_of_memory():
            seen_from_outside.append(f"the notebook used more than the memory limit "
                                     f"({limits.memory / 2**30:g} GB) and was stopped there")
        if any(e.get("event") == "flood" for e in events):
            seen_from_outside.append("the notebook sent the grader more data than allowed; it was stopped")
    finally:
        box.close()
    return events, time.perf_counter() - start, seen_from_outside


def _write_all(fd: int, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)
    except OSError:  # the sandbox died before reading it all
        pass


def _read_events(fd: int, events: list[dict], box) -> None:
    """Untrusted lines from the sandbox: each should be one small JSON object. An unreadable line is
    noted and skipped; a line too long, or too much in all, ends the run (it only costs this submission)."""
    total = 0
    with os.fdopen(fd, "rb") as pipe:
        while True:
            line = pipe.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            total += len(line)
            if len(line) > MAX_LINE_BYTES or total > MAX_EVENT_BYTES:
                events.append({"event": "flood"})
                box.kill()
                return
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                event = None
            if type(event) is not dict or type(event.get("event")) is not str:
                events.append({"event": "garbled"})
                continue
            events.append(event)


# ---------------------------------------------------------------- judging

def judge_answer(ex: Exercise, item, sources: list[str]) -> tuple[float, str]:
    """A quiz item, from the text of the learner's cells before its check."""
    found, value = literal_assignment(sources, item.answer)
    if not found:
        line = f"{item.id}: not yet — set {item.answer} in the cell above its check (e.g. {item.answer} = \"b\")"
        return 0.0, line
    if value is NOT_LITERAL:
        return 0.0, f"{item.id}: not yet — {not_literal_hint(item.answer)}"
    verdict = ex.judge(item.id, ex.collect(item.id, {item.answer: value}))
    return (item.points if verdict.passed else 0.0), verdict.line(item.id)


def grade_one(student: str, raw: bytes, ex: Exercise, limits: RunLimits | None = None) -> SubmissionResult:
    """Grade one submission's bytes. Never raises for anything the submission contains or sends."""
    limits = limits or RunLimits()
    result = SubmissionResult(student)
    for item in ex.items:
        result.verdicts[item.id] = (0.0, f"{item.id}: not yet — no result (see problems)")
    try:
        cells = read_cells(raw)
    except ValueError as err:
        result.problems.append(f"not a valid notebook, nothing was run: {err}")
        return result
    try:
        _grade_cells(result, cells, ex, limits)
    except Exception as err:  # a bug of ours, or something we did not foresee: this submission only
        result.problems.append(f"the grader could not finish this submission ({type(err).__name__}: "
                               f"{str(err)[:200]}); grade it by hand")
    return result


def _grade_cells(result: SubmissionResult, cells: list[Cell], ex: Exercise, limits: RunLimits) -> None:
    p = plan(cells, ex)
    for item in ex.items:
        if item.answer:
            with JUDGING:
                result.verdicts[item.id] = judge_answer(ex, item, p.code_before[item.id])
    if not p.seeds:
        return
    events, result.seconds, outside = run_submission(p.notebook, learners_copy(cells), limits)

    def cell(event) -> str:
        index = event.get("cell")
        number = p.numbers[index] if type(index) is int and 0 <= index < len(p.numbers) else None
        return f"cell {number}" if number else "a grader cell"

    judged = set()
    for event in events:
        kind = event.get("event")
        if kind == "evidence":
            payload = event.get("payload")
            item_id = payload.get("item") if type(payload) is dict else None
            if item_id in p.seeds and item_id not in judged and event.get("cell") == p.cell_of[item_id]:
                judged.add(item_id)
                item = ex.item(item_id)
                with JUDGING:
                    probe = item.probe(p.seeds[item_id])  # the same draw, in the grader's own process
                    verdict = ex.judge(item_id, payload.get("evidence"), probe)
                result.verdicts[item_id] = (item.points if verdict.passed else 0.0, verdict.line(item_id))
        elif kind == "cell_timeout":
            result.problems.append(f"{cell(event)} ran too long and was stopped")
        elif kind == "error" and event.get("grader") is not True:
            result.problems.append(f"{cell(event)} raised {str(event.get('ename'))[:100]}: "
                                   f"{str(event.get('evalue'))[:300]}")
        elif kind == "truncated":
            result.problems.append(f"{cell(event)} printed too much; the rest of the output was dropped")
        elif kind == "died":
            result.problems.append("the kernel died (a crash, os._exit or running out of memory); "
                                   "code items after that point got no points")
        elif kind == "garbled":
            if "the grader received lines it could not read; they were ignored" not in result.problems:
                result.problems.append("the grader received lines it could not read; they were ignored")
    result.problems.extend(outside)
    if not any(e.get("event") == "done" for e in events) and not result.problems:
        result.problems.append("the run ended early without finishing")


# ---------------------------------------------------------------- a class of submissions

def find_submissions(folder: Path) -> list[tuple[str, Path]]:
    """``folder/<student>.ipynb`` files and ``folder/<student>/<anything>.ipynb`` folders, sorted."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix == ".ipynb" and not entry.is_symlink():
            found.append((entry.stem, entry))
        elif entry.is_dir() and not entry.name.startswith(".") and not entry.is_symlink():
            notebooks = sorted(p for p in entry.glob("*.ipynb") if not p.name.startswith(".") and p.is_file())
            if notebooks:
                found.append((entry.name, notebooks[0]))
    return found


def _claim(path: Path, force: bool, what: str) -> Path:
    """Check at the start that ``path`` may be written: not a link, not there unless ``force``."""
    path = Path(os.path.abspath(path))
    if path.is_symlink():
        raise GradingError(f"{path} is a symbolic link; {what} is never written through one: choose another path")
    if path.exists() and not force:
        raise GradingError(f"{path} already exists; choose another --out, move it, or pass --force")
    return path


def grade(assignment: str | Path, submissions: str | Path, out: str | Path,
          feedback_dir: str | Path | None = None, force: bool = False, progress=print, jobs: int = 1,
          cell_timeout: int = CELL_TIMEOUT, notebook_timeout: int = NOTEBOOK_TIMEOUT, memory: int = MEMORY_LIMIT,
          max_output: int = MAX_OUTPUT) -> list[SubmissionResult]:
    """Grade every submission in ``submissions`` against ``assignment``; write the CSV and feedback files.

    Everything is read before the first notebook runs and the files are written at the end, so a
    submission cannot take other students' submissions or grades with it.
    """
    assignment, submissions = Path(assignment), Path(submissions)
    if jobs < 1:
        raise GradingError(f"jobs must be at least 1, got {jobs}")
    if not assignment.is_file():
        raise GradingError(f"{assignment}: no such assignment notebook (give the student copy or its source)")
    if not submissions.is_dir():
        raise GradingError(f"{submissions}: not a folder of submissions")
    out = _claim(Path(out), force, "a grades file")
    if out.exists() and out.is_dir():
        raise GradingError(f"{out} is a folder; give a file name for --out")
    feedback_dir = _claim(Path(feedback_dir) if feedback_dir else out.with_name(out.stem + "_feedback"), force,
                          "feedback")
    out_existed = out.exists()
    assignment_nb = nbformat.read(assignment, as_version=4)
    ex = exercise_of(assignment_nb, str(assignment))  # loaded once: judges and quiz keys stay in memory
    found = find_submissions(submissions)
    if not found:
        raise GradingError(f"{submissions}: no .ipynb submissions found (expected <student>.ipynb or <student>/*.ipynb)")
    payloads = [(student, path.read_bytes()) for student, path in found]
    out.parent.mkdir(parents=True, exist_ok=True)
    feedback_dir.mkdir(parents=True, exist_ok=True)
    feedback_fd = os.open(feedback_dir, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0))
    limits = RunLimits(cell_timeout, notebook_timeout, memory, max_output)
    from .sandbox import PROCESSES, detect_mode, protections
    mode = detect_mode()  # once, before the threads start
    progress(f"sandbox: {mode}" + (" — WARNING: " + protections(mode)[-1] if mode == PROCESSES else ""))

    done = 0
    lock = threading.Lock()

    def one(student_raw):
        nonlocal done
        student, raw = student_raw
        result = grade_one(student, raw, ex, limits)
        with lock:
            done += 1
            progress(f"[{done}/{len(payloads)}] {student}: {result.points(ex):g}/{sum(i.points for i in ex.items):g}"
                     + (f" ({len(result.problems)} problem(s))" if result.problems else ""))
        return result

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:  # each submission runs in its own sandbox
            results = list(pool.map(one, payloads))
        written = write_csv(results, ex, out, replace=force or not out_existed)
        if written != out:
            progress(f"WARNING: {out} was changed while grading; the grades went to {written} instead")
        write_feedback(results, ex, feedback_fd)
    finally:
        os.close(feedback_fd)
    return results


def _cell(text: str) -> str:
    """A CSV field a spreadsheet shows as text, never runs as a formula (learner-written text ends up here)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(results: list[SubmissionResult], ex: Exercise, out: Path, replace: bool = True) -> Path:
    """Write the grades atomically: a temporary file in the same folder, renamed onto ``out``.

    If something appeared at ``out`` since the start that may not be replaced (a file without
    ``--force``, a folder, a link), the grades go next to it under a new name, which is returned.
    """
    total = sum(i.points for i in ex.items)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student", *ex.ids, "total", "max", "problems"])
    for r in results:
        writer.writerow([_cell(r.student), *(f"{r.verdicts[i][0]:g}" for i in ex.ids),
                         f"{r.points(ex):g}", f"{total:g}", _cell(" | ".join(r.problems))])
    target = out
    if out.is_symlink() or out.is_dir() or (out.exists() and not replace):
        target = out.with_name(f"{out.stem}-{time.strftime('%Y%m%d-%H%M%S')}{out.suffix}")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)  # replaces a name, never follows a link
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_feedback(results: list[SubmissionResult], ex: Exercise, folder_fd: int) -> None:
    """One ``<student>.md`` per submission, written inside the folder opened at the start."""
    total = sum(i.points for i in ex.items)
    for r in results:
        lines = [f"# {ex.name}: feedback for {r.student}", "", f"Score: {r.points(ex):g} / {total:g}", ""]
        lines += [f"- {r.verdicts[i][1]}" for i in ex.ids]
        if r.problems:
            lines += ["", "What happened while running your notebook:", ""] + [f"- {p}" for p in r.problems]
        name = f"{r.student}.md"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(name, flags, 0o644, dir_fd=folder_fd)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")


def check_notebook(path: str | Path, cell_timeout: int = CELL_TIMEOUT, notebook_timeout: int = NOTEBOOK_TIMEOUT,
                   memory: int = MEMORY_LIMIT) -> SubmissionResult:
    """``tlkit check``: run your own exercise notebook in a fresh sandboxed kernel and judge every item."""
    path = Path(path)
    if not path.is_file():
        raise GradingError(f"{path}: no such notebook")
    raw = path.read_bytes()
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as err:
        raise GradingError(f"{path}: not a valid notebook ({str(err).splitlines()[0][:200]})") from None
    ex = exercise_of(nb, str(path))
    return grade_one(path.stem, raw, ex, RunLimits(cell_timeout, notebook_timeout, memory))
