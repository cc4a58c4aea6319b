"""Hygiene rules for the lesson notebooks (nbval runs them; these tests check how they are stored).

A lesson that ran top to bottom in a fresh kernel has execution counts 1, 2, 3, ... and no
error outputs. Check cells (``# NBVAL_CHECK_OUTPUT``) must carry their stored output so that
``pytest --nbval-lax`` has something to compare; nbval 0.11 also needs its execution count.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
# Paths that only exist on the author's machine; "~/" and relative paths are fine.
MACHINE_PATH = re.compile(r"(/work/|/home/\w|/Users/\w|/tmp/|/root/|[A-Z]:\\\\)")
MAX_BYTES = 1_500_000


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _output_text(output: dict) -> str:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        return "".join(text) if isinstance(text, list) else text
    data = output.get("data", {})
    text = data.get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


def test_the_first_half_of_the_course_is_there():
    names = {p.name for p in LESSONS}
    for expected in ("00_start_here.ipynb", "01_what_a_pretrained_model_knows.ipynb",
                     "02_feature_extraction.ipynb", "03_freezing_and_fine_tuning.ipynb"):
        assert expected in names, f"lessons/{expected} is missing"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_is_stored_as_run_top_to_bottom(path: Path):
    nb = _load(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and _source(c).strip()]
    counts = [c.get("execution_count") for c in code]
    assert None not in counts, f"{path.name}: some code cells were never run; run it with scripts/run_notebook.py"
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts[:12]}... are not 1, 2, 3, ...: "
        "restart the kernel and run all (scripts/run_notebook.py does this)")
    for cell in code:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: stored error output in\n{_source(cell)[:200]}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_has_measured_check_cells(path: Path):
    nb = _load(path)
    checks = [c for c in nb["cells"] if c["cell_type"] == "code" and CHECK_MARK in _source(c)]
    assert len(checks) >= 2, f"{path.name}: needs at least two '{CHECK_MARK}' check cells, has {len(checks)}"
    for cell in checks:
        text = "".join(_output_text(o) for o in cell.get("outputs", []))
        assert text.strip(), f"{path.name}: check cell has no stored output:\n{_source(cell)[:200]}"
        assert cell.get("execution_count"), f"{path.name}: check cell output needs an execution count (nbval)"
        # A check states what was measured with tl.claim(text, value, comparison, threshold): computed, not
        # typed in, and recorded for benchmarks/claims.py, which reruns it over seeds and thread counts.
        assert "tl.claim(" in _source(cell), f"{path.name}: a check cell states its claim with tl.claim(...)"
        # nbval compares a check cell's whole output: a number printed there differs on the next machine.
        assert "print(f" not in _source(cell), f"{path.name}: print measured numbers in a cell before the check"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_is_light_portable_and_seeded(path: Path):
    raw = path.read_text(encoding="utf-8")
    assert len(raw.encode()) < MAX_BYTES, f"{path.name} is {len(raw.encode())/1e6:.1f} MB; keep outputs small"
    nb = json.loads(raw)
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: strip saved widget state"
    for cell in nb["cells"]:
        texts = [_source(cell)] + [_output_text(o) for o in cell.get("outputs", [])]
        for text in texts:
            hit = MACHINE_PATH.search(text)
            assert not hit, f"{path.name}: machine-specific path {hit.group(0)!r} in\n{text[:300]}"
    assert "seed_everything(" in raw, f"{path.name}: fix the seeds with tl.seed_everything(...)"
    seed_lines = [c for c in nb["cells"] if c["cell_type"] == "code" and re.search(r"^SEED = 0\b", _source(c), re.M)]
    assert len(seed_lines) == 1, (f"{path.name}: one code cell should set 'SEED = 0' and every random choice follow it "
                                  "(benchmarks/claims.py reruns the lesson with other seeds by changing that line)")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_ends_with_summary_and_exercise_pointer(path: Path):
    nb = _load(path)
    tail = "\n".join(_source(c) for c in nb["cells"][-3:] if c["cell_type"] == "markdown")
    assert "exercises/" in tail or path.name.startswith("00_"), (
        f"{path.name}: the last cells should point to the matching exercise in exercises/")
    lowered = "\n".join(_source(c) for c in nb["cells"] if c["cell_type"] == "markdown").lower()
    assert "pitfall" in lowered, f"{path.name}: name the pitfalls"
    assert "summary" in lowered, f"{path.name}: end with a summary"
