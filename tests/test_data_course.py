"""The generated course data: deterministic, cached, leak-free splits, few-shot and transforms."""
from __future__ import annotations

import warnings

import pytest
import torch

import tlkit as tl
from tlkit.data import course


@pytest.fixture
def tmp_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_DATA", str(tmp_path))
    return tmp_path


SMALL = {"train": 6, "val": 3, "test": 3}


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = course.generate("course", seed=1, per_class=SMALL)
    b = course.generate("course", seed=1, per_class=SMALL)
    c = course.generate("course", seed=2, per_class=SMALL)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.images, c.train.images)


@pytest.mark.parametrize("name", sorted(course.VARIANTS))
def test_every_variant_has_balanced_splits_of_stored_size(name):
    data = course.generate(name, per_class=SMALL)
    n = len(data.classes)
    assert len(data.train) == 6 * n and len(data.val) == 3 * n and len(data.test) == 3 * n
    assert data.train.images.shape[1:] == (3, course.STORE_SIZE, course.STORE_SIZE)
    assert data.train.images.dtype == torch.uint8
    assert set(data.train.class_counts().values()) == {6}
    assert name in tl.data.list_course_data()


def test_splits_come_from_disjoint_parts_of_the_photos():
    """No test image equals a training image (each split is cut from its own band of each photo)."""
    data = course.generate("course", per_class=SMALL)
    train = {bytes(img.numpy().tobytes()) for img in data.train.images}
    assert not any(bytes(img.numpy().tobytes()) in train for img in data.test.images)
    assert course.BANDS["train"][1] <= course.BANDS["val"][0] and course.BANDS["val"][1] <= course.BANDS["test"][0]


def test_cache_is_reused_and_a_corrupt_cache_is_regenerated(tmp_data):
    first = tl.course_data("shapes", per_class=SMALL)
    files = list((tmp_data / "course").glob("*.pt"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = tl.course_data("shapes", per_class=SMALL)
    assert files[0].stat().st_mtime_ns == stamp and torch.equal(first.val.images, again.val.images)
    files[0].write_bytes(b"not a torch file")
    repaired = tl.course_data("shapes", per_class=SMALL)
    assert torch.equal(first.val.images, repaired.val.images)


def test_bad_names_sizes_and_counts(tmp_data):
    with pytest.raises(tl.DataError, match="choose from"):
        tl.course_data("cats-vs-dogs")
    with pytest.raises(tl.DataError, match="image_size"):
        tl.course_data(image_size=224)
    with pytest.raises(tl.DataError, match="give an int"):
        tl.course_data(per_class={"training": 5})
    assert not list(tmp_data.rglob("*.pt"))  # nothing generated or cached for bad arguments


def test_an_int_per_class_sets_the_training_count():
    data = course.generate("shapes", per_class=4)
    assert set(data.train.class_counts().values()) == {4}
    assert len(data.val) == course.DEFAULT_PER_CLASS["val"] * len(data.classes)


def test_few_shot_and_split_are_stratified_and_disjoint():
    data = course.generate("materials", per_class={"train": 10, "val": 2, "test": 2})
    few = tl.few_shot(data.train, 4, seed=3)
    assert set(few.class_counts().values()) == {4}
    assert torch.equal(few.images, tl.few_shot(data.train, 4, seed=3).images)
    picked = tl.few_shot_indices(data.train, 4, seed=3)  # to pick the same rows of features computed once
    assert torch.equal(data.train.images[picked], few.images) and torch.equal(data.train.labels[picked], few.labels)
    assert not torch.equal(picked, tl.few_shot_indices(data.train, 4, seed=4))  # another seed, another draw
    with pytest.raises(tl.DataError, match="fewer than 11"):
        tl.few_shot(data.train, 11)
    parts = tl.split(data.train, val=0.2, test=0.2, seed=0)
    assert set(parts.val.class_counts().values()) == {2} and set(parts.test.class_counts().values()) == {2}
    ids = [set(p.sources) for p in (parts.train, parts.val, parts.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == len(data.train)


def test_transforms_follow_the_model_config():
    cfg = tl.ModelConfig(name="x", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    image = torch.full((3, 144, 144), 255, dtype=torch.uint8)
    out = tl.eval_transforms(cfg, 128)(image)
    assert out.shape == (3, 128, 128) and out.dtype == torch.float32
    assert torch.allclose(out, torch.ones_like(out))  # (1 - 0.5) / 0.5
    tl.seed_everything(0)
    for augment in ("default", "none", ["color", "erase"], ["rotate", "blur"], ["trivialaugment"],
                    ["randaugment", "vflip"]):
        assert tl.train_transforms(cfg, 96, augment=augment)(image).shape == (3, 96, 96)
    with pytest.raises(ValueError, match="Unknown augmentation"):
        tl.train_transforms(cfg, 96, augment=["wobble"])


def test_default_augmentation_crops_but_never_flips():
    """The library's default agrees with the course: a horizontal flip breaks the arrow labels."""
    from torchvision.transforms import v2 as T

    cfg = tl.ModelConfig(name="x", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    kinds = [type(step) for step in tl.train_transforms(cfg, 64).transforms]
    assert T.RandomResizedCrop in kinds and T.RandomHorizontalFlip not in kinds
    flips = [type(step) for step in tl.train_transforms(cfg, 64, augment="crop,flip").transforms]
    assert T.RandomHorizontalFlip in flips  # asked for by name


def test_flip_turns_a_left_arrow_into_a_right_arrow():
    """Why flips break the course data's arrow classes: a flipped left arrow *is* a right arrow."""
    rng = __import__("numpy").random.default_rng(0)
    left = course._shape_mask("arrow_left", rng)
    # the arrow's mass (the head) sits on the left side
    cols = left.sum(0)
    assert cols[: len(cols) // 2].sum() > cols[len(cols) // 2:].sum()
    flipped = left[:, ::-1]
    assert flipped.sum(0)[len(cols) // 2:].sum() > flipped.sum(0)[: len(cols) // 2].sum()
    # a vertical flip keeps the head on the left: that augmentation is safe for these labels
    upside_down = left[::-1, :].sum(0)
    assert upside_down[: len(cols) // 2].sum() > upside_down[len(cols) // 2:].sum()


def test_with_transforms_shares_pixels_and_mixup_cutmix_makes_soft_labels():
    data = course.generate("shapes", per_class=SMALL)
    cfg = tl.ModelConfig(name="x", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    ready = data.with_transforms(tl.train_transforms(cfg, 64), tl.eval_transforms(cfg, 64))
    assert ready.train.images is data.train.images and ready.test.transform is ready.val.transform
    images, labels = next(iter(tl.make_loader(ready.train, batch_size=8)))
    assert images.shape == (8, 3, 64, 64)
    mixed, soft = tl.data.mixup_cutmix(len(data.classes))(images, labels)
    assert mixed.shape == images.shape and soft.shape == (8, 6)
    assert torch.allclose(soft.sum(1), torch.ones(8))


def test_dataset_item_and_repr():
    data = course.generate("shapes", per_class=SMALL)
    x, y = data.train[0]
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1 and isinstance(y, int)
    assert "6 classes" in repr(data.train) and "train 36" in repr(data)
    with pytest.raises(tl.DataError, match="uint8"):
        tl.ImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2), ["a", "b"])


def test_make_loader_clips_an_oversized_batch_and_refuses_empty_data():
    data = course.generate("shapes", per_class=SMALL)
    n = len(data.val)
    with pytest.warns(UserWarning, match=f"batch_size=1000 is larger than the {n} val examples"):
        loader = tl.make_loader(data.val, batch_size=1000, shuffle=True, name="val")
    assert loader.batch_size == n
    with warnings.catch_warnings():  # evaluation: a clipped batch changes nothing, so no warning
        warnings.simplefilter("error")
        assert tl.make_loader(data.val, batch_size=1000).batch_size == n
    with pytest.raises(tl.DataError, match="empty"):
        tl.make_loader(data.val.subset([]))


def test_a_cache_that_cannot_be_written_still_gives_the_data(tmp_path):
    """A read-only cache (a workshop's shared copy, the grader's sandbox) is not an error: the data stay in memory."""
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the cache folder would go")
    data = tl.course_data("shapes", per_class={"train": 2, "val": 1, "test": 1}, root=blocked)
    assert len(data.train) == 2 * len(data.classes) and blocked.read_text().startswith("a file")
