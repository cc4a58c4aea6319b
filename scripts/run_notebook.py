"""Run notebooks top to bottom in a fresh kernel and store their outputs (a developer tool).

Usage:  .venv/bin/python scripts/run_notebook.py lessons/01_*.ipynb [--check]

Why a script instead of "Restart kernel and run all" in JupyterLab: it gives every notebook
the same clean start (fresh kernel, working directory = the notebook's folder, this Python
environment), stores execution counts (nbval needs them), strips widget state (it bloats
the file and only renders with a live kernel), and prints how long each notebook took, so the
"under 3 minutes on 2 cores" budget is measured the same way every time.

--check runs the notebooks without writing them back (outputs discarded).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_widget_state(nb: nbformat.NotebookNode) -> None:
    """Drop saved widget state and widget views: they only render with a live kernel.

    A stored notebook is read without one (GitHub, nbconvert, a fresh JupyterLab tab), where a
    widget view shows as "Loading widget..." or "Error displaying widget". We keep whatever
    fallback the widget offered (an image or HTML) and drop outputs whose only fallback is plain
    text: a repr like ``IntSlider(value=0)`` or a stale tqdm bar frozen at "0%".
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("widgets", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if set(data) <= {"text/plain"}:
                    continue
            kept.append(out)
        cell.outputs = kept


def execute(nb: nbformat.NotebookNode, folder: Path, timeout: int = 600, env: dict | None = None) -> float:
    """Run ``nb`` top to bottom in a fresh kernel started in ``folder`` (with ``env``, if given, as
    the kernel's environment); its outputs are written into ``nb``. Returns the seconds it took."""
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    start = time.perf_counter()
    client.execute(**({"env": env} if env is not None else {}))
    return time.perf_counter() - start


def run(path: Path, write: bool = True, timeout: int = 600) -> float:
    nb = nbformat.read(path, as_version=4)
    seconds = execute(nb, path.parent, timeout)
    strip_widget_state(nb)
    if write:
        nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="run without writing outputs back")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    total, failed = 0.0, []
    for path in args.notebooks:
        try:
            seconds = run(path, write=not args.check, timeout=args.timeout)
        except CellExecutionError as err:
            print(f"FAILED  {path}\n{err}", file=sys.stderr)
            failed.append(path)
            continue
        total += seconds
        print(f"{seconds:7.1f} s  {path}", flush=True)
    print(f"{total:7.1f} s  total ({len(args.notebooks) - len(failed)} ran, {len(failed)} failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
