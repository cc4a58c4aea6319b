"""Loading a learner's own folders and public data sets, including every kind of bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import tlkit as tl


def _image(path, mode="RGB", size=(50, 40), value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray((np.arange(size[0] * size[1]).reshape(size[1], size[0]) * 20).astype(np.uint16)).save(path)
    else:
        Image.new(mode, size, value if mode in ("L", "P") else (value,) * len(mode)).save(path)
    return path


def _folder(root, classes=("cat", "dog"), n=4):
    for c in classes:
        for i in range(n):
            _image(root / c / f"{i}.png", value=40 * i + 10)
    return root


def test_loads_classes_in_sorted_order_at_the_stored_size(tmp_path):
    ds = tl.load_image_folder(_folder(tmp_path), image_size=64)
    assert ds.classes == ["cat", "dog"] and len(ds) == 8
    assert ds.images.shape == (8, 3, 73, 73) and ds.images.dtype == torch.uint8
    assert ds.sources[0].endswith("0.png")


def test_grayscale_rgba_palette_and_16bit_images_become_rgb(tmp_path):
    _image(tmp_path / "a" / "gray.png", "L")
    _image(tmp_path / "a" / "rgba.png", "RGBA")
    _image(tmp_path / "b" / "palette.png", "P")
    _image(tmp_path / "b" / "deep.png", "I;16")
    ds = tl.load_image_folder(tmp_path, image_size=32)
    assert len(ds) == 4 and ds.images.shape[1] == 3
    deep = ds.sources.index(str(tmp_path / "b" / "deep.png"))
    # rescaled to the full 8-bit range, not clipped (clipping would saturate most pixels at 255)
    assert ds.images[deep].max() > 240 and ds.images[deep].min() < 15
    assert (ds.images[deep] == 255).float().mean() < 0.05


def test_corrupt_and_non_image_files_are_skipped_counted_and_reported(tmp_path):
    _folder(tmp_path)
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "dog" / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning, match=r"Skipped 2 file\(s\) .*cat.broken.jpg, dog.notes.txt"):
        ds = tl.load_image_folder(tmp_path)
    assert len(ds) == 8 and len(ds.skipped) == 2


def test_a_class_folder_without_images_is_dropped_with_a_warning(tmp_path):
    _folder(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.warns(UserWarning, match=r"empty_class.*no readable images: dropped"):
        ds = tl.load_image_folder(tmp_path)
    assert ds.classes == ["cat", "dog"] and len(ds) == 8


def test_a_single_class_is_an_error_that_says_what_to_add(tmp_path):
    _folder(tmp_path, classes=("only",))
    with pytest.raises(tl.DataError, match="needs at least 2 classes"):
        tl.load_image_folder(tmp_path)


def test_images_without_class_folders_are_explained(tmp_path):
    _image(tmp_path / "a.png")
    with pytest.raises(tl.DataError, match="1 image.* directly: move them into one sub-folder per class"):
        tl.load_image_folder(tmp_path)


def test_exif_rotated_photos_are_turned_upright(tmp_path):
    """A phone stores portrait photos as landscape pixels plus an EXIF 'rotate' tag."""
    path = tmp_path / "a" / "phone.jpg"
    path.parent.mkdir()
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.fromarray(pixels).save(path, exif=exif)
    _image(tmp_path / "b" / "x.png")
    ds = tl.load_image_folder(tmp_path, image_size=35)  # stored at 40 px
    upright = ds.images[ds.sources.index(str(path))].float().mean(0)
    # after the turn the white half is at the top, not on the left
    assert upright[:15].mean() > 200 and upright[-15:].mean() < 50


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "has no class folders"),
    (lambda p: (p / "file.txt").write_text("x") and p / "file.txt", "is a file"),
])
def test_missing_empty_or_wrong_paths(tmp_path, make, message):
    with pytest.raises(tl.DataError, match=message):
        tl.load_image_folder(make(tmp_path))


def test_folder_splits_use_val_and_test_folders(tmp_path):
    for split in ("train", "val", "test"):
        _folder(tmp_path / split, n=5 if split == "train" else 2)
    data = tl.load_folder_splits(tmp_path, image_size=32)
    assert (len(data.train), len(data.val), len(data.test)) == (10, 4, 4)


def test_folder_splits_carve_val_from_train_and_accept_flat_folders(tmp_path):
    _folder(tmp_path / "train", n=10)
    data = tl.load_folder_splits(tmp_path, image_size=32, val=0.2)
    assert (len(data.train), len(data.val), data.test) == (16, 4, None)
    flat = tl.load_folder_splits(_folder(tmp_path / "flat", n=5), image_size=32)
    assert len(flat.train) + len(flat.val) == 10


def test_single_class_and_unknown_val_class_are_errors(tmp_path):
    _folder(tmp_path / "one" / "train", classes=("only",))
    with pytest.raises(tl.DataError, match="at least 2 classes"):
        tl.load_folder_splits(tmp_path / "one")
    with pytest.raises(tl.DataError, match="val/ or test/ but no train/"):
        tl.load_folder_splits(_folder(tmp_path / "three" / "val").parent)
    _folder(tmp_path / "two" / "train")
    _folder(tmp_path / "two" / "val", classes=("cat", "horse"))
    with pytest.raises(tl.DataError, match="horse"):
        tl.load_folder_splits(tmp_path / "two")


def test_public_dataset_reads_torchvision_files_and_explains_missing_ones(tmp_path):
    # EuroSAT on disk is eurosat/2750/<class>/*.jpg; write a tiny fake one.
    for c in ("Forest", "River", "SeaLake"):
        for i in range(3):
            _image(tmp_path / "eurosat" / "2750" / c / f"{c}_{i}.jpg", size=(64, 64), value=30 * i)
    ds = tl.public_dataset("EuroSAT", tmp_path, image_size=32, max_per_class=2)
    assert ds.classes == ["Forest", "River", "SeaLake"] and len(ds) == 6
    with pytest.raises(tl.DataError, match="tlkit fetch-data flowers102"):
        tl.public_dataset("flowers102", tmp_path / "nothing")
    with pytest.raises(tl.DataError, match="Unknown public data set"):
        tl.public_dataset("imagenet-22k", tmp_path)


def _fake_cifar10(root, per_batch=4):
    """CIFAR-10 as torchvision stores it: pickled dicts of (N, 3072) uint8 rows, and a meta file."""
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for b, file in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        labels = [(b + i) % 10 for i in range(per_batch)]
        # row = 1024 red, 1024 green, 1024 blue: make every image pure red of brightness 10 * label
        data = np.zeros((per_batch, 3072), np.uint8)
        data[:, :1024] = np.array(labels, np.uint8)[:, None] * 10
        with open(folder / file, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f, protocol=2)  # protocol of the real files
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f, protocol=2)
    return root


def test_public_cifar10_is_read_from_torchvision_files(tmp_path):
    root = _fake_cifar10(tmp_path)
    train = tl.public_dataset("cifar10", root, image_size=32)
    assert len(train) == 20 and train.classes[3] == "cat" and train.images.shape == (20, 3, 37, 37)
    label = int(train.labels[0])
    assert train.images[0, 0].float().mean() == pytest.approx(10 * label, abs=1)  # red channel
    assert train.images[0, 1:].max() == 0
    test = tl.public_dataset("CIFAR-10", root, split="test", image_size=32, max_per_class=1)
    assert len(test) == 4 and sorted(test.class_counts().values()).count(1) == 4


def test_public_data_never_unpickles_code(tmp_path):
    import pickle

    root = _fake_cifar10(tmp_path)
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": print, "labels": []}, f)  # a pickle that names a function
    with pytest.raises(tl.DataError, match="refusing to load builtins.print"):
        tl.public_dataset("cifar10", root, split="test")


def test_missing_public_data_names_the_set_the_folder_and_the_fix(tmp_path):
    with pytest.raises(tl.DataError) as err:
        tl.public_dataset("cifar10", tmp_path / "offline")
    message = str(err.value)
    assert "CIFAR10" in message and str(tmp_path / "offline" / "cifar-10-batches-py") in message
    assert "tlkit fetch-data cifar10" in message and "download=True" in message


def test_public_data_defaults_to_the_fetch_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TLKIT_DATA", str(tmp_path))
    with pytest.raises(tl.DataError, match=str(tmp_path / "public" / "cifar-10-batches-py")):
        tl.public_dataset("cifar10")
