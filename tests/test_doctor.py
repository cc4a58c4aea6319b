"""tlkit.doctor(): the machine check behind `tlkit doctor` and lesson 00."""
from __future__ import annotations

from pathlib import Path

import tlkit as tl
from tlkit.course import doctor


def test_doctor_finds_a_working_course_machine():
    report = tl.doctor(network=False)
    assert report.ok is True and report.problems == []
    assert [c.name for c in report.checks] == list(doctor.CHECKS)
    text = str(report)
    assert text.splitlines()[-1] == "The course can run."
    assert "network" in text and "not checked" in text
    html = report._repr_html_()
    assert "<table>" in html and "The course can run." in html


def test_doctor_shows_the_home_folder_as_a_tilde(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TLKIT_HOME", str(tmp_path / "cache" / "tlkit"))
    report = tl.doctor(network=False)
    detail = next(c.detail for c in report.checks if c.name == "cache folders")
    assert "tlkit ~/cache/tlkit;" in detail and str(tmp_path) not in str(report)


def test_short_path():
    home = Path.home()
    assert doctor.short_path(home / ".cache" / "tlkit") == "~/.cache/tlkit"
    assert doctor.short_path(home) == "~"
    assert doctor.short_path("/opt/data") == "/opt/data"


def test_a_broken_check_is_reported_and_the_others_still_run(monkeypatch):
    def broken():
        raise ImportError("No module named 'torchvision'")

    monkeypatch.setitem(doctor.CHECKS, "torch stack", broken)
    report = tl.doctor(network=False)
    assert report.ok is False and [c.name for c in report.problems] == ["torch stack"]
    assert "[FAIL] torch stack      ImportError: No module named 'torchvision'" in str(report)
    assert str(report).endswith("1 problem(s) found: apply the fix on each FAIL line, then run `tlkit doctor` again.")
    assert report.to_dict()["checks"]["torch stack"]["ok"] is False
    assert len(report.checks) == len(doctor.CHECKS)
