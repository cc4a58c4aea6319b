"""``tlkit grade`` against a class of determined cheats (issue 18): every attack we know, one submission each.

Each attacker is a *blank* student copy with one cell of attack code added: it must earn 0. Honest
control submissions, sorted first, in the middle and last, are graded in the same run and must keep
full marks, and the grades file must be complete and correct. The forged evidence is what an honest
run would send, recorded on another probe (a replay), so an attack that merely delivered it would win
under the old grader.

Every attack here assumes the grader's sandbox (Linux namespaces); the fallback mode (macOS, no user
namespaces) does not claim to stop them, and some (``kill(-1)``) would harm the test machine there.
"""
from __future__ import annotations

import base64
import copy
import csv
import hashlib
import json
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
import torch
from torch import nn

import tlkit as tl
from tlkit.course.exercises import EVIDENCE_MIME, exercise
from tlkit.course.grading import GradingError, grade
from tlkit.course.sandbox import PROCESSES, detect_mode, hidden_paths

ROOT = Path(__file__).resolve().parents[1]
MARKER = "tlkit-attack-daemon"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(detect_mode() == PROCESSES,
                                 reason="the fallback sandbox (no Linux namespaces here) does not claim to stop "
                                        "attacks, and kill(-1) from a submission would hit this machine")]


def _notebook(name: str, student: bool = True):
    folder = ROOT / "exercises" if student else ROOT / "exercises" / "source"
    return nbformat.read(next(folder.glob(f"{name}_*.ipynb")), as_version=4)


def _with_cell(nb, source: str, position: int = 1):
    nb = copy.deepcopy(nb)
    nb.cells.insert(position, nbformat.v4.new_code_cell(textwrap.dedent(source)))
    return nb


def _replay(ex, honest: dict, seed: int = 424242) -> dict:
    """What an honest run sends for each code item, on the probe of ``seed`` (not the grader's)."""
    return {item.id: ex.collect(item.id, honest, item.probe(seed)) for item in ex.items if not item.answer}


def _forge_prelude(replay: dict) -> str:
    return f"""
import json
from IPython.display import display as _show
MIME = {EVIDENCE_MIME!r}
REPLAY = json.loads({json.dumps(json.dumps(replay))})
def forged(exercise, item, seed=None):
    _show({{MIME: {{"item": item, "evidence": REPLAY.get(item, {{}})}}}}, raw=True)
"""


def forging_attacks(replay: dict, out: Path, extra_answers: str) -> dict[str, str]:
    """Attack cells that deliver replayed evidence through every route the old grader could not guard."""
    f = _forge_prelude(replay)
    by_pieces = f + 'import importlib\nm = importlib.import_module("tlkit.course." + "pro" + "bes")\nm.answer = forged\n'
    return {
        "replace_answer_by_pieces": by_pieces,
        "exec_base64": f"import base64\nexec(base64.b64decode({base64.b64encode(by_pieces.encode())!r}))",
        "swap_sys_modules": f + """
import sys, types, tlkit.course
fake = types.ModuleType("tlkit.course.probes")
fake.answer = forged
sys.modules["tlkit.course.probes"] = fake
tlkit.course.probes = fake
""",
        "fake_package_on_path": f"""
import os, sys
root = "/tmp/fakepkg/tlkit/course/probes"
os.makedirs(root, exist_ok=True)
for d in ("/tmp/fakepkg/tlkit", "/tmp/fakepkg/tlkit/course"):
    open(d + "/__init__.py", "w").close()
with open(root + "/__init__.py", "w") as fh:
    fh.write({(f + "answer = forged").__repr__()})
for name in [m for m in sys.modules if m == "tlkit" or m.startswith("tlkit.")]:
    del sys.modules[name]
sys.path.insert(0, "/tmp/fakepkg")
import tlkit
tlkit.__file__ = "/tmp/fakepkg/tlkit/__init__.py"
""",
        "wrap_display": f + """
import IPython.display, IPython.core.display_functions as df
real = df.display
def fake_display(*objs, **kw):
    for o in objs:
        if isinstance(o, dict) and MIME in o:
            item = o[MIME].get("item")
            o = {MIME: {"item": item, "evidence": REPLAY.get(item, {})}}
        real(o, **kw)
IPython.display.display = df.display = fake_display
""",
        "pre_run_cell_hook": f + """
import re
def hook(info):
    found = re.search(r"answer\\((.*?), (.*?), (\\d+)\\)", info.raw_cell or "")
    if found:
        forged(None, eval(found.group(2)))
get_ipython().events.register("pre_run_cell", hook)
""",
        "patch_json_dumps": f + """
import json as _json
real_dumps = _json.dumps
def dumps(obj, *a, **k):
    text = real_dumps(obj, *a, **k)
    if MIME in text and '"evidence"' in text:
        for item in REPLAY:
            if f'"item": "{item}"' in text or f'"item":"{item}"' in text:
                return real_dumps({"data": {MIME: {"item": item, "evidence": REPLAY[item]}}, "metadata": {},
                                   "transient": {}}, *a, **k)
    return text
_json.dumps = dumps
""",
        "write_into_pipes_and_files": f + f"""
import os, glob
text = open("submission.ipynb").read() if os.path.exists("submission.ipynb") else ""
lines = "".join(json.dumps({{"event": "evidence", "cell": c, "payload": {{"item": i, "evidence": e}}}}) + "\\n"
                for c in range(40) for i, e in REPLAY.items())
for fd_path in glob.glob("/proc/*/fd/*"):
    try:
        with open(fd_path, "w") as pipe:
            pipe.write(lines)
    except OSError:
        pass
for path in ({str(out)!r}, "/tmp/grades.csv"):
    try:
        open(path, "w").write("student,q1\\nattacker,1\\n")
    except OSError:
        pass
""",
        "exec_quiz_answers": extra_answers,
    }


SOLUTION_HUNT = """
import glob, json, os, sys
candidates = set()
for cmdline in glob.glob("/proc/*/cmdline"):
    try:
        for part in open(cmdline, "rb").read().split(b"\\0"):
            candidates.add(os.path.dirname(part.decode(errors="ignore")))
    except OSError:
        pass
import tlkit
here = os.path.dirname(tlkit.__file__)
candidates |= {here, os.path.dirname(here), os.getcwd(), "/work", "/home", "/root", "/tmp"}
found = []
for base in candidates:
    for depth in ("", "*/", "*/*/", "*/*/*/"):
        found += glob.glob(os.path.join(base, depth, "exercises", "source", "NAME_*.ipynb"))
for path in found[:1]:
    for cell in json.load(open(path))["cells"]:
        if cell["cell_type"] == "code" and "check(" not in "".join(cell["source"]):
            exec("".join(cell["source"]))
print("found solutions:", found[:1])
"""


def on_the_run_and_others(out: Path) -> dict[str, str]:
    """Attacks on the grading run itself, on the grades file, and on the classmates graded beside it."""
    return {
        "kill_everything": """
import os, signal
for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
""",
        "mkdir_at_out": f"import os\ntry:\n    os.makedirs({str(out)!r})\nexcept OSError as err:\n    print(err)",
        "setsid_daemon": f"""
import subprocess, sys
code = '''
import glob, os, time
for _ in range(600):
    for path in [{str(out)!r}] + glob.glob("/tmp/tlkit-*/**/*", recursive=True):
        try:
            with open(path, "a") as fh:
                fh.write("attacker,3,3,3,3,3,\\\\n")
        except OSError:
            pass
    time.sleep(0.2)
'''
for _ in range(20):
    subprocess.Popen([sys.executable, "-c", code, {MARKER!r}], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
""",
        "rewrite_checks_and_keys": f"""
import os, glob
for folder in {hidden_paths()!r}:
    for path in glob.glob(folder + "/**/*", recursive=True):
        try:
            with open(path, "w") as fh:
                fh.write("")
            os.rename(path, path + ".bak")
        except OSError:
            pass
""",
        "shared_memory_flood": """
import mmap
block = mmap.mmap(-1, 7 * 2**30, flags=mmap.MAP_SHARED)
for offset in range(0, len(block), 4096):
    block[offset] = 1
""",
        # a C call that holds the GIL (PyDLL does not release it) and that no interrupt ends
        "c_loop_holding_the_gil": "import ctypes, signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                  "ctypes.PyDLL(None).sleep(600)",
        "display_flood": "from IPython.display import display\ndisplay({'text/plain': 'x' * 300_000_000}, raw=True)",
        "huge_event_line": "print('x' * 50_000_000)",
        "malformed_evidence": f"""
from IPython.display import display
def hook(info):
    display({{{EVIDENCE_MIME!r}: {{"item": ["q1"], "evidence": [1, 2]}}}}, raw=True)
    display({{{EVIDENCE_MIME!r}: [1, 2, 3]}}, raw=True)
get_ipython().events.register("pre_run_cell", hook)
""",
        "patch_builtins_and_torch": """
import builtins, torch
builtins.isinstance = lambda *a: True
builtins.type = lambda *a: int
torch.equal = lambda *a, **k: True
torch.nn.Module.parameters = lambda self, recurse=True: iter([])
""",
    }


def _files_digest(number: str) -> str:
    """The files an attacker would rewrite to change the verdicts of exercise ``number``: its checks and quiz keys."""
    h = hashlib.sha256()
    for folder in hidden_paths():
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file() and (path.name.startswith((f"ex{number}_", f"{number}", "__init__"))):
                h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def _daemons_alive() -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and MARKER.encode() in (entry / "cmdline").read_bytes():
                alive.append(int(entry.name))
        except OSError:
            continue
    return alive


def _grade_class(tmp: Path, number: str, attackers: dict, memory_gb: float = 3, extra_files: dict | None = None,
                 **limits) -> dict:
    subs = tmp / "submissions"
    subs.mkdir()
    for name, raw in (extra_files or {}).items():
        (subs / name).write_bytes(raw)
    honest = _notebook(number, student=False)
    for name in ("a_control", "m_control", "z_control"):
        nbformat.write(honest, subs / f"{name}.ipynb")
    for name, nb in attackers.items():
        nbformat.write(nb, subs / f"{name}.ipynb")
    out = tmp / "grades.csv"
    before = _files_digest(number)
    started = time.perf_counter()
    results = grade(ROOT / "exercises" / next((ROOT / "exercises").glob(f"{number}_*.ipynb")).name, subs, out,
                    progress=lambda line: None, jobs=2, memory=int(memory_gb * 2**30), **limits)
    seconds = time.perf_counter() - started
    time.sleep(1.0)  # a daemon that outlived its run would write now
    return {"rows": {row["student"]: row for row in csv.DictReader(out.open())}, "out": out,
            "text": out.read_text(), "results": {r.student: r for r in results}, "seconds": seconds,
            "checks_unchanged": _files_digest(number) == before, "expected": set(attackers) | {
                "a_control", "m_control", "z_control"} | {Path(name).stem for name in extra_files or {}}}


# ---------------------------------------------------------------- exercise 00: every attack

def _ex00_honest():
    return {"class_count": lambda ds: len(ds.classes), "answer_q2": "b",
            "count_trainable": lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)}


@pytest.fixture(scope="module")
def class00(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks00")
    out = tmp / "grades.csv"
    blank = _notebook("00")
    ex = exercise("00")
    replay = _replay(ex, _ex00_honest())
    quiz = "exec(\"answer_q2 = 'b'\")\nglobals()['answer_q2'] = 'b'\nclass Liar(str):\n    __eq__ = lambda s, o: True\n"
    attacks = {**forging_attacks(replay, out, quiz), **on_the_run_and_others(out),
               "run_solution_cells": SOLUTION_HUNT.replace("NAME", "00")}
    attackers = {name: _with_cell(blank, code) for name, code in attacks.items()}
    # liars: answers whose __eq__ is always true, and an int that claims to equal everything
    liar_nb = copy.deepcopy(blank)
    for cell in liar_nb.cells:
        if "def class_count" in cell.source:
            cell.source = ("data = tl.course_data()\nclass Sneaky(int):\n    __eq__ = lambda s, o: True\n"
                           "    __hash__ = int.__hash__\ndef class_count(ds):\n    return Sneaky(1)")
        elif "def count_trainable" in cell.source:
            cell.source = ("class Liar:\n    __eq__ = lambda s, o: True\n    def item(self):\n        return self\n"
                           "def count_trainable(model):\n    return Liar()")
        elif "NotImplementedError" in cell.source and "def " not in cell.source:
            cell.source = "class LiarStr(str):\n    __eq__ = lambda s, o: True\nanswer_q2 = LiarStr('a')"
    attackers["liar_objects"] = liar_nb
    stored = copy.deepcopy(blank)  # a blank notebook whose stored outputs say "passed", with evidence
    for cell in stored.cells:
        if cell.cell_type == "code" and "check(" in cell.source:
            item = cell.metadata["tlkit"]["check"]
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{item}: passed\n"),
                            nbformat.v4.new_output("display_data", data={
                                EVIDENCE_MIME: {"item": item, "evidence": replay.get(item, {})}})]
    attackers["stored_outputs"] = stored
    edited = copy.deepcopy(blank)  # check cells replaced by prints of the passed lines
    for cell in edited.cells:
        if cell.cell_type == "code" and "check(" in cell.source:
            cell.source = f"print('{cell.metadata['tlkit']['check']}: passed')"
            cell.metadata = {}
    attackers["edited_check_cells"] = edited
    attackers["fork_and_setsid_many"] = _with_cell(blank, f"""
import subprocess, sys
for _ in range(200):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(900)", {MARKER!r}], start_new_session=True)
""")
    honest_odd = _odd_but_honest(tmp)
    huge = json.loads(nbformat.writes(blank))
    huge["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "x" * 25_000_000})
    result = _grade_class(tmp, "00", attackers, cell_timeout=20, notebook_timeout=60,
                          extra_files={"huge_notebook.ipynb": json.dumps(huge).encode(), **honest_odd})
    return result | {"attacks": set(attackers) | {"huge_notebook"}}


def _odd_but_honest(tmp: Path) -> dict[str, bytes]:
    """Honest work in notebooks that are odd, not wrong: every cell with the same id, metadata nested
    300 levels deep (both broke the old grader's notebook validation)."""
    honest = json.loads(nbformat.writes(_notebook("00", student=False)))
    same_ids = copy.deepcopy(honest)
    for cell in same_ids["cells"]:
        cell["id"] = "same"
    deep = copy.deepcopy(honest)
    nested: dict = {}
    for _ in range(300):
        nested = {"k": nested}
    deep["cells"][1]["metadata"]["deep"] = nested
    return {"honest_duplicate_ids.ipynb": json.dumps(same_ids).encode(),
            "honest_deep_metadata.ipynb": json.dumps(deep).encode()}


def test_every_submission_has_its_row_and_the_file_is_well_formed(class00):
    assert set(class00["rows"]) == class00["expected"]
    assert class00["out"].is_file() and not class00["out"].is_symlink()
    assert "attacker" not in class00["text"]  # nothing a daemon or a pipe writer appended
    assert all(row["max"] == "3" for row in class00["rows"].values())


def test_honest_controls_keep_full_marks_beside_every_attack(class00):
    for name in ("a_control", "m_control", "z_control", "honest_duplicate_ids", "honest_deep_metadata"):
        row = class00["rows"][name]
        assert (row["q1"], row["q2"], row["q3"], row["total"]) == ("1", "1", "1", "3"), row
        assert row["problems"] == "", row


def test_every_attack_on_a_blank_notebook_earns_nothing(class00):
    won = {name: class00["rows"][name]["total"] for name in class00["attacks"] if class00["rows"][name]["total"] != "0"}
    assert won == {}, won


def test_no_process_of_any_submission_survives_grading(class00):
    assert _daemons_alive() == []


def test_the_installed_checks_and_quiz_keys_are_untouched(class00):
    assert class00["checks_unchanged"]


def test_the_run_itself_reports_what_the_attacks_did(class00):
    problems = {name: class00["rows"][name]["problems"] for name in class00["attacks"]}
    assert "memory limit" in problems["shared_memory_flood"] or "kernel died" in problems["shared_memory_flood"]
    assert "time limit" in problems["c_loop_holding_the_gil"]
    assert "printed too much" in problems["display_flood"]
    assert "printed too much" in problems["huge_event_line"]
    assert "not yet" in class00["results"]["exec_quiz_answers"].verdicts["q2"][1]
    assert "must be under 20 MB" in class00["rows"]["huge_notebook"]["problems"]


# ---------------------------------------------------------------- exercise 03: the forging routes again

def _ex03_honest():
    def lr_groups(model, lr, body_factor=0.1):
        head = [p for p in tl.get_head(model).parameters() if p.requires_grad]
        ids = {id(p) for p in head}
        body = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": head, "lr": lr}, {"params": body, "lr": lr * body_factor}]
    return {"unfreeze_last_n": tl.unfreeze_last, "frozen_bn_eval": tl.set_frozen_bn_eval, "lr_groups": lr_groups,
            "answer_q4": "b", "answer_q5": 1_027_848 / 3_381_256}


@pytest.fixture(scope="module")
def class03(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks03")
    blank = _notebook("03")
    ex = exercise("03")
    replay = _replay(ex, _ex03_honest())
    quiz = "exec(\"answer_q4 = 'b'\")\nglobals()['answer_q5'] = 1027848 / 3381256\n"
    attacks = forging_attacks(replay, tmp / "grades.csv", quiz)
    attacks["run_solution_cells"] = SOLUTION_HUNT.replace("NAME", "03")
    attacks["patch_builtins_and_torch"] = on_the_run_and_others(tmp / "grades.csv")["patch_builtins_and_torch"]
    attackers = {name: _with_cell(blank, code) for name, code in attacks.items()}
    return _grade_class(tmp, "03", attackers, cell_timeout=60, notebook_timeout=180) | {"attacks": set(attackers)}


def test_ex03_controls_keep_full_marks_and_attackers_get_nothing(class03):
    assert set(class03["rows"]) == class03["expected"]
    for name in ("a_control", "m_control", "z_control"):
        assert class03["rows"][name]["total"] == "5" and class03["rows"][name]["problems"] == "", class03["rows"][name]
    won = {name: class03["rows"][name]["total"] for name in class03["attacks"] if class03["rows"][name]["total"] != "0"}
    assert won == {}, won


def test_ex03_replayed_evidence_would_have_passed_on_its_own_probe():
    """The attacks above fail because the probe is fresh, not because the replayed evidence was bad."""
    ex = exercise("03")
    for item_id, evidence in _replay(ex, _ex03_honest(), seed=7).items():
        assert ex.judge(item_id, evidence, ex.item(item_id).probe(7)).passed
        assert not ex.judge(item_id, evidence, ex.item(item_id).probe(8)).passed


# ---------------------------------------------------------------- the grades file, before anything runs

def test_a_link_at_the_out_path_is_refused_and_last_weeks_grades_stay(tmp_path):
    last_week = tmp_path / "grades_week1.csv"
    last_week.write_text("student,total\nann,3\n")
    link = tmp_path / "grades.csv"
    link.symlink_to(last_week)
    (tmp_path / "subs").mkdir()
    nbformat.write(_notebook("00"), tmp_path / "subs" / "x.ipynb")
    for force in (False, True):
        with pytest.raises(GradingError, match="symbolic link"):
            grade(ROOT / "exercises" / "00_warmup.ipynb", tmp_path / "subs", link, force=force)
    assert last_week.read_text() == "student,total\nann,3\n"


# ---------------------------------------------------------------- every other exercise: the main forging routes

REPLAY_SCRIPT = """
import json, sys
import nbformat
from tlkit.course.exercises import exercise
from tlkit.course.release import check_item
nb = nbformat.read(sys.argv[1], as_version=4)
namespace = {"__name__": "__main__"}
for cell in nb.cells:
    if cell.cell_type == "code" and check_item(cell) is None:
        exec(cell.source, namespace)
ex = exercise(nb.metadata["tlkit"]["exercise"])
seed = int(sys.argv[2])
print(json.dumps({it.id: ex.collect(it.id, namespace, it.probe(seed)) for it in ex.items if not it.answer}))
"""


def _honest_replay(number: str, seed: int = 515151) -> dict:
    """Run the solution notebook's code (in a subprocess) and record what its code items send on ``seed``'s probes."""
    import subprocess
    import sys

    source = next((ROOT / "exercises" / "source").glob(f"{number}_*.ipynb"))
    proc = subprocess.run([sys.executable, "-c", REPLAY_SCRIPT, str(source), str(seed)], cwd=source.parent,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("number", ["01", "02", "04", "05", "06", "07", "08"])
def test_the_forging_routes_fail_on_every_exercise(tmp_path, number):
    """Replayed honest evidence, delivered by replacing the grader cells' function or by a pre-run hook,
    earns a blank notebook nothing; an honest control graded beside it keeps full marks."""
    replay = _honest_replay(number)
    assert replay and all("problem" not in evidence for evidence in replay.values()), replay
    routes = forging_attacks(replay, tmp_path / "grades.csv", "")
    blank = _notebook(number)
    subs = tmp_path / "submissions"
    subs.mkdir()
    nbformat.write(_notebook(number, student=False), subs / "control.ipynb")
    for name in ("replace_answer_by_pieces", "pre_run_cell_hook"):
        nbformat.write(_with_cell(blank, routes[name]), subs / f"{name}.ipynb")
    out = tmp_path / "grades.csv"
    grade(next((ROOT / "exercises").glob(f"{number}_*.ipynb")), subs, out, progress=lambda line: None, jobs=2)
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert rows["control"]["total"] == rows["control"]["max"] and rows["control"]["problems"] == "", rows["control"]
    assert rows["replace_answer_by_pieces"]["total"] == "0" and rows["pre_run_cell_hook"]["total"] == "0", rows
