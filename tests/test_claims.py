"""tl.claim (a lesson's check) and benchmarks/claims.py (every check over seeds and thread counts)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

import tlkit as tl
from tlkit.course.claims import LOG_VARIABLE

ROOT = Path(__file__).resolve().parents[1]


def test_claim_prints_the_line_nbval_compares_and_returns_whether_it_holds(capsys):
    assert tl.claim("Fine-tuning beats the frozen body by more than 8 points", 0.12, ">", 0.08) is True
    assert tl.claim("It gains less than 5 points", 0.07, "<", 0.05) is False
    assert tl.claim("chelsea is a cat", True) is True
    assert capsys.readouterr().out.splitlines() == [
        "Fine-tuning beats the frozen body by more than 8 points: True",
        "It gains less than 5 points: False",
        "chelsea is a cat: True"]


@pytest.mark.parametrize("comparison, value, holds", [(">", 0.5, False), (">=", 0.5, True), ("<", 0.5, False),
                                                      ("<=", 0.5, True), (">", 0.6, True), ("<", 0.4, True)])
def test_claim_comparisons_at_and_around_the_threshold(comparison, value, holds):
    assert tl.claim("x", value, comparison, 0.5) is holds


def test_claim_records_value_threshold_and_margin_when_asked(tmp_path, monkeypatch, capsys):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv(LOG_VARIABLE, str(log))
    tl.claim("gain over 8 points", 0.11, ">", 0.08)
    tl.claim("loss under 5 points", 0.07, "<", 0.05)
    tl.claim("a cat", False)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["holds"] for r in rows] == [True, False, False]
    assert rows[0]["margin"] == pytest.approx(0.03) and rows[1]["margin"] == pytest.approx(-0.02)
    assert rows[2]["margin"] is None and rows[2]["value"] is None
    assert rows[0]["comparison"] == ">" and rows[0]["threshold"] == 0.08


def test_claim_without_the_variable_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(LOG_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    tl.claim("x", 1.0, ">", 0.0)
    assert list(tmp_path.iterdir()) == []


def test_claim_accepts_tensor_and_numpy_numbers(capsys):
    import numpy as np
    import torch
    assert tl.claim("t", torch.tensor(0.9), ">", 0.5) and tl.claim("n", np.float32(0.1), "<", 0.5)


@pytest.mark.parametrize("args, error, words", [
    (("", 0.1, ">", 0.0), ValueError, "sentence"),
    (("x", 0.1, "=>", 0.0), ValueError, "one of"),
    (("x", "0.1", ">", 0.0), TypeError, "number"),
    (("x", float("nan"), ">", 0.0), TypeError, "number"),
    (("x", 0.1, ">", None), TypeError, "threshold"),
    (("x", 0.1), TypeError, "True or False"),
    (("x", True, None, 0.5), ValueError, "comparison"),
])
def test_claim_misuse_is_a_clear_error(args, error, words):
    with pytest.raises(error, match=words):
        tl.claim(*args)


def _benchmark():
    spec = importlib.util.spec_from_file_location("claims_benchmark", ROOT / "benchmarks" / "claims.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("lesson", sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name[:2])
def test_benchmark_prepares_each_lesson_with_the_seed_and_threads_it_is_given(lesson):
    bench = _benchmark()
    nb = bench.prepared(lesson, seed=3, threads=4)
    assert nb.cells[0].source == "import torch\ntorch.set_num_threads(4)"
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert sum("SEED = 3" in s for s in sources) == 1 and not any("SEED = 0" in s for s in sources)
    assert "tl.claim(" in sources[-1], "the run should end with the last check cell"


def test_benchmark_table_reports_the_worst_run_per_claim():
    bench = _benchmark()
    rows = [{"notebook": "02_x.ipynb", "text": "gap over 20 points", "comparison": ">", "threshold": 0.2,
             "value": v, "margin": v - 0.2, "holds": v > 0.2} for v in (0.35, 0.18, 0.41)]
    table = bench.table(rows)
    line = [ln for ln in table.splitlines() if "gap over 20 points" in ln][0]
    assert "| 3 | 2 | 0.180 | 0.350 | > 0.2 | -0.020 | dropped |" in line  # no lesson 02_x states it


def test_benchmark_table_knows_which_claims_the_lessons_state_now():
    bench = _benchmark()
    patterns = bench.current_claims("02_feature_extraction.ipynb")
    assert any(p.match("With 5 images per class the pretrained body wins by more than 20 points") for p in patterns)
    assert not any(p.match("The gap at 50 per class is at least 5 points smaller than at 5") for p in patterns)


def test_benchmark_restate_rescores_stored_runs_keeping_their_values(tmp_path, monkeypatch):
    bench = _benchmark()
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "claims.jsonl")
    rows = [{"notebook": "06_x.ipynb", "seed": s, "threads": 2, "text": "over 10 points", "comparison": ">",
             "threshold": 0.1, "value": v, "margin": v - 0.1, "holds": v > 0.1} for s, v in ((0, 0.07), (1, 0.2))]
    bench.RESULTS.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert bench.restate("over 10 points", "over 5 points", ">", 0.05) == 2
    again = bench.stored()
    assert [r["value"] for r in again] == [0.07, 0.2] and all(r["holds"] for r in again)
    assert again[0]["margin"] == pytest.approx(0.02) and again[0]["text"] == "over 5 points"
    with pytest.raises(SystemExit, match="no stored run"):
        bench.restate("never said", "x", ">", 0.0)


def test_benchmark_reruns_a_changed_lesson_and_replaces_only_the_claims_it_measured(tmp_path, monkeypatch):
    bench = _benchmark()
    monkeypatch.setattr(bench, "RESULTS", tmp_path / "claims.jsonl")
    lesson = "06_data_augmentation.ipynb"
    stated = [p.pattern.strip("^$").replace("\\", "") for p in bench.current_claims(lesson)]
    assert len(stated) >= 2

    def row(text, value, seed=0):
        return {"notebook": lesson, "seed": seed, "threads": 2, "text": text, "comparison": ">", "threshold": 0.0,
                "value": value, "margin": value, "holds": value > 0}

    bench.store([row("An old claim the lesson dropped", -0.1), row(stated[0], 0.3)])
    assert not bench.already_measured(lesson, 0, 2)  # a claim the lesson states now has no line yet
    bench.store([row(text, 0.5) for text in stated])
    assert bench.already_measured(lesson, 0, 2) and not bench.already_measured(lesson, 1, 2)
    rows = bench.stored()
    assert len(rows) == len(stated) + 1  # the rerun replaced the claim it measured again ...
    assert {r["value"] for r in rows if r["text"] == stated[0]} == {0.5}
    assert [r["value"] for r in rows if r["text"] == "An old claim the lesson dropped"] == [-0.1]  # ... and kept this
