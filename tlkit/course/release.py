"""Make the student copy of an exercise from its source notebook (``tlkit release``).

The source notebook (``exercises/source/NN_name.ipynb``) is the instructor's: it holds the
solutions and has been run top to bottom. Releasing it

- replaces every region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (code cells) with
  a placeholder that raises ``NotImplementedError``, and every ``<!-- BEGIN SOLUTION -->`` ...
  ``<!-- END SOLUTION -->`` region (markdown cells) with "*Your answer here.*";
- clears all outputs except those of the check cells, which keep their ``q1: passed`` lines so
  that ``pytest --nbval-lax`` passes only when the learner's code prints the same; a learner sees
  them as a grey label, "what this check prints once your answer is right" (``expected_output``);
- tags each check cell with its item (``metadata.tlkit.check``) so a grader can restore it.

Made by code, never by hand, so the student copy cannot drift from the source: a test compares
``release_notebook(source)`` with the committed copy.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
CHECK_CALL = re.compile(r"""\.check\(\s*["'](?P<item>[A-Za-z0-9_]+)["']""")
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MD_SOLUTION = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->", re.S)
PLACEHOLDER = '# YOUR CODE HERE\nraise NotImplementedError("write your code here, then run the check below")'


class ReleaseError(ValueError):
    """A source notebook that cannot be released, or a release that would overwrite someone's work."""


def check_item(cell) -> str | None:
    """The item a check cell checks (``"q1"``), or None for any other cell."""
    if cell.cell_type != "code" or not cell.source.lstrip().startswith(CHECK_MARK):
        return None
    found = CHECK_CALL.search(cell.source)
    return found.group("item") if found else None


def strip_solutions(source: str, where: str) -> str:
    """Replace each solution region in a code cell's source with the placeholder (same indentation)."""
    out, inside, indent = [], False, ""
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ReleaseError(f"{where}: line {number}: {BEGIN!r} inside another solution region")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            out.extend(indent + p for p in PLACEHOLDER.splitlines())
        elif marker == END:
            if not inside:
                raise ReleaseError(f"{where}: line {number}: {END!r} without a {BEGIN!r} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ReleaseError(f"{where}: {BEGIN!r} is never closed with {END!r}")
    return "\n".join(out)


def release_notebook(source_nb: nbformat.NotebookNode, where: str = "notebook") -> nbformat.NotebookNode:
    """The student copy of an executed source notebook (a new notebook; the source is unchanged)."""
    nb = copy.deepcopy(source_nb)
    name = nb.metadata.get("tlkit", {}).get("exercise")
    if not name:
        raise ReleaseError(f"{where}: metadata.tlkit.exercise is missing (the exercise's name, e.g. '01_...')")
    items = []
    for index, cell in enumerate(nb.cells):
        label = f"{where}, cell {index + 1}"
        item = check_item(cell)
        if item is not None:
            _keep_passed_output(cell, item, label)
            items.append(item)
            cell.metadata["tlkit"] = {"check": item}
            cell.metadata["tags"] = sorted(set(cell.metadata.get("tags", [])) | {"check"})
            continue
        if cell.cell_type == "code":
            if BEGIN in cell.source or END in cell.source:
                cell.source = strip_solutions(cell.source, label)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = MD_SOLUTION.sub("*Your answer here.*", cell.source)
        cell.metadata.pop("execution", None)
    if not items:
        raise ReleaseError(f"{where}: no check cells (cells starting with {CHECK_MARK!r} that call .check('q1'))")
    if len(set(items)) != len(items):
        raise ReleaseError(f"{where}: an item is checked twice: {items}")
    nb.metadata.pop("widgets", None)
    nb.metadata["tlkit"] = {"exercise": name, "items": items, "released_from": "source"}
    return nb


EXPECTED_LABELS = Path(__file__).resolve().parent / "assets" / "expected"


def check_lines(cell) -> list[str]:
    """The lines a check cell showed: its stdout, and the ``text/plain`` of what it displayed (stderr,
    a library's warning, does not count)."""
    text = ""
    for o in cell.outputs:
        if o.get("output_type") == "stream" and o.get("name", "stdout") == "stdout":
            text += o.get("text", "")
        elif o.get("output_type") in ("display_data", "execute_result"):
            text += str(o.get("data", {}).get("text/plain", "")) + "\n"
    return [line for line in text.splitlines() if line.strip()]


def expected_output(item: str):
    """What a student copy stores under the check cell of ``item``: the line a right answer shows
    (``text/plain``, which ``pytest --nbval-lax`` compares) and, for the learner's eyes, a picture of it
    labelled "what this check prints once your answer is right" (``image/png``: nbval does not compare
    pictures, and notebook front ends show the picture instead of the text)."""
    data = {"text/plain": f"{item}: passed"}
    picture = EXPECTED_LABELS / f"{item}.png"
    if picture.is_file():
        import base64
        data["image/png"] = base64.b64encode(picture.read_bytes()).decode()
    return nbformat.v4.new_output("display_data", data=data)


def _keep_passed_output(cell, item: str, where: str) -> None:
    """A check cell keeps exactly its ``item: passed`` line; anything else means the source is not ready."""
    lines = check_lines(cell)
    if cell.execution_count is None or lines != [f"{item}: passed"]:
        shown = lines[0] if lines else "nothing"
        raise ReleaseError(f"{where}: the check for {item} prints {shown!r} in the source notebook; run the "
                           f"source top to bottom with the solutions in place (it must print '{item}: passed')")
    cell.outputs = [expected_output(item)]


def student_path(source: Path) -> Path:
    """``exercises/source/NN_name.ipynb`` -> ``exercises/NN_name.ipynb``."""
    return source.parent.parent / source.name if source.parent.name == "source" else source.with_name(
        source.stem + "_student.ipynb")


def looks_untouched(nb: nbformat.NotebookNode) -> bool:
    """True when a notebook is a plain release: no outputs or run counts outside the check cells."""
    for cell in nb.cells:
        if cell.cell_type == "code" and check_item(cell) is None and (cell.outputs or cell.execution_count):
            return False
    return True


def release(source: str | Path, target: str | Path | None = None, force: bool = False) -> tuple[Path, str]:
    """Write the student copy of ``source``; return (path, "written" | "unchanged").

    Refuses to overwrite a student copy that someone has worked in (it has outputs) unless
    ``force=True``: a learner's answers are never silently lost.
    """
    source = Path(source)
    if not source.is_file():
        raise ReleaseError(f"{source}: no such notebook")
    try:
        source_nb = nbformat.read(source, as_version=4)
    except Exception as err:
        raise ReleaseError(f"{source}: not a readable notebook ({err})") from None
    target = Path(target) if target else student_path(source)
    text = nbformat.writes(release_notebook(source_nb, where=str(source))) + "\n"
    if target.exists():
        old = target.read_text(encoding="utf-8")
        if old == text:
            return target, "unchanged"
        if not force and not looks_untouched(nbformat.reads(old, as_version=4)):
            raise ReleaseError(f"{target} has outputs: someone has worked in it. Move it away, or pass "
                               "--force to replace it with a fresh release")
    target.write_text(text, encoding="utf-8")
    return target, "written"


def is_stale(source: str | Path, target: str | Path | None = None) -> bool:
    """True when the student copy is missing or differs from a fresh release of ``source``."""
    source = Path(source)
    target = Path(target) if target else student_path(source)
    if not target.exists():
        return True
    text = nbformat.writes(release_notebook(nbformat.read(source, as_version=4), where=str(source))) + "\n"
    return target.read_text(encoding="utf-8") != text


STUDENT_README = """# {title}

Open the course with `tlkit course --dir .` (or start JupyterLab in this folder) and begin with
`lessons/00_start_here.ipynb`. Each lesson ends with an exercise in `exercises/`: write your code
where it says `# YOUR CODE HERE` and run the check cell below it. Before handing in, run

    tlkit check exercises/<the exercise>.ipynb

to re-run the whole notebook in a fresh kernel and see your score.
"""


def student_course(target: Path, sources: list[Path], lessons: Path, title: str = "Transfer learning with tlkit") -> list[Path]:
    """Write a course for learners into the new folder ``target``: ``lessons/`` as they are and
    ``exercises/`` released from ``sources`` (solutions stripped), no ``exercises/source/``.

    ``target`` must not exist yet, or be empty: a course someone has worked in is never overwritten.
    Returns the notebooks written.
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ReleaseError(f"{target} exists and is not empty: choose a new folder (a course a learner has "
                           "worked in is never overwritten)")
    released = [(source, release_notebook(nbformat.read(source, as_version=4), where=str(source)))
                for source in sources]  # every source is checked before anything is written
    (target / "exercises").mkdir(parents=True, exist_ok=True)
    (target / "lessons").mkdir(exist_ok=True)
    written = []
    for source, nb in released:
        path = target / "exercises" / source.name
        path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
        written.append(path)
    for lesson in sorted(lessons.glob("*.ipynb")):
        path = target / "lessons" / lesson.name
        path.write_bytes(lesson.read_bytes())
        written.append(path)
    if (lessons / "README.md").is_file():
        (target / "lessons" / "README.md").write_bytes((lessons / "README.md").read_bytes())
    (target / "README.md").write_text(STUDENT_README.format(title=title), encoding="utf-8")
    return written
