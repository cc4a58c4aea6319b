"""The rules of tlkit/README.md, checked on the source: what may import what.

- The learner's library (everything outside ``tlkit/course/``) never imports the course machinery.
- No module imports a private (underscore) name from another module.
- Only modules that draw import matplotlib at module level, and only the course's widgets import
  ipywidgets.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tlkit"
DRAWING_MODULES = {"plots", "inspection"}  # modules whose job is to draw figures


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str], bool]]:
    """(absolute module, imported names, at module level?) for every import statement in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((module, [a.name for a in node.names], id(node) in top_level))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], id(node) in top_level) for a in node.names]
    return found


def library_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "course" not in p.relative_to(PACKAGE).parts]


def course_imports_in_library(files: list[Path]) -> list[str]:
    allowed = {PACKAGE / "__main__.py"}  # `python -m tlkit` is the command line
    return [f"{p.relative_to(PACKAGE.parent)} imports {module}" for p in files if p not in allowed
            for module, names, _ in imports(p)
            if module.startswith("tlkit.course") or (module == "tlkit" and "course" in names)]


def private_imports(files: list[Path]) -> list[str]:
    bad = []
    for p in files:
        for module, names, _ in imports(p):
            if module.startswith("tlkit"):
                bad += [f"{p.relative_to(PACKAGE.parent)}: from {module} import {n}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
    return bad


def test_the_library_never_imports_the_course_machinery():
    files = library_files()
    assert PACKAGE / "train.py" in files and not any("course" in p.parts for p in files)
    assert course_imports_in_library(files) == []


def test_the_checker_finds_a_library_module_that_imports_the_course(tmp_path):
    bad = PACKAGE / "_architecture_probe.py"  # a module placed in the package for a moment
    bad.write_text("from .course.widgets import quiz\n")
    try:
        assert course_imports_in_library([bad]) == ["tlkit/_architecture_probe.py imports tlkit.course.widgets"]
    finally:
        bad.unlink()


def test_no_module_imports_a_private_name_from_another():
    assert private_imports(sorted(PACKAGE.rglob("*.py"))) == []


def test_the_checker_finds_a_private_import():
    probe = PACKAGE / "course" / "_architecture_probe.py"
    probe.write_text("from ..train import _secret, fit\nfrom .. import __version__\n")
    try:
        assert private_imports([probe]) == ["tlkit/course/_architecture_probe.py: from tlkit.train import _secret"]
    finally:
        probe.unlink()


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_drawing_and_widget_libraries_stay_where_they_belong(path):
    name = module_name(path).removeprefix("tlkit.")
    for module, _, top in imports(path):
        if module.split(".")[0] == "matplotlib" and top:
            assert name in DRAWING_MODULES or name.startswith("course."), f"{name} imports matplotlib at import time"
        if module.split(".")[0] == "ipywidgets":
            assert name.startswith("course."), f"{name} imports ipywidgets outside tlkit/course"


def probe_imports_of_checks(files: list[Path]) -> list[str]:
    return [f"{p.relative_to(PACKAGE.parent)} imports {module}" for p in files
            for module, names, _ in imports(p)
            if module.startswith("tlkit.course.checks") or (module == "tlkit.course" and "checks" in names)
            or module.startswith("tlkit.course.widgets")]


def test_probes_never_import_the_checks():
    """The grader's sandbox hides tlkit/course/checks (the judges) and the quiz keys: what runs beside a
    submission (tlkit/course/probes) must work without them."""
    files = sorted((PACKAGE / "course" / "probes").glob("*.py"))
    assert PACKAGE / "course" / "probes" / "__init__.py" in files
    assert probe_imports_of_checks(files) == []
    bad = PACKAGE / "course" / "probes" / "_architecture_probe.py"  # placed in the package for a moment
    bad.write_text("from ..checks import ex00_warmup\n")
    try:
        assert probe_imports_of_checks([bad]) == ["tlkit/course/probes/_architecture_probe.py imports tlkit.course.checks"]
    finally:
        bad.unlink()
