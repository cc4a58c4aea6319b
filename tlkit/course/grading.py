"""Grade a folder of submitted exercise notebooks (``tlkit grade``) or one's own (``tlkit check``).

How one submission is graded:

1. Its check cells are thrown away and replaced by the grader's own cells, one per item, placed
   where the assignment has them. Each grader cell collects *evidence* (plain JSON) and carries a
   random nonce that no earlier cell can know. Stored outputs are ignored: everything is re-run.
2. The notebook runs in a separate process (a fresh kernel, a scratch folder as working directory)
   with a time limit per cell, a time limit for the whole notebook, a memory limit and a cap on how
   much output is kept. The evidence comes back through a private pipe the kernel cannot write to.
3. The grader judges the evidence with the checks it imported *before* running any submission, so
   nothing a notebook redefines, patches or deletes can change the verdict.

A submission that hangs, crashes, raises, prints megabytes, deletes files or is not valid JSON costs
points only for itself: the run goes on, and the feedback says what happened.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .exercises import EVIDENCE_MIME, Exercise, exercise
from .release import check_item

CELL_TIMEOUT = 120       # seconds per cell
NOTEBOOK_TIMEOUT = 900   # seconds per notebook
MEMORY_LIMIT = 6 * 2**30  # bytes of heap per submission (RLIMIT_DATA)
MAX_OUTPUT = 2_000_000   # bytes of output kept per notebook


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


# ---------------------------------------------------------------- building the graded notebook

def exercise_of(nb: nbformat.NotebookNode, where: str) -> Exercise:
    name = nb.metadata.get("tlkit", {}).get("exercise")
    if not name:
        raise GradingError(f"{where} is not a tlkit exercise (metadata.tlkit.exercise is missing)")
    return exercise(name)


def anchors(assignment: nbformat.NotebookNode) -> dict[str, str | None]:
    """For each item, the id of the cell just before its check cell in the assignment."""
    found, previous = {}, None
    for cell in assignment.cells:
        item = check_item(cell) or cell.metadata.get("tlkit", {}).get("check")
        if item:
            found[item] = previous
        elif cell.cell_type == "code":
            previous = cell.get("id")
    return found


def is_check_like(cell) -> bool:
    """Any cell that is, or pretends to be, a check cell: the grader replaces all of them."""
    return cell.cell_type == "code" and (
        check_item(cell) is not None or "check" in cell.metadata.get("tlkit", {})
        or "NBVAL_CHECK_OUTPUT" in cell.source)


def grading_notebook(submission: nbformat.NotebookNode, ex: Exercise, where: dict[str, str | None],
                     nonces: dict[str, str]) -> nbformat.NotebookNode:
    """The submission's own cells (outputs cleared, check cells removed) plus one grader cell per item."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    cells = []
    for number, cell in enumerate(submission.cells, 1):
        if cell.cell_type != "code" or is_check_like(cell):
            continue
        fresh = nbformat.v4.new_code_cell(cell.source)
        fresh.metadata["from_submission"] = cell.get("id")
        fresh.metadata["cell_number"] = number  # as the learner counts cells, markdown included
        cells.append(fresh)
    for item in ex.ids:
        grader_cell = nbformat.v4.new_code_cell(
            "import tlkit.course.exercises as _tlkit_checking\n"
            f"_tlkit_checking.emit_evidence({ex.name!r}, {item!r}, {nonces[item]!r})")
        grader_cell.metadata["grader_item"] = item
        anchor = where.get(item)
        position = next((i + 1 for i, c in enumerate(cells) if anchor and c.metadata.get("from_submission") == anchor),
                        len(cells))
        # after any grader cells already placed behind the same anchor, to keep the items in order
        while position < len(cells) and "grader_item" in cells[position].metadata:
            position += 1
        cells.insert(position, grader_cell)
    nb.cells = cells
    return nb


# Names that only the grader's own machinery uses: a submission that mentions one is reaching for it.
GRADER_INTERNALS = ("tlkit.course.exercises", "tlkit.course.checks", "emit_evidence", "_tlkit_grader", "_private_tlkit",
                    "EVIDENCE_MIME", "vnd.tlkit.evidence", "tlkit.course.grading", "display_pub")


def reaches_into_grader(submission: nbformat.NotebookNode) -> list[str]:
    """``["cell 4 uses tlkit.course.exercises", ...]`` for the submission's code cells that name grader internals.

    Checks cells are replaced anyway; this catches code that tries to change how evidence is
    collected. (Patching through other routes is defeated by collecting with a private copy of
    tlkit; see ``tlkit.course.exercises.emit_evidence``.)
    """
    found = []
    for number, cell in enumerate(submission.cells, 1):
        if cell.cell_type != "code" or is_check_like(cell):
            continue
        hits = [name for name in GRADER_INTERNALS if name in cell.source]
        if hits:
            found.append(f"cell {number} uses {', '.join(hits)}")
    return found


# ---------------------------------------------------------------- running one notebook (child process)

def run_in_child(notebook_path: str, result_fd: int, cell_timeout: int, max_output: int) -> None:
    """Runs inside the limited child process: execute cell by cell, stream evidence to ``result_fd``."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    out = os.fdopen(result_fd, "w", buffering=1)

    def send(**message):
        out.write(json.dumps(message) + "\n")

    class CappedClient(NotebookClient):
        kept = 0

        def output(self, outs, msg, display_id, cell_index):
            size = len(json.dumps(msg.get("content", {}), default=str))
            if self.kept + size > max_output and msg.get("msg_type") != "display_data":
                if self.kept <= max_output:
                    send(event="truncated", cell=cell_index)
                self.kept = max_output + 1
                return None
            self.kept += size
            return super().output(outs, msg, display_id, cell_index)

    nb = nbformat.read(notebook_path, as_version=4)
    client = CappedClient(
        nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeout", "evalue": f"the cell ran longer than {cell_timeout} s",
                          "traceback": []},
        resources={"metadata": {"path": str(Path(notebook_path).parent)}})
    try:
        with client.setup_kernel():
            for index, cell in enumerate(nb.cells):
                start = time.perf_counter()
                client.execute_cell(cell, index)
                if time.perf_counter() - start >= cell_timeout:
                    send(event="cell_timeout", cell=index)
                    continue  # its error is the interrupt we sent, not the learner's
                for o in cell.outputs:
                    if o.get("output_type") == "error":
                        send(event="error", cell=index, ename=o.get("ename", ""),
                             evalue=str(o.get("evalue", ""))[:300],
                             grader="grader_item" in cell.metadata)
                    data = o.get("data", {})
                    if EVIDENCE_MIME in data and "grader_item" in cell.metadata:
                        send(event="evidence", cell=index, payload=data[EVIDENCE_MIME])
    except DeadKernelError:
        send(event="died")
    send(event="done")


def _limits(memory: int):
    def apply():
        import resource
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run_submission(graded: nbformat.NotebookNode, cell_timeout: int = CELL_TIMEOUT,
                   notebook_timeout: int = NOTEBOOK_TIMEOUT, memory: int = MEMORY_LIMIT,
                   max_output: int = MAX_OUTPUT) -> tuple[list[dict], float]:
    """Run a grading notebook in a limited child process; return its events and the seconds it took."""
    workdir = Path(tempfile.mkdtemp(prefix="tlkit-grade-"))
    path = workdir / "submission.ipynb"
    nbformat.write(graded, path)
    read_fd, write_fd = os.pipe()
    events: list[dict] = []

    def reader():
        with os.fdopen(read_fd, "r") as pipe:
            for line in pipe:
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    events.append({"event": "garbled"})

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    start = time.perf_counter()
    code = (f"import sys; from tlkit.course.grading import run_in_child; "
            f"run_in_child(sys.argv[1], {write_fd}, {int(cell_timeout)}, {int(max_output)})")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=workdir, pass_fds=(write_fd,),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=_limits(memory))
    os.close(write_fd)
    try:
        proc.wait(timeout=notebook_timeout)
    except subprocess.TimeoutExpired:
        events.append({"event": "notebook_timeout"})
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the kernel too, and anything it started
        except ProcessLookupError:
            pass
        proc.wait()
    thread.join(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)
    return events, time.perf_counter() - start


# ---------------------------------------------------------------- judging

def grade_one(student: str, raw: bytes, ex: Exercise, where: dict, **limits) -> SubmissionResult:
    """Grade one submission's bytes. Never raises for anything the submission contains."""
    result = SubmissionResult(student)
    for item in ex.items:
        result.verdicts[item.id] = (0.0, f"{item.id}: not yet — no result (see problems)")
    try:
        submission = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as err:
        result.problems.append(f"not a valid notebook, nothing was run: {str(err).splitlines()[0][:200]}")
        return result
    tampering = reaches_into_grader(submission)
    if tampering:
        result.problems.append("not graded: the notebook reaches into the grader's code ("
                               + "; ".join(tampering) + "). Tampering earns no points; remove that code")
        return result
    nonces = {item: secrets.token_hex(16) for item in ex.ids}
    graded = grading_notebook(submission, ex, where, nonces)
    events, result.seconds = run_submission(graded, **limits)
    seen = set()

    def cell(event) -> str:
        index = event.get("cell", -1)
        number = graded.cells[index].metadata.get("cell_number") if 0 <= index < len(graded.cells) else None
        return f"cell {number}" if number else "a grader cell"

    for event in events:
        kind = event.get("event")
        if kind == "evidence":
            payload = event.get("payload") or {}
            item = payload.get("item")
            if item in nonces and payload.get("nonce") == nonces[item] and item not in seen:
                seen.add(item)
                verdict = ex.judge(item, payload.get("evidence"))
                points = ex.item(item).points if verdict.passed else 0.0
                result.verdicts[item] = (points, verdict.line(item))
        elif kind == "cell_timeout":
            result.problems.append(f"{cell(event)} ran too long and was stopped")
        elif kind == "error" and not event.get("grader"):
            result.problems.append(f"{cell(event)} raised {event['ename']}: {event['evalue']}")
        elif kind == "truncated":
            result.problems.append(f"{cell(event)} printed too much; the rest of the output was dropped")
        elif kind == "died":
            result.problems.append("the kernel died (a crash, os._exit or running out of memory); "
                                   "items after that point got no points")
        elif kind == "notebook_timeout":
            result.problems.append("the notebook ran longer than the time limit and was stopped")
    if not any(e.get("event") == "done" for e in events) and not result.problems:
        result.problems.append("the run ended early without finishing")
    return result


def find_submissions(folder: Path) -> list[tuple[str, Path]]:
    """``folder/<student>.ipynb`` files and ``folder/<student>/<anything>.ipynb`` folders, sorted."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix == ".ipynb":
            found.append((entry.stem, entry))
        elif entry.is_dir() and not entry.name.startswith("."):
            notebooks = sorted(p for p in entry.glob("*.ipynb") if not p.name.startswith("."))
            if notebooks:
                found.append((entry.name, notebooks[0]))
    return found


def grade(assignment: str | Path, submissions: str | Path, out: str | Path,
          feedback_dir: str | Path | None = None, force: bool = False, progress=print, jobs: int = 1,
          **limits) -> list[SubmissionResult]:
    """Grade every submission in ``submissions`` against ``assignment``; write the CSV and feedback files.

    Everything is read before the first notebook runs and the files are written at the end, so a
    submission that deletes files cannot take other students' submissions or grades with it.
    """
    assignment, submissions, out = Path(assignment), Path(submissions), Path(out)
    if not assignment.is_file():
        raise GradingError(f"{assignment}: no such assignment notebook (give the student copy or its source)")
    if not submissions.is_dir():
        raise GradingError(f"{submissions}: not a folder of submissions")
    feedback_dir = Path(feedback_dir) if feedback_dir else out.with_name(out.stem + "_feedback")
    for existing in (out, feedback_dir):
        if existing.exists() and not force:
            raise GradingError(f"{existing} already exists; choose another --out, move it, or pass --force")
    assignment_nb = nbformat.read(assignment, as_version=4)
    ex = exercise_of(assignment_nb, str(assignment))
    where = anchors(assignment_nb)
    found = find_submissions(submissions)
    if not found:
        raise GradingError(f"{submissions}: no .ipynb submissions found (expected <student>.ipynb or <student>/*.ipynb)")
    payloads = [(student, path.read_bytes()) for student, path in found]

    if jobs < 1:
        raise GradingError(f"jobs must be at least 1, got {jobs}")
    done = 0

    def one(student_raw):
        nonlocal done
        student, raw = student_raw
        result = grade_one(student, raw, ex, where, **limits)
        done += 1
        progress(f"[{done}/{len(payloads)}] {student}: {result.points(ex):g}/{sum(i.points for i in ex.items):g}"
                 + (f" ({len(result.problems)} problem(s))" if result.problems else ""))
        return result

    # Each submission runs in its own process; threads here only wait for them.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, payloads))
    write_csv(results, ex, out)
    write_feedback(results, ex, feedback_dir)
    return results


def write_csv(results: list[SubmissionResult], ex: Exercise, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    total = sum(i.points for i in ex.items)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *ex.ids, "total", "max", "problems"])
        for r in results:
            writer.writerow([r.student, *(f"{r.verdicts[i][0]:g}" for i in ex.ids),
                             f"{r.points(ex):g}", f"{total:g}", " | ".join(r.problems)])


def write_feedback(results: list[SubmissionResult], ex: Exercise, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    total = sum(i.points for i in ex.items)
    for r in results:
        lines = [f"# {ex.name}: feedback for {r.student}", "", f"Score: {r.points(ex):g} / {total:g}", ""]
        lines += [f"- {r.verdicts[i][1]}" for i in ex.ids]
        if r.problems:
            lines += ["", "What happened while running your notebook:", ""] + [f"- {p}" for p in r.problems]
        (folder / f"{r.student}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def check_notebook(path: str | Path, **limits) -> SubmissionResult:
    """``tlkit check``: run your own exercise notebook in a fresh kernel and judge every item."""
    path = Path(path)
    if not path.is_file():
        raise GradingError(f"{path}: no such notebook")
    raw = path.read_bytes()
    try:
        nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as err:
        raise GradingError(f"{path}: not a valid notebook ({str(err).splitlines()[0][:200]})") from None
    ex = exercise_of(nb, str(path))
    return grade_one(path.stem, raw, ex, anchors(nb), **limits)
