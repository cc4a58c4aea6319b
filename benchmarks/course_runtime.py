"""How long the course takes: every lesson and every exercise solution, run as a learner would.

Each notebook runs top to bottom in a fresh kernel (``scripts/run_notebook.py``, outputs not
written back), one after another so they do not share the CPU. Prints one row per notebook and
the totals, against the course's targets: at most 3 minutes per lesson on a 2-core CPU, at most
25 minutes for the whole course (lessons and exercise solutions).

    python benchmarks/course_runtime.py            # a table
    python benchmarks/course_runtime.py --json     # one JSON object
    python benchmarks/course_runtime.py lessons/04_learning_rates.ipynb   # just some notebooks

Run it on an idle machine: anything else using the cores makes every number larger.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from run_notebook import run  # noqa: E402

LESSON_LIMIT = 180.0    # seconds per lesson
COURSE_LIMIT = 25 * 60  # seconds for all lessons and exercise solutions together


def course_notebooks() -> list[Path]:
    """The lessons in order, then the exercise sources (the notebooks with the solutions)."""
    return (sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
            + sorted((ROOT / "exercises" / "source").glob("[0-9][0-9]_*.ipynb")))


def time_notebooks(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        row = {"notebook": str(path.resolve().relative_to(ROOT)), "kind": path.parent.name}
        try:
            row["seconds"] = round(run(path, write=False), 1)
        except Exception as err:  # a failing notebook is a result too: report it, go on
            row["seconds"], row["error"] = None, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        rows.append(row)
        print(f"{row['seconds'] if row['seconds'] is not None else 'FAILED':>8}  {row['notebook']}",
              file=sys.stderr, flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    lessons = [r for r in rows if r["kind"] == "lessons" and r["seconds"] is not None]
    done = [r for r in rows if r["seconds"] is not None]
    total = round(sum(r["seconds"] for r in done), 1)
    slowest = max(lessons, key=lambda r: r["seconds"], default=None)
    return {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available(), "torch": torch.__version__},
        "notebooks": rows,
        "total_seconds": total,
        "slowest_lesson": slowest,
        "failed": [r["notebook"] for r in rows if r["seconds"] is None],
        "targets_met": {"every_lesson_under_3_min": all(r["seconds"] <= LESSON_LIMIT for r in lessons),
                        "course_under_25_min": total <= COURSE_LIMIT,
                        "no_failures": len(done) == len(rows)},
    }


def print_table(summary: dict) -> None:
    print(f"{'seconds':>8}  {'target':>6}  notebook")
    for r in summary["notebooks"]:
        limit = f"{LESSON_LIMIT:.0f}" if r["kind"] == "lessons" else "-"
        seconds = f"{r['seconds']:.1f}" if r["seconds"] is not None else "FAILED"
        flag = "  OVER" if r["kind"] == "lessons" and r["seconds"] and r["seconds"] > LESSON_LIMIT else ""
        print(f"{seconds:>8}  {limit:>6}  {r['notebook']}{flag}")
    total = summary["total_seconds"]
    print(f"{total:8.1f}  {COURSE_LIMIT:>6}  total ({total / 60:.1f} min for {len(summary['notebooks'])} notebooks)")
    print("targets met:", ", ".join(f"{k}={v}" for k, v in summary["targets_met"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every lesson and exercise source")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    paths = args.notebooks or course_notebooks()
    start = time.perf_counter()
    summary = summarise(time_notebooks(paths))
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)
    if args.json:
        print(json.dumps(summary))
    else:
        print_table(summary)
    return 0 if not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
