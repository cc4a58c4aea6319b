"""`tlkit finetune` on texts: a real (small) fine-tune of the offline text model on a CSV the test
writes, the saved model used without tlkit's training code, and every bad input a user can give."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tlkit.course import cli

PRAISE = ["wonderful", "excellent", "helpful", "great", "lovely", "brilliant", "friendly", "superb"]
COMPLAINT = ["broken", "rude", "late", "awful", "dirty", "useless", "terrible", "slow"]
NOUNS = ["service", "staff", "delivery", "product", "support", "room", "meal", "repair"]


def _sentences(words, n, rng):
    return [f"The {rng.choice(NOUNS)} was {rng.choice(words)} and the {rng.choice(NOUNS)} {rng.choice(words)}."
            for _ in range(n)]


def _write_csv(path, n_per_class, seed):
    rng = np.random.default_rng(seed)
    rows = [(t, "praise") for t in _sentences(PRAISE, n_per_class, rng)]
    rows += [(t, "complaint") for t in _sentences(COMPLAINT, n_per_class, rng)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    path.write_text("feedback,kind\n" + "".join(f'"{t}",{c}\n' for t, c in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def feedback(tmp_path_factory):
    return _write_csv(tmp_path_factory.mktemp("texts") / "feedback.csv", 40, seed=0)


@pytest.fixture(scope="module")
def finetuned(feedback, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "feedback"
    proc = subprocess.run(
        [sys.executable, "-m", "tlkit", "finetune", str(feedback), "--text-column", "feedback",
         "--label-column", "kind", "--epochs", "6", "--max-length", "32", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TLKIT_OFFLINE": "1"})
    return proc, out


def test_a_csv_of_texts_fine_tunes_the_text_model_and_reports_one_json_object(finetuned):
    proc, _ = finetuned
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["model"] == "minilm" and result["modality"] == "text" and result["eval_split"] == "val"
    assert result["classes"] == ["complaint", "praise"] and result["n_train"] + result["n_eval"] == 80
    assert result["recipe"]["max_length"] == 32 and result["recipe"]["class_weights"] == "balanced"
    assert len(result["history"]) == 2  # the head alone on cached embeddings, then the top layers with it
    assert result["accuracy"] >= 0.8, f"chance is 0.5; got {result['accuracy']}"


def test_the_saved_model_predicts_from_python_without_the_training_code(finetuned):
    _, out = finetuned
    script = (
        "import sys, torch\n"
        "from tlkit.checkpoint import load_model\n"
        f"model = load_model({str(out)!r}).eval()\n"
        "with torch.inference_mode():\n"
        "    scores = model(['The staff was rude and the delivery late.', 'The meal was superb and the room lovely.'])\n"
        "names = model.tlkit_config.classes\n"
        "print(' '.join(names[i] for i in scores.argmax(1).tolist()))\n"
        "assert 'tlkit.train' not in sys.modules and 'tlkit.recipes' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TLKIT_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["complaint", "praise"]
    assert json.loads((out / "metrics.json").read_text())["modality"] == "text"


def test_an_existing_output_is_not_overwritten(finetuned, feedback, capsys):
    _, out = finetuned
    before = (out / "model.pt").read_bytes()
    code = cli.main(["finetune", str(feedback), "--text-column", "feedback", "--label-column", "kind",
                     "--out", str(out)])
    assert code == 2 and "--force" in capsys.readouterr().err
    assert (out / "model.pt").read_bytes() == before


def _bad(tmp_path, kind):
    if kind == "binary":
        path = tmp_path / "data.csv"
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    elif kind == "latin-1":
        path = tmp_path / "data.csv"
        path.write_bytes("text,label\ncaf\u00e9 fr\u00e8re,a\nbye,b\n".encode("latin-1"))
    elif kind == "txt-one-class":
        path = tmp_path / "notes"
        (path / "only").mkdir(parents=True)
        (path / "only" / "1.txt").write_text("hello", encoding="utf-8")
    else:
        path = tmp_path / "data.csv"
        path.write_text({"no-column": "words,label\nhi,a\nbye,b\n", "empty-text": "text,label\nhi,a\n,b\n",
                         "one-class": "text,label\nhi,a\nbye,a\n"}[kind], encoding="utf-8")
    return path


@pytest.mark.parametrize("kind, message", [
    ("no-column", "no text column 'text'"), ("empty-text", "empty 'text'"), ("one-class", "a single class"),
    ("binary", "binary file"), ("latin-1", "not UTF-8"), ("txt-one-class", "a single class"),
])
def test_bad_text_data_fails_clearly_with_exit_code_2(tmp_path, capsys, kind, message):
    code = cli.main(["finetune", str(_bad(tmp_path, kind)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "out" / "model.pt").exists()


@pytest.mark.parametrize("args, message", [
    (["--image-size", "64"], "--image-size only apply to images"),
    (["--model", "efficientnet_lite0"], "an image model"),
    (["--max-length", "2"], "max_length is a number of tokens"),
])
def test_options_that_do_not_fit_texts_fail_before_any_work(feedback, tmp_path, capsys, args, message):
    code = cli.main(["finetune", str(feedback), "--text-column", "feedback", "--label-column", "kind",
                     "--out", str(tmp_path / "o"), *args])
    assert code == 2 and message in capsys.readouterr().err


def test_text_options_with_images_are_refused(tmp_path, capsys):
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        Image.new("RGB", (40, 40)).save(tmp_path / "imgs" / name / "1.png")
    code = cli.main(["finetune", str(tmp_path / "imgs"), "--text-column", "x", "--out", str(tmp_path / "o")])
    assert code == 2 and "--text-column only apply to texts" in capsys.readouterr().err
