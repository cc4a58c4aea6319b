"""benchmarks/backbone_probe.py: the rank agreement its README table reports."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("backbone_probe", ROOT / "benchmarks" / "backbone_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("probe, tuned, tau", [([0.9, 0.8, 0.7], [0.95, 0.9, 0.85], 1.0),
                                               ([0.9, 0.8, 0.7], [0.85, 0.9, 0.95], -1.0),
                                               ([0.9, 0.8, 0.7], [0.9, 0.95, 0.85], 1 / 3),
                                               ([0.9, 0.9, 0.7], [0.9, 0.95, 0.85], 2 / 3)])
def test_kendall_tau_counts_concordant_minus_discordant_pairs(bench, probe, tuned, tau):
    # pairs (0,1) (0,2) (1,2); in the last case (0,1) is tied in the probe and counts as neither
    assert bench.kendall_tau(probe, tuned) == pytest.approx(tau)
