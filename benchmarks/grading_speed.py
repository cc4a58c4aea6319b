"""How long does ``tlkit grade`` take for a class? This tree's grader against a baseline revision — one JSON object.

Issue 18 moved grading into a sandbox and made every item draw fresh probes; its target is that a
class of 30 honest copies of an exercise, graded with ``--jobs 2``, takes no more than 1.5x what the
grader took before. Both graders run here, in the same run, on the same submissions:

- ``baseline``: the grader at ``--baseline-rev`` (default: the last commit before issue 18), checked
  out into a temporary git worktree and run with ``PYTHONPATH`` pointing at it, so that its kernels
  import that revision's tlkit too;
- ``current``: this tree's ``tlkit grade``.

    python benchmarks/grading_speed.py [--exercise 03] [--copies 30] [--jobs 2] [--repeats 1]

Prints one JSON object on stdout: seconds per grader (each repeat and the median), the ratio
current / baseline, whether every copy got full marks under each grader, and the sandbox mode the
current grader used. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = "09b3aa0"  # main just before issue 18's grader


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def class_of(exercise: str, copies: int, folder: Path) -> Path:
    """``copies`` honest submissions: the solution notebook, as a student would hand it in."""
    source = next((ROOT / "exercises" / "source").glob(f"{exercise}_*.ipynb"))
    folder.mkdir(parents=True)
    for k in range(copies):
        shutil.copy(source, folder / f"student{k:02d}.ipynb")
    return source


def run_grader(env: dict, assignment: Path, submissions: Path, out: Path, jobs: int) -> tuple[float, list[dict]]:
    command = [sys.executable, "-m", "tlkit", "grade", str(assignment), str(submissions), "--out", str(out),
               "--jobs", str(jobs)]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"grader failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds, list(csv.DictReader(out.open()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="03")
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    parser.add_argument("--only-current", action="store_true", help="skip the baseline grader")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tlkit-grading-bench-") as tmp:
        tmp = Path(tmp)
        source = class_of(args.exercise, args.copies, tmp / "submissions")
        assignment = ROOT / "exercises" / source.name  # the student copy, as an instructor would pass it
        graders = {"current": dict(os.environ)}
        if not args.only_current:
            worktree = tmp / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.baseline_rev],
                           check=True, capture_output=True)
            graders = {"baseline": {**os.environ, "PYTHONPATH": str(worktree)}, **graders}
        results = {}
        try:
            for repeat in range(args.repeats):
                for name, env in graders.items():
                    out = tmp / f"{name}-{repeat}.csv"
                    log(f"{name} grader, repeat {repeat + 1}: {args.copies} copies of exercise {args.exercise}, "
                        f"--jobs {args.jobs} ...")
                    seconds, rows = run_grader(env, assignment, tmp / "submissions", out, args.jobs)
                    full = all(row["total"] == row["max"] for row in rows) and len(rows) == args.copies
                    log(f"  {seconds:.1f} s, every copy full marks: {full}")
                    entry = results.setdefault(name, {"seconds": [], "full_marks": True})
                    entry["seconds"].append(round(seconds, 1))
                    entry["full_marks"] = entry["full_marks"] and full
        finally:
            if not args.only_current:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "baseline")],
                               capture_output=True)
    for entry in results.values():
        entry["median_seconds"] = statistics.median(entry["seconds"])
        entry["seconds_per_submission"] = round(entry["median_seconds"] / args.copies, 2)
    summary = {"exercise": args.exercise, "copies": args.copies, "jobs": args.jobs, "graders": results,
               "cpu_count": os.cpu_count()}
    try:
        from tlkit.course.sandbox import detect_mode
        summary["sandbox_mode"] = detect_mode()
    except ImportError:
        summary["sandbox_mode"] = None
    if "baseline" in results:
        ratio = results["current"]["median_seconds"] / results["baseline"]["median_seconds"]
        summary["ratio_current_to_baseline"] = round(ratio, 3)
        summary["target"] = "ratio <= 1.5"
        summary["meets_target"] = ratio <= 1.5
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
