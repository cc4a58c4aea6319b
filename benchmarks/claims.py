"""Do the lessons' claims survive other seeds and other machines? Every check cell, many runs.

A lesson's check cell states a claim with ``tl.claim(text, value, comparison, threshold)``. This
script runs whole lessons, each in a fresh kernel, once per seed and torch thread count (the
thread count changes how sums are split up and so the rounding: the machine variance we can
simulate on one computer), with ``TLKIT_CLAIMS_LOG`` set so that every claim records its value.
It then prints, per claim, how many runs it held in, the worst value, and the margin left in the
worst run (in the claim's own units: accuracy points for accuracies).

A lesson takes part when its setup cell has the line ``SEED = 0``: the run replaces it by
``SEED = <seed>``, so everything the lesson draws at random (the few-shot subsets, the new heads'
starting weights, the order of the batches) changes together. The thread count is set by
``OMP_NUM_THREADS`` and ``torch.set_num_threads`` before the first cell. The run stops after the
last check cell: the explorers and the quiz after it claim nothing.

    python benchmarks/claims.py                                  # every lesson, seeds 0-4, threads 1 2 4
    python benchmarks/claims.py lessons/02_*.ipynb --seeds 0 1   # some lessons, some seeds
    python benchmarks/claims.py --table                          # only print the table of what is stored
    python benchmarks/claims.py --restate "old text" "new text" ">" 0.05   # a claim restated (see below)

A claim that did not survive can be restated as what did hold, about the same measured number (a
new threshold, or the same number said differently). ``--restate`` rewrites the stored runs of that
claim for its new text and threshold, keeping every recorded value, so the table does not need hours
of reruns; the table then shows the restated claim's margin over the same runs. A restated threshold
was chosen after seeing those runs, so confirm it on new seeds (``--seeds 5 6 7 8 9``) when you can.

Results are written to ``benchmarks/results/claims.jsonl`` as each run ends (one line per claim per
run). A run is skipped when every claim the lesson states now already has its line for that seed and
thread count, so an interrupted sweep continues where it stopped, and a changed lesson (a new claim)
runs again. A new run's lines replace the stored lines of the same claims for the same seed and thread
count; the lines of claims the lesson no longer states stay, as the record behind "dropped".
Expect about 15 runs x 1-2 minutes per lesson on a 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import nbformat
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from run_notebook import execute  # noqa: E402  (the one way the course runs a notebook)
RESULTS = ROOT / "benchmarks" / "results" / "claims.jsonl"
SEED_LINE = re.compile(r"^SEED = 0\b", re.MULTILINE)


def lessons() -> list[Path]:
    return sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


def prepared(path: Path, seed: int, threads: int) -> nbformat.NotebookNode:
    """The lesson with ``SEED = <seed>`` and the thread count set before anything runs."""
    nb = nbformat.read(path, as_version=4)
    hits = [c for c in nb.cells if c.cell_type == "code" and SEED_LINE.search(c.source)]
    if len(hits) != 1:
        raise SystemExit(f"{path.name}: expected exactly one code cell with the line 'SEED = 0', found "
                         f"{len(hits)}; a lesson's random choices must all follow that one seed.")
    hits[0].source = SEED_LINE.sub(f"SEED = {seed}", hits[0].source)
    last_claim = max((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "tl.claim(" in c.source),
                     default=len(nb.cells) - 1)
    del nb.cells[last_claim + 1:]  # what comes after the last check (explorers, the quiz) claims nothing
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import torch\ntorch.set_num_threads({threads})"))
    return nb


def run_once(path: Path, seed: int, threads: int, timeout: int) -> tuple[list[dict], float]:
    nb = prepared(path, seed, threads)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "claims.jsonl"
        env = {**os.environ, "TLKIT_CLAIMS_LOG": str(log), "OMP_NUM_THREADS": str(threads),
               "MKL_NUM_THREADS": str(threads)}
        seconds = execute(nb, path.parent, timeout, env=env)
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return rows, seconds


def stored() -> list[dict]:
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


CLAIM_TEXT = re.compile(r"""tl\.claim\(\s*(f?)("(?:[^"\\]|\\.)*")""")


def current_claims(notebook: str) -> list[re.Pattern]:
    """The claims a lesson states now, as patterns (an f-string's {...} parts match anything)."""
    path = ROOT / "lessons" / notebook
    if not path.exists():
        return []
    nb = nbformat.read(path, as_version=4)
    patterns = []
    for cell in nb.cells:
        for is_f, literal in CLAIM_TEXT.findall(cell.source if cell.cell_type == "code" else ""):
            text = literal[1:-1]
            parts = re.split(r"\{[^}]*\}", text) if is_f else [text]
            patterns.append(re.compile("^" + ".*".join(re.escape(p) for p in parts) + "$"))
    return patterns


def already_measured(notebook: str, seed: int, threads: int) -> bool:
    """True when every claim the lesson states now has a stored line for this seed and thread count."""
    texts = {r["text"] for r in stored() if (r["notebook"], r["seed"], r["threads"]) == (notebook, seed, threads)}
    claims = current_claims(notebook)
    return bool(texts) and all(any(p.match(t) for t in texts) for p in claims)


def store(new_rows: list[dict]) -> None:
    """Add one run's lines; they replace the stored lines of the same claims for that seed and thread count."""
    replaced = {(r["notebook"], r["seed"], r["threads"], r["text"]) for r in new_rows}
    kept = [r for r in stored() if (r["notebook"], r["seed"], r["threads"], r["text"]) not in replaced]
    RESULTS.write_text("".join(json.dumps(r) + "\n" for r in kept + new_rows))


def table(rows: list[dict]) -> str:
    """One line per claim: runs, how many held, worst / median value, the threshold, the worst margin,
    and whether the lesson still states it ("dropped": it did not survive and the lesson no longer says it)."""
    by_claim: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by_claim[(r["notebook"], r["text"])].append(r)
    lines = ["| lesson | claim | runs | held | worst value | median | needs | worst margin | in the lesson |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    stated = {nb: current_claims(nb) for nb, _ in by_claim}
    for (notebook, text), runs in sorted(by_claim.items()):
        held = sum(r["holds"] for r in runs)
        if runs[0]["comparison"] is None:
            worst = median = need = margin = "—"
        else:
            values = [r["value"] for r in runs]
            worst_run = min(runs, key=lambda r: r["margin"])
            worst, median = f"{worst_run['value']:.3f}", f"{statistics.median(values):.3f}"
            need = f"{runs[0]['comparison']} {runs[0]['threshold']:g}"
            margin = f"{worst_run['margin']:+.3f}"
        now = "yes" if any(p.match(text) for p in stated[notebook]) else "dropped"
        lines.append(f"| {notebook[:2]} | {text} | {len(runs)} | {held} | {worst} | {median} | {need} | {margin} | {now} |")
    return "\n".join(lines)


def restate(old_text: str, new_text: str, comparison: str, threshold: float) -> int:
    """Re-score the stored runs of one claim under its restated text and threshold; returns how many."""
    from tlkit.course.claims import COMPARISONS

    test, measure = COMPARISONS[comparison]
    rows, changed = stored(), 0
    for r in rows:
        if r["text"] == old_text and r["value"] is not None:
            r.update(text=new_text, comparison=comparison, threshold=threshold,
                     holds=bool(test(r["value"], threshold)), margin=float(measure(r["value"], threshold)))
            changed += 1
    if not changed:
        raise SystemExit(f"no stored run of a numeric claim {old_text!r}")
    RESULTS.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="lessons (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--table", action="store_true", help="print the stored results and stop")
    parser.add_argument("--restate", nargs=4, metavar=("OLD", "NEW", "COMPARISON", "THRESHOLD"),
                        help="re-score a claim's stored runs under its restated text and threshold")
    args = parser.parse_args(argv)
    if args.restate:
        old, new, comparison, threshold = args.restate
        print(f"{restate(old, new, comparison, float(threshold))} stored runs re-scored")
        return 0
    if args.table:
        print(table(stored()))
        return 0
    paths = [p.resolve() for p in args.notebooks] or lessons()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        for threads in args.threads:
            for seed in args.seeds:
                if already_measured(path.name, seed, threads):
                    continue
                try:
                    rows, seconds = run_once(path, seed, threads, args.timeout)
                except CellExecutionError as err:  # one broken run must not end a sweep of hours
                    print(f"{path.name} seed {seed} threads {threads}: ERROR {str(err).splitlines()[-1][:300]}",
                          file=sys.stderr, flush=True)
                    continue
                if not rows:
                    print(f"{path.name}: no claims recorded (is the lesson using tl.claim?)", file=sys.stderr)
                store([{"notebook": path.name, "seed": seed, "threads": threads, "seconds": round(seconds, 1), **r}
                       for r in rows])
                failed = [r["text"] for r in rows if not r["holds"]]
                print(f"{path.name} seed {seed} threads {threads}: {len(rows)} claims, {len(failed)} failed, "
                      f"{seconds:.0f} s" + "".join(f"\n    FAILED: {t}" for t in failed), flush=True)
    print(table(stored()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
