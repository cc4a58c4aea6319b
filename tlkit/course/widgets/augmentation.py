"""The augmentation explorer: what each augmentation does to the same few images, live.

Tick augmentations, move the strength, and the grid shows fresh random versions of the same
images, exactly as training would see them (``tlkit.train_transforms``). Look at the labels:
a horizontal flip turns a left arrow into a right arrow, so for that data it teaches the model
something false. An augmentation is only safe when the label survives it.
"""
from __future__ import annotations

import contextlib
import html

import ipywidgets as W
import torch

from ...config import ModelConfig
from ...data import AUGMENTATIONS, DataSplits, train_transforms
from ...data.transforms import augmentation_names
from ._base import Panel
from ._draw import image_grid, img_tag, to_jpeg
from ._training import load_course_data

# Words in class names that a transform can turn into another class's word.
_DIRECTIONS = {"flip": ("left", "right"), "vflip": ("up", "down"), "rotate": ("left", "right", "up", "down")}


class AugmentationExplorer(Panel):
    """See ``augmentation_explorer``."""

    title = "Augmentation explorer"
    css_class = "tlkit-augmentation"
    intro = ("Tick augmentations and move the strength: each row shows one training image (left) and random "
             "versions of it as training would see them. Does every version still deserve its label?")

    def __init__(self, data: DataSplits | None = None, *, classes: list[str] | None = None, n_images: int = 4,
                 n_versions: int = 5, image_size: int = 96, config: ModelConfig | None = None,
                 augment: list[str] | tuple[str, ...] = ("crop",), strength: float = 0.5, seed: int = 0):
        super().__init__()
        self.data = load_course_data(data)
        if not 1 <= n_versions <= 12 or not 1 <= n_images <= 12:
            raise ValueError(f"n_images and n_versions must be 1 to 12, got {n_images} and {n_versions}.")
        self.indices = self._choose_images(classes, n_images)
        self.n_versions, self.image_size, self.seed = n_versions, image_size, seed
        # Normalisation is undone for display, so any mean/std shows the same picture.
        self.config = config or ModelConfig(name="display", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
        augment = augmentation_names(augment)  # raises on an unknown name
        self.controls = {name: W.Checkbox(value=name in augment, description=name, indent=False,
                                          layout=W.Layout(width="130px")) for name in AUGMENTATIONS}
        self.controls["strength"] = W.FloatSlider(value=strength, min=0.0, max=1.0, step=0.05,
                                                  description="strength", continuous_update=False)
        self.resample_button = W.Button(description="New samples", icon="refresh",
                                        tooltip="Draw new random versions with the same settings")
        self.resample_button.on_click(lambda _: self.resample())
        self.plot = W.Image(format="jpeg", layout=W.Layout(max_width="100%"))
        self.note = W.HTML()
        self._draws = 0
        self._holding = False
        self._picture: bytes | None = None
        for control in self.controls.values():
            control.observe(lambda _: self.redraw(), names="value")
        self.redraw()

    def _choose_images(self, classes: list[str] | None, n_images: int) -> list[int]:
        """One training image of each class in ``classes`` (default: classes spread over the list)."""
        names = self.data.classes
        if classes is None:
            count = min(n_images, len(names))
            picks = sorted({round(k * (len(names) - 1) / max(count - 1, 1)) for k in range(count)})
            classes = [names[k] for k in picks]
        missing = [c for c in classes if c not in names]
        if missing:
            raise ValueError(f"No class {missing} in the data; the classes are {names}.")
        labels = self.data.train.labels
        return [int(torch.nonzero(labels == names.index(c))[0]) for c in classes]

    # ---- the Python API
    @property
    def augment(self) -> list[str]:
        """The ticked augmentations, in the order tlkit applies them."""
        return [name for name in AUGMENTATIONS if self.controls[name].value]

    def set(self, augment: list[str] | None = None, **values) -> AugmentationExplorer:
        """Set controls by name; ``augment=[...]`` ticks exactly those augmentations."""
        if augment is not None:
            augment = augmentation_names(augment)  # raises on an unknown name
            values = {**{name: name in augment for name in AUGMENTATIONS}, **values}
        with self._hold_redraw():
            super().set(**values)
        self.redraw()
        return self

    def samples(self) -> torch.Tensor:
        """The current grid as a tensor (n_images, 1 + n_versions, 3, H, W): originals, then versions."""
        transform = train_transforms(self.config, self.image_size, augment=self.augment or "none",
                                     strength=self.controls["strength"].value)
        plain = train_transforms(self.config, self.image_size, augment="none")
        torch.manual_seed(self.seed + self._draws)  # the same settings and draw give the same grid
        rows = []
        for i in self.indices:
            image = self.data.train.images[i]
            rows.append(torch.stack([plain(image)] + [transform(image) for _ in range(self.n_versions)]))
        return torch.stack(rows)

    def resample(self) -> None:
        """New random versions with the same settings (what the "New samples" button does)."""
        self._draws += 1
        self.redraw()

    def warnings(self) -> list[str]:
        """Sentences about ticked augmentations that can change a label of this data set."""
        found = []
        names = [c.lower() for c in self.data.classes]
        for aug, words in _DIRECTIONS.items():
            hit = sorted({c for c, low in zip(self.data.classes, names) if any(w in low for w in words)})
            if self.controls[aug].value and len(hit) >= 2 and self.controls["strength"].value > 0:
                found.append(f"'{aug}' can turn one of {hit} into another: the image then carries a wrong label.")
        return found

    # ---- showing
    @contextlib.contextmanager
    def _hold_redraw(self):
        """Change several controls, then redraw once (each control would otherwise redraw)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def redraw(self) -> None:
        if self._holding:
            return
        try:
            grid = self.samples()
        except Exception as err:  # e.g. a transform that fails on these images
            self.show_error(err)
            return
        self.clear_error()
        n_cols = grid.shape[1]
        images = [grid[r, c] for r in range(grid.shape[0]) for c in range(n_cols)]
        label = [self.data.classes[int(self.data.train.labels[i])] for i in self.indices]
        titles = [(f"{label[r]} (original)" if c == 0 else f"{label[r]}?") for r in range(grid.shape[0])
                  for c in range(n_cols)]
        self._picture = to_jpeg(image_grid(images, titles, ncols=n_cols, size=1.5))
        self.plot.value = self._picture
        notes = self.warnings()
        chosen = ", ".join(self.augment) or "none"
        self.note.value = (f"Training transform: <code>{html.escape(chosen)}</code>, strength "
                           f"{self.controls['strength'].value:.2f}."
                           + "".join(f"<br><span style='color:#a00000'>&#9888; {html.escape(n)}</span>" for n in notes))

    def summary_html(self) -> str:
        return f"<p><b>{self.title}</b></p><p>{self.note.value}</p>" + img_tag(self._picture)

    def summary_text(self) -> str:
        return f"{self.title}: augment={self.augment}, strength={self.controls['strength'].value:.2f}"

    def _build_ui(self) -> W.Widget:
        boxes = W.GridBox([self.controls[n] for n in AUGMENTATIONS],
                          layout=W.Layout(grid_template_columns="repeat(5, 135px)"))
        return W.VBox([self._header(), boxes, W.HBox([self.controls["strength"], self.resample_button]),
                       self.note, self.error_box, self.plot])


def augmentation_explorer(data: DataSplits | None = None, *, classes: list[str] | None = None,
                          n_images: int = 4, n_versions: int = 5, image_size: int = 96,
                          augment: list[str] | tuple[str, ...] = ("crop",), strength: float = 0.5,
                          seed: int = 0) -> AugmentationExplorer:
    """Tick augmentations, set their strength, and see random versions of the same images at once.

    ``classes``: one image of each of these classes (default: ``n_images`` classes spread over
    the list; for the course data that includes ``arrow_right``). From code::

        ex = tl.augmentation_explorer(data, classes=["brick", "arrow_left"])
        ex.set(augment=["flip"], strength=1.0)
        ex.warnings()       # ["'flip' can turn one of ['arrow_left', 'arrow_right'] into another: ..."]
        ex.samples().shape  # (2, 6, 3, 96, 96)
    """
    return AugmentationExplorer(data, classes=classes, n_images=n_images, n_versions=n_versions,
                                image_size=image_size, augment=augment, strength=strength, seed=seed)
