"""Draw the labels that student copies show under their check cells (a developer tool).

A released exercise stores, under each check cell, the line the check prints once the answer is
right (``q1: passed``): ``pytest --nbval-lax`` compares a learner's run with it. Shown as plain text,
a learner reads it as already passed. So the stored output carries two forms of the same line:
``text/plain`` (what nbval compares) and a picture (``image/png``, which nbval skips and JupyterLab,
VS Code and GitHub show instead) that says what it is: "expected once your answer is right".

The pictures are drawn once and kept in tlkit/course/assets/expected/ (so that a student copy does
not change with the Pillow version that draws it):

    .venv/bin/python scripts/make_expected_labels.py
"""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parents[1] / "tlkit" / "course" / "assets" / "expected"
ITEMS = [f"q{k}" for k in range(1, 10)]


def _font(size: int = 13):
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def label(item: str) -> bytes:
    font = _font()
    text = f"{item}: passed  \u2190 what this check prints once your answer is right (run it to check yours)"
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (right + 16, bottom + 10), (244, 244, 244))
    draw = ImageDraw.Draw(image)
    draw.text((8, 4), text, font=font, fill=(110, 110, 110))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for item in ITEMS:
        (OUT / f"{item}.png").write_bytes(label(item))
    print(f"{len(ITEMS)} labels in {OUT}")


if __name__ == "__main__":
    main()
