"""benchmarks/gpu_check.py (issue 21) on a machine without a GPU: it says so and exits 0; its pure
helpers judge fake numbers right (a run that misses the 3x target fails it); and everything its CUDA
path calls in tlkit still exists, so that a rename breaks this test rather than the one GPU run."""
from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import tlkit

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # compiles the whole script, the CUDA path included
    sys.path[:] = saved
    yield module
    sys.modules.pop("gpu_check", None)


def test_without_cuda_it_says_so_writes_cuda_false_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"no CUDA device: nothing to measure \(torch \d+\.\d+, cuda available: False\)",
                        proc.stdout.strip()), proc.stdout
    assert json.loads(out.read_text())["cuda"] is False


def runs(ips: dict, acc: dict) -> list[dict]:
    """Fake runs: ips/acc map a setting to one value per seed."""
    return [{"setting": s, "seed": seed, "images_per_second": v, "accuracy": acc[s][seed], "wall_seconds": 1.0}
            for s, values in ips.items() for seed, v in enumerate(values)]


def test_summary_meets_the_target_when_amp_with_channels_last_is_3x_and_as_accurate(gpu_check):
    summary = gpu_check.summarize(runs({"fp32": [100, 110], "amp_bf16_channels_last": [330, 340]},
                                {"fp32": [0.90, 0.92], "amp_bf16_channels_last": [0.91, 0.90]}))
    verdict = summary["verdict"]
    assert verdict["throughput_ratio"] == pytest.approx(335 / 105, abs=0.01)
    assert verdict["throughput_met"] is True
    assert verdict["seed_spread"] == pytest.approx(0.02)
    assert verdict["accuracy_difference"] == pytest.approx(-0.005)
    assert verdict["accuracy_within_noise"] is True
    assert summary["settings"]["fp32"]["speedup_vs_fp32"] == 1.0


def test_summary_fails_a_run_below_3x_or_less_accurate_than_seed_noise(gpu_check):
    verdict = gpu_check.summarize(runs({"fp32": [100, 100], "amp_bf16_channels_last": [150, 160]},
                                {"fp32": [0.90, 0.91], "amp_bf16_channels_last": [0.80, 0.81]}))["verdict"]
    assert verdict["throughput_ratio"] == pytest.approx(1.55)
    assert verdict["throughput_met"] is False
    assert verdict["accuracy_within_noise"] is False


def test_summary_with_one_seed_or_a_missing_setting_does_not_pretend(gpu_check):
    one_seed = gpu_check.summarize(runs({"fp32": [100], "amp_bf16_channels_last": [400]},
                                 {"fp32": [0.9], "amp_bf16_channels_last": [0.7]}))["verdict"]
    assert one_seed["throughput_met"] is True
    assert one_seed["accuracy_within_noise"] is None and "one seed" in one_seed["note"]
    missing = gpu_check.summarize(runs({"fp32": [100]}, {"fp32": [0.9]}))["verdict"]
    assert missing["throughput_ratio"] is None and missing["throughput_met"] is None


def test_throughput_leaves_the_first_epoch_out_and_limits_leave_later_steps_their_minimum(gpu_check):
    assert gpu_check.images_per_second([10.0, 1.0, 1.0], 100) == pytest.approx(100.0)
    assert gpu_check.images_per_second([2.0], 100) == pytest.approx(50.0)
    assert gpu_check.step_limit(150, 400, [60, 90]) == 150
    assert gpu_check.step_limit(150, 200, [60, 90]) == 50
    assert gpu_check.step_limit(150, 100, [60, 90]) == 0


def test_junit_counts_and_the_summary_read_what_pytest_writes(gpu_check, tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text('<testsuites><testsuite><testcase classname="lessons/00" name="Cell 1"/>'
                   '<testcase classname="lessons/00" name="Cell 2"><failure message="42 != 41"/></testcase>'
                   '<testcase classname="t" name="s"><skipped/></testcase></testsuite></testsuites>')
    counts = gpu_check.junit_counts(xml)
    assert (counts["passed"], counts["failed"], counts["skipped"]) == (1, 1, 1)
    assert counts["failing"] == [{"id": "lessons/00::Cell 2", "message": "42 != 41"}]
    summary = gpu_check.collect_summary({"device": {"status": "ok", "result": {"gpu_name": "NVIDIA H200"}},
                                  "lessons": {"status": "failures", "result": counts},
                                  "finetune": {"status": "timeout", "result": None}})
    assert summary["gpu"] == "NVIDIA H200" and summary["lessons"] == "1 passed, 1 failed"
    assert summary["finetune"] is None and summary["step_status"]["finetune"] == "timeout"


def test_everything_the_cuda_path_calls_in_tlkit_still_exists(gpu_check):
    tree = ast.parse(SCRIPT.read_text())
    used = {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "tl"}
    assert {"fit", "save_model", "load_model", "predict", "course_data"} <= used
    assert not [name for name in used if not hasattr(tlkit, name)]
    from tlkit.recipes import Recipe

    recipe = Recipe.default()
    fields = {n.attr for n in ast.walk(tree)
              if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "recipe"}
    assert not [name for name in fields if not hasattr(recipe, name)]
    assert recipe.freeze_plan()[0] == "last"  # the plan finetune_run follows
    assert {"amp", "channels_last", "callbacks", "seed", "lr_mult"} <= set(inspect.signature(tlkit.fit).parameters)
    assert {"on_fit_start", "on_batch_end", "on_epoch_end"} <= set(dir(tlkit.Callback))
    assert list(inspect.signature(tlkit.load_model).parameters)[0] == "directory"
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_finetune import cache_speedup
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert list(inspect.signature(cache_speedup).parameters) == ["name", "per_class", "seed", "image_size", "epochs"]


def test_the_four_settings_ask_tlkit_for_what_their_names_say(gpu_check):
    from tlkit.device import Accelerator

    cuda = torch.device("cuda")  # choose() only reads the device type: no GPU needed
    chosen = {name: Accelerator.choose(cuda, amp, cl) for name, (amp, cl) in gpu_check.SETTINGS.items()}
    assert (chosen["fp32"].dtype, chosen["fp32"].channels_last) == (None, False)
    assert chosen["amp_bf16"].dtype == torch.bfloat16 and chosen["amp_fp16"].dtype == torch.float16
    assert (chosen[gpu_check.FASTEST].dtype, chosen[gpu_check.FASTEST].channels_last) == (torch.bfloat16, True)


def test_the_steps_tests_and_lessons_it_names_exist(gpu_check):
    assert [s.name for s in gpu_check.STEPS if s.name not in ("tests", "lessons")] == list(gpu_check.CHILD_STEPS)
    for path in gpu_check.DEVICE_TESTS + gpu_check.QUICK_TESTS + gpu_check.LESSONS:
        assert (ROOT / path).exists(), path
    assert all(re.fullmatch(r"[a-z0-9-]+==[\w.]+", w) for w in gpu_check.CARRY_WHEELS)


def test_the_text_and_multi_gpu_step_records_what_is_not_there_yet(gpu_check):
    result = gpu_check.step_text_multi_gpu(SimpleNamespace(device="cpu"))
    assert result["text_model"]["status"] in ("not available yet", "available")
    assert result["nproc"]["gpu_count"] == torch.cuda.device_count()
    assert result["nproc"]["finetune_has_nproc"] in (True, False)
