"""Your own texts: CSV/TSV tables and folders of .txt files, and what each bad input says."""
from __future__ import annotations

import pytest

from tlkit.data import DataError
from tlkit.data.text_files import is_text_data, load_text_folder, load_text_splits, read_text_table


def _table(path, rows, header=("text", "label"), delimiter=","):
    quoted = [[f'"{v}"' if delimiter in v else v for v in r] for r in rows]
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in quoted]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


ROWS = [("great film, loved it", "good"), ("awful, a waste of time", "bad"), ("wonderful acting", "good"),
        ("boring and slow", "bad"), ("a joy to watch", "good"), ("I walked out", "bad")] * 3


def test_a_csv_becomes_texts_labels_and_sorted_classes_with_the_other_columns_kept(tmp_path):
    path = _table(tmp_path / "reviews.csv", [(t, c, "cinema") for t, c in ROWS],
                  header=("text", "label", "source"))
    ds = read_text_table(path)
    assert ds.classes == ["bad", "good"]
    assert len(ds) == len(ROWS)
    assert ds.texts[0] == "great film, loved it"  # quoted comma kept inside the text
    assert ds.labels.tolist()[:2] == [1, 0]
    assert ds.info["source"] == ["cinema"] * len(ROWS)


def test_a_tsv_with_named_columns_and_an_excel_byte_order_mark(tmp_path):
    path = tmp_path / "notes.tsv"
    body = "review\tsentiment\n" + "".join(f"{t}\t{c}\n" for t, c in ROWS)
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    ds = read_text_table(path, text_column="review", label_column="sentiment")
    assert ds.classes == ["bad", "good"] and len(ds) == len(ROWS)


@pytest.mark.parametrize("content, kwargs, message", [
    ("words,label\nhello,a\nbye,b\n", {}, r"no text column 'text'; its columns are \['words', 'label'\]"),
    ("text,class\nhello,a\nbye,b\n", {}, "--label-column"),
    ("text,label\nhello,a\n,b\nhi,a\n", {}, "rows 3 have an empty 'text'"),
    ("text,label\nhello,a\nbye,\n", {}, "rows 3 have no 'label'"),
    ("text,label\nhello,a\nbye,a\n", {}, "a single class"),
    ("text,label\n", {}, "holds no texts"),
    ("text,label\ngood, really good,a\nbye,b\n", {}, r"rows 2 have more fields than the header \(2\).*double quotes"),
    ("text,label\nhello,a\nbye,b\n", {"label_column": "text"}, "must differ"),
])
def test_bad_tables_say_what_is_wrong_and_what_to_do(tmp_path, content, kwargs, message):
    path = tmp_path / "data.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_text_table(path, **kwargs)


def test_binary_and_non_utf8_files_are_refused_with_advice(tmp_path):
    binary = tmp_path / "data.csv"
    binary.write_bytes(b"PK\x03\x04\x00\x00 a zip, renamed")
    with pytest.raises(DataError, match="binary file"):
        read_text_table(binary)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\u00e9 au lait,good\nbad coffee,bad\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 0xe9 on line 2\).*CSV UTF-8"):
        read_text_table(latin)
    other = tmp_path / "data.xlsx"
    other.write_bytes(b"x")
    with pytest.raises(DataError, match=r"must end in .csv .* or .tsv"):
        read_text_table(other)


def _folder(root, texts_per_class):
    for name, texts in texts_per_class.items():
        (root / name).mkdir(parents=True)
        for i, text in enumerate(texts):
            (root / name / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def test_a_folder_of_txt_files_per_class(tmp_path):
    root = _folder(tmp_path / "texts", {"praise": ["thanks a lot", "great work"], "complaint": ["it broke", "too late"]})
    (root / "praise" / ".hidden.txt").write_text("ignored")
    ds = load_text_folder(root)
    assert ds.classes == ["complaint", "praise"]
    assert sorted(ds.texts) == sorted(["thanks a lot", "great work", "it broke", "too late"])
    assert all(f.endswith(".txt") for f in ds.info["file"])
    assert is_text_data(root) and is_text_data(tmp_path / "missing.csv")


def test_folder_errors_name_the_file(tmp_path):
    root = _folder(tmp_path / "a", {"x": ["one", ""], "y": ["two"]})
    with pytest.raises(DataError, match=r"1 empty text file\(s\): x/1.txt"):
        load_text_folder(root)
    root = _folder(tmp_path / "b", {"x": ["one"], "y": ["two"]})
    (root / "y" / "2.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(DataError, match=r"2.txt is a binary file"):
        load_text_folder(root)


def test_splits_from_a_table_carve_a_stratified_validation_set(tmp_path):
    path = _table(tmp_path / "reviews.csv", ROWS)
    splits = load_text_splits(path, seed=0)
    assert len(splits.train) + len(splits.val) == len(ROWS)
    assert splits.test is None
    assert set(splits.val.labels.tolist()) == {0, 1}
    assert not set(splits.val.texts) - {t for t, _ in ROWS}


def test_splits_from_train_and_test_folders_keep_the_training_classes(tmp_path):
    many = {"a": [f"alpha {i}" for i in range(5)], "b": [f"beta {i}" for i in range(5)]}
    _folder(tmp_path / "d" / "train", many)
    _folder(tmp_path / "d" / "test", {"a": ["alpha x"], "b": ["beta x"]})
    splits = load_text_splits(tmp_path / "d")
    assert splits.classes == ["a", "b"] and len(splits.test) == 2 and len(splits.val) == 2
    _folder(tmp_path / "e" / "train", many)
    _folder(tmp_path / "e" / "val", {"a": ["alpha x"], "c": ["gamma"]})
    with pytest.raises(DataError, match=r"classes \['c'\] that the training data does not have"):
        load_text_splits(tmp_path / "e")
