"""Your own labelled texts: a CSV/TSV table, or one folder of ``.txt`` files per class.

Two layouts, the text counterparts of an image folder:

- a table, ``reviews.csv`` (comma-separated) or ``reviews.tsv`` (tab-separated), with a header row,
  one text per row and its class in another column (``text`` and ``label`` unless you name them);
- a folder ``texts/<class>/*.txt`` (one text per file), or ``texts/train/<class>/*.txt`` with
  ``val/`` and/or ``test/`` beside it, exactly as for images.

Everything is read as UTF-8 (a byte-order mark from Excel is fine). What a table or folder gets
wrong (a missing column, an empty text, a single class, a binary or non-UTF-8 file) stops with a
message that names the file, the row and what to do; nothing is silently skipped.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .dataset import DataError, DataSplits
from .text import TextDataset

TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
TEXT_SUFFIX = ".txt"


def read_text_file(path: Path) -> str:
    """The whole file as text, refusing binary files and encodings other than UTF-8 with advice."""
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise DataError(f"{path} is a binary file, not text. Give a plain-text file (.csv, .tsv or .txt) "
                        "saved as UTF-8; export spreadsheets as 'CSV UTF-8'.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DataError(f"{path} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}). Save it as "
                        "UTF-8 (in Excel: 'CSV UTF-8'; in an editor: 'Save with encoding: UTF-8') and try "
                        "again.") from None


def _rows_listed(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:5])
    return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


def read_text_table(path, text_column: str = "text", label_column: str = "label") -> TextDataset:
    """A CSV or TSV file with a header row as a TextDataset; classes in sorted order of their names.

    The other columns are kept in ``.info`` (e.g. a ``condition`` column for a domain-shift check).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file. Check the path (a relative path starts at "
                        f"{Path.cwd()}).")
    delimiter = TABLE_DELIMITERS.get(path.suffix.lower())
    if delimiter is None:
        raise DataError(f"{path} is a single file, so tlkit read it as a table of texts; a table must end in "
                        f".csv (comma-separated) or .tsv (tab-separated), not {path.suffix or 'no extension'}. "
                        "Otherwise give a folder: <class>/*.txt for texts, <class>/<images> for images.")
    reader = csv.DictReader(io.StringIO(read_text_file(path), newline=""), delimiter=delimiter)
    columns = [c.strip() for c in (reader.fieldnames or [])]
    reader.fieldnames = columns
    for role, name, option in (("text", text_column, "--text-column"), ("label", label_column, "--label-column")):
        if name not in columns:
            raise DataError(f"{path} has no {role} column {name!r}; its columns are {columns}. Name the right one "
                            f"with {option} (Python: {role}_column=...).")
    if text_column == label_column:
        raise DataError(f"The text and the label column are both {text_column!r}; they must differ.")
    texts, names, info = [], [], {c: [] for c in columns if c not in (text_column, label_column) and c}
    empty_texts, empty_labels, too_long = [], [], []
    for row_number, row in enumerate(reader, start=2):  # row 1 is the header
        if None in row:  # more fields than the header has: a delimiter inside an unquoted text
            too_long.append(row_number)
        text = " ".join((row.get(text_column) or "").split())
        label = (row.get(label_column) or "").strip()
        if not text:
            empty_texts.append(row_number)
        if not label:
            empty_labels.append(row_number)
        texts.append(text)
        names.append(label)
        for column in info:
            info[column].append((row.get(column) or "").strip())
    if too_long:
        sep = "comma" if delimiter == "," else "tab"
        raise DataError(f"{path}: rows {_rows_listed(too_long)} have more fields than the header ({len(columns)}). "
                        f"A text that contains a {sep} must be in double quotes (\"like, this\"); spreadsheet "
                        "programs do that when they export CSV.")
    if empty_texts:
        raise DataError(f"{path}: rows {_rows_listed(empty_texts)} have an empty {text_column!r}. Fill them in or "
                        "delete those rows; a classifier cannot learn from, or be judged on, an empty text.")
    if empty_labels:
        raise DataError(f"{path}: rows {_rows_listed(empty_labels)} have no {label_column!r}. Label them or delete "
                        "those rows.")
    return _labelled(texts, names, info, path)


def _labelled(texts: list[str], names: list[str], info: dict, source: Path,
              classes: list[str] | None = None) -> TextDataset:
    """Texts with class names -> a TextDataset; at least two classes, and only ``classes`` if given."""
    if not texts:
        raise DataError(f"{source} holds no texts.")
    if classes is None:
        classes = sorted(set(names))
        if len(classes) < 2:
            raise DataError(f"{source} has a single class ({classes[0]!r}); a classifier needs texts of at "
                            "least 2 classes.")
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise DataError(f"{source} has classes {unknown} that the training data does not have ({classes}). "
                        "Add them to the training data or remove them here.")
    return TextDataset(texts, [classes.index(n) for n in names], classes, info)


def load_text_folder(path, classes: list[str] | None = None) -> TextDataset:
    """``path/<class>/*.txt`` (one text per file) as a TextDataset; ``.info["file"]`` keeps the paths."""
    path = Path(path)
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    texts, names, files, empty = [], [], [], []
    for folder in folders:
        for file in sorted(folder.rglob(f"*{TEXT_SUFFIX}")):
            if file.name.startswith("."):
                continue
            text = " ".join(read_text_file(file).split())
            if not text:
                empty.append(str(file.relative_to(path)))
                continue
            texts.append(text)
            names.append(folder.name)
            files.append(str(file))
    if empty:
        raise DataError(f"{path}: {len(empty)} empty text file(s): {', '.join(empty[:5])}. Write a text into them "
                        "or delete them.")
    if not texts:
        raise DataError(f"No .txt files in the class folders of {path}. Expected {path}/<class>/<name>.txt, "
                        f"e.g. {path}/praise/1.txt and {path}/complaint/1.txt.")
    return _labelled(texts, names, {"file": files}, path, classes)


def is_text_data(path) -> bool:
    """True for a CSV/TSV file or a folder whose class folders hold ``.txt`` files (else: images)."""
    path = Path(path)
    if path.is_file() or path.suffix.lower() in TABLE_DELIMITERS:
        return True  # a single file can only be a table; read_text_table says if it is not one
    if not path.is_dir():
        return False
    root = path / "train" if (path / "train").is_dir() else path
    return any(f.suffix.lower() == TEXT_SUFFIX for f in root.glob(f"*/**/*{TEXT_SUFFIX}"))


def load_text_splits(path, text_column: str = "text", label_column: str = "label", val: float = 0.2,
                     seed: int = 0) -> DataSplits:
    """Train / val (/ test) TextDatasets from a table or a folder, laid out as for ``tl.load_folder_splits``.

    A table, or a folder without ``val/``, gives up a stratified ``val`` fraction of its texts.
    """
    from .splits import split

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist. Check the path (a relative path starts at {Path.cwd()}).")
    parts: dict[str, TextDataset | None] = {"val": None, "test": None}
    if path.is_file():
        train = read_text_table(path, text_column, label_column)
    else:
        train_dir = path / "train" if (path / "train").is_dir() else path
        train = load_text_folder(train_dir)
        for name in parts:
            if train_dir != path and (path / name).is_dir():
                parts[name] = load_text_folder(path / name, classes=train.classes)
    if parts["val"] is None:
        carved = split(train, val=val, seed=seed)
        train, parts["val"] = carved.train, carved.val
    return DataSplits(train=train, val=parts["val"], test=parts["test"], classes=train.classes)
