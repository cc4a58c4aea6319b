"""`tlkit finetune`: a real (small) fine-tune on an ImageFolder the test writes, and its bad inputs."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import tlkit
from tlkit import recipes
from tlkit.course import cli

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def _write_folder(root, per_class=(8, 4, 4), size=72, seed=0):
    """train/val/test folders of noisy colour patches: easy, so a short run must learn it."""
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "val", "test"), per_class):
        for name, rgb in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(rgb, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    return _write_folder(tmp_path_factory.mktemp("colours"))


@pytest.fixture(scope="module")
def finetuned(colour_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "colours"
    proc = subprocess.run(
        [sys.executable, "-m", "tlkit", "finetune", str(colour_data), "--epochs", "3",
         "--image-size", "64", "--batch-size", "8", "--out", str(out), "--json", "--seed", "1"],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "TLKIT_OFFLINE": "1"})
    return proc, out


def test_json_output_is_one_object_with_the_promised_keys(finetuned):
    proc, _ = finetuned
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)  # raises if stdout holds anything but one JSON document
    assert {"accuracy", "per_class", "seconds", "device", "model"} <= set(result)
    assert result["model"] == "efficientnet_lite0" and result["eval_split"] == "test"
    assert [r["class"] for r in result["per_class"]] == sorted(COLOURS)
    assert result["accuracy"] >= 0.8, f"chance is 0.33; got {result['accuracy']}"


def test_output_folder_holds_a_loadable_model_and_metrics(finetuned, colour_data):
    _, out = finetuned
    assert {p.name for p in out.iterdir()} >= {"model.pt", "config.json", "metrics.json"}
    model = tlkit.load_model(out)
    assert model.tlkit_config.classes == sorted(COLOURS)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 24 and metrics["n_eval"] == 12


def test_existing_output_is_not_overwritten(finetuned, colour_data, capsys):
    _, out = finetuned
    before = (out / "model.pt").read_bytes()
    code = cli.main(["finetune", str(colour_data), "--epochs", "1", "--out", str(out)])
    assert code == 2 and "--force" in capsys.readouterr().err
    assert (out / "model.pt").read_bytes() == before


@pytest.mark.parametrize("setup, message", [
    ("missing", "does not exist"),
    ("empty", "no"),
    ("one_class", "at least 2 classes"),
])
def test_bad_data_directories_fail_clearly(tmp_path, capsys, setup, message):
    data = tmp_path / "data"
    if setup == "empty":
        data.mkdir()
    elif setup == "one_class":
        (data / "train" / "only").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 40), (i * 50, 0, 0)).save(data / "train" / "only" / f"{i}.png")
    code = cli.main(["finetune", str(data), "--epochs", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert message in err.lower() or message in err
    assert not (tmp_path / "out" / "model.pt").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--freeze", "sometimes", "Unknown freeze plan"),
    ("--model", "resnet81", "Did you mean"),
    ("--epochs", "0", "epochs must be >= 1"),
    ("--augment", "crop,flop", "Unknown augmentation(s) ['flop']"),
])
def test_bad_options_fail_before_any_training(colour_data, tmp_path, capsys, option, value, message):
    code = cli.main(["finetune", str(colour_data), option, value, "--out", str(tmp_path / "o")])
    assert code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("augment, expected", [
    ("crop", ["crop"]), ("crop, flip", ["crop", "flip"]), ("none", []), ("default", ["crop"]),
])
def test_recipe_augment_names(augment, expected):
    assert recipes.Recipe(augment=augment).augmentations() == expected


@pytest.mark.parametrize("augment", ["", " , ", "crop;flip"])
def test_recipe_rejects_unusable_augment(augment):
    with pytest.raises(ValueError, match="names joined by commas"):
        recipes.Recipe.default().updated(augment=augment)


def test_augment_option_reaches_the_training_transforms(colour_data, tmp_path, monkeypatch, capsys):
    """Without --augment the recipe's crops alone (no flips); --augment crop,flip adds the flips."""
    import tlkit.data

    seen = []
    real = tlkit.data.train_transforms

    def recording(config, image_size=None, augment="default", strength=1.0):
        seen.append(augment)
        return real(config, image_size, augment, strength)

    monkeypatch.setattr(tlkit.data, "train_transforms", recording)
    common = ["--epochs", "1", "--image-size", "64", "--batch-size", "8", "--quiet", "--json"]
    assert cli.main(["finetune", str(colour_data), *common, "--out", str(tmp_path / "a")]) == 0
    assert cli.main(["finetune", str(colour_data), *common, "--augment", "crop,flip",
                     "--out", str(tmp_path / "b")]) == 0
    assert seen == [["crop"], ["crop", "flip"]]
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["recipe"]["augment"] == "crop,flip"


@pytest.mark.parametrize("error", ["cuda", "mps"])
def test_out_of_memory_retries_with_half_the_batch(colour_data, monkeypatch, error):
    """No GPU here: the first training attempt raises an OOM error; finetune must retry smaller."""
    import torch

    real = recipes.train_with_recipe
    batch_sizes = []

    def oom_once(model, train, val, recipe, **kwargs):
        batch_sizes.append(recipe.batch_size)
        if len(batch_sizes) == 1:
            if error == "cuda":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            raise RuntimeError("MPS backend out of memory (MPS allocated: 3 GB)")
        return real(model, train, val, recipe, **kwargs)

    monkeypatch.setattr(recipes, "train_with_recipe", oom_once)
    recipe = recipes.Recipe.default().updated(epochs=1, image_size=64, batch_size=8)
    with pytest.warns(UserWarning, match="retrying with --batch-size 4"):
        result = recipes.finetune(colour_data, recipe, progress=False)
    assert batch_sizes == [8, 4] and result["recipe"]["batch_size"] == 4


def test_other_errors_are_not_retried(colour_data, monkeypatch):
    """Only out-of-memory means "try a smaller batch"; any other error is a bug and surfaces at once."""
    calls = []

    def broken(model, train, val, recipe, **kwargs):
        calls.append(recipe.batch_size)
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(recipes, "train_with_recipe", broken)
    recipe = recipes.Recipe.default().updated(epochs=1, image_size=64, batch_size=8)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        recipes.finetune(colour_data, recipe, progress=False)
    assert calls == [8]


def test_a_run_too_short_for_one_cycle_uses_cosine_and_says_so():
    recipe = recipes.Recipe.default().updated(epochs=1, batch_size=8)
    with pytest.warns(UserWarning, match="3 training step\\(s\\) are too few for the one-cycle schedule"):
        short = recipes.schedule_for_length(recipe, 24)  # 3 batches of 8, once
    assert short.schedule == "cosine" and short.updated(schedule="onecycle") == recipe
    assert recipes.schedule_for_length(recipe, 40) is recipe  # 5 steps: one-cycle fits
    gradual = recipe.updated(freeze="gradual", epochs=3, head_epochs=1)  # stage 1: one epoch of 3 steps
    with pytest.warns(UserWarning, match="too few"):
        assert recipes.schedule_for_length(gradual, 24).schedule == "cosine"
