"""The sandbox ``tlkit grade`` runs submissions in, probed from inside by a program that tries what an
attacker would: look around, reach the network, find the grader, write where it should not, fork
daemons, take more memory than allowed. One sandboxed run per mode answers all of it in JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import tlkit
from tlkit.course.sandbox import (NAMESPACES_ROOT, NAMESPACES_USER, PROCESSES, Limits, Sandbox, detect_mode,
                                  hidden_paths, protections)

ROOT = Path(__file__).resolve().parents[1]
MARKER = "tlkit-sandbox-test-daemon"

PROBE = textwrap.dedent(f"""
    import json, os, socket, subprocess, sys, time
    report = {{"pid": os.getpid(), "uid": os.getuid(), "cwd": os.getcwd(), "files": sorted(os.listdir("."))}}
    report["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    report["visible"] = {{p: os.path.exists(p) for p in sys.argv[1:]}}
    report["hidden_listing"] = {{p: (os.listdir(p) if os.path.isdir(p) else None) for p in {hidden_paths()!r}}}
    def writes(path):
        try:
            with open(path, "w") as f:
                f.write("x")
            return True
        except OSError:
            return False
    report["writes_tlkit"] = writes({str(Path(tlkit.__file__).parent / "sandbox_write_probe.txt")!r})
    report["writes_home"] = writes("mine.txt")
    try:
        socket.create_connection(("1.1.1.1", 80), timeout=3)
        report["network"] = "open"
    except OSError as err:
        report["network"] = type(err).__name__
    try:
        os.kill({os.getpid()}, 0)  # the test process, by its pid outside
        report["signals_outside"] = "reached"
    except OSError as err:
        report["signals_outside"] = type(err).__name__
    # a daemon in its own session that would outlive the run
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", {MARKER!r}], start_new_session=True)
    report["capabilities"] = open("/proc/self/status").read().split("CapEff:")[1].split()[0]
    print(json.dumps(report), flush=True)
""")


def _run(mode: str, code: str, limits: Limits | None = None, args: tuple = ()) -> tuple[int, str, Sandbox]:
    box = Sandbox(limits or Limits(memory=2 * 2**30), files={"notebook.ipynb": b"{}"}, mode=mode)
    proc = box.start([sys.executable, "-I", "-c", code, *args], stdout=subprocess.PIPE)
    try:
        proc.wait(timeout=120)  # as the grader does: the program's end, not the pipe's (a daemon may hold it)
        box.kill()
        out = proc.stdout.read()
    finally:
        box.close()
    return proc.returncode, out.decode(), box


def _daemons() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and MARKER.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _modes() -> list[str]:
    """The mode this machine gets, the fallback, and (run as root) the normal user's mode too: it works as
    root as well, and so its dropping of every capability is tested here."""
    mode = detect_mode()
    if mode == PROCESSES:
        return [mode]
    return [mode, NAMESPACES_USER, PROCESSES] if mode == NAMESPACES_ROOT else [mode, PROCESSES]


def test_this_machine_gets_namespaces_on_linux_ci():
    """CI is Linux: the strong sandbox must be available there, not silently replaced by the fallback."""
    if not sys.platform.startswith("linux"):
        pytest.skip("namespaces exist on Linux only; elsewhere the grader falls back to processes, saying so")
    assert detect_mode() in (NAMESPACES_ROOT, NAMESPACES_USER)
    assert "no network" in protections(detect_mode()) and "NOT protected" in " ".join(protections(PROCESSES))


@pytest.mark.parametrize("mode", _modes())
def test_a_sandboxed_program_sees_and_reaches_only_what_it_should(mode):
    secret_places = [str(ROOT / "exercises" / "source"), str(ROOT / "tests"), str(Path.home() / ".ssh")]
    rc, out, _ = _run(mode, PROBE, args=tuple(secret_places))
    (Path(tlkit.__file__).parent / "sandbox_write_probe.txt").unlink(missing_ok=True)  # the fallback could write it
    assert rc == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["files"] == ["notebook.ipynb"] and report["writes_home"]
    time.sleep(0.5)
    if mode == PROCESSES:  # the fallback only promises that nothing it started survives
        assert _daemons() == []
        return
    assert report["pid"] == 1 and report["processes"][0] == 1
    assert set(report["processes"]) <= set(range(1, 50))  # only its own processes
    assert not any(report["visible"].values()), report["visible"]
    assert all(listing == [] for listing in report["hidden_listing"].values()), report["hidden_listing"]
    assert not report["writes_tlkit"]
    assert report["network"] != "open"
    assert report["signals_outside"] == "ProcessLookupError"
    if mode == NAMESPACES_ROOT:
        assert report["uid"] != 0
    else:
        assert report["capabilities"] == "0000000000000000"  # "root" of its namespace, able to do nothing
    assert _daemons() == [], "a setsid daemon outlived its sandbox"


@pytest.mark.skipif(detect_mode() != NAMESPACES_ROOT, reason="the memory cgroup needs root; user mode uses RLIMIT_AS")
def test_memory_counts_shared_mappings_too():
    """7 GiB of MAP_SHARED memory, touched page by page, in a sandbox allowed 1 GiB: stopped, and said so."""
    code = textwrap.dedent("""
        import mmap
        block = mmap.mmap(-1, 7 * 2**30, flags=mmap.MAP_SHARED)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        print("survived")
    """)
    box = Sandbox(Limits(memory=2**30), mode=NAMESPACES_ROOT)
    proc = box.start([sys.executable, "-I", "-c", code], stdout=subprocess.PIPE)
    try:
        out, _ = proc.communicate(timeout=300)
        assert b"survived" not in out and proc.returncode != 0
        assert box.out_of_memory()
    finally:
        box.close()


@pytest.mark.skipif(detect_mode() == PROCESSES, reason="needs namespaces")
def test_killing_the_sandbox_ends_a_process_that_ignores_signals():
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(600)"
    box = Sandbox(Limits(memory=2**30))
    proc = box.start([sys.executable, "-I", "-c", code, MARKER], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"up\n"
    started = time.monotonic()
    box.close()
    assert proc.poll() is not None and time.monotonic() - started < 20
    time.sleep(0.3)
    assert _daemons() == []


def test_the_sandbox_environment_carries_nothing_of_the_graders(monkeypatch):
    monkeypatch.setenv("INSTRUCTOR_SECRET", "s3cret")
    rc, out, _ = _run(detect_mode(), "import os, json; print(json.dumps(dict(os.environ)))")
    env = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and "INSTRUCTOR_SECRET" not in env and env["TLKIT_OFFLINE"] == "1"
    assert os.environ.get("INSTRUCTOR_SECRET") == "s3cret"
