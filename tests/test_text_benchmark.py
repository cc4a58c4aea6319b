"""benchmarks/text_benchmark.py: the summary and the verdict the README's table is built from."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("text_benchmark", ROOT / "benchmarks" / "text_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(method, k, seed, f1):
    return {"task": "reviews", "method": method, "k": k, "seed": seed, "macro_f1": f1, "accuracy": f1 + 0.1,
            "seconds": 1.0}


def test_verdict_compares_means_and_counts_the_draws_the_recipe_won(bench):
    runs = [run("tfidf", "8", 0, 0.30), run("recipe", "8", 0, 0.40),     # recipe above
            run("tfidf", "8", 1, 0.35), run("recipe", "8", 1, 0.33),     # recipe below
            run("tfidf", "8", 2, 0.30), run("recipe", "8", 2, 0.31),     # recipe above
            run("tfidf", "32", 0, 0.50), run("recipe", "32", 0, 0.40)]  # below, one seed
    table = bench.summarise(runs)
    assert table["reviews"]["recipe"]["8"]["macro_f1_mean"] == pytest.approx(round((0.40 + 0.33 + 0.31) / 3, 4))
    assert table["reviews"]["tfidf"]["8"]["seeds"] == 3
    verdict = bench.verdicts(table, runs)["reviews"]
    assert verdict["8"]["recipe_above_on_seeds"] == "2/3"
    assert verdict["8"]["recipe_beats_tfidf"] is True
    assert verdict["8"]["recipe_minus_tfidf"] == pytest.approx(round((1.04 - 0.95) / 3, 4), abs=1e-4)
    assert verdict["32"] == {"recipe_minus_tfidf": pytest.approx(-0.1), "recipe_beats_tfidf": False,
                             "recipe_above_on_seeds": "0/1"}


def test_verdict_needs_both_methods(bench):
    runs = [run("frozen", "8", 0, 0.3), run("recipe", "8", 0, 0.4)]
    assert bench.verdicts(bench.summarise(runs), runs) == {}
