"""The widgets through VS Code's own ipywidgets 8 widget manager, on a live kernel, in headless Chromium.

What this checks: VS Code's Jupyter extension renders widgets in its notebook webview with the
npm package ``@vscode/jupyter-ipywidgets8`` (its ``WidgetManager``, which loads widget classes
through requirejs rather than through JupyterLab's registry). tests/vscode_renderer/ builds a small
page of our own around that bundle, used unmodified: it loads requirejs and the bundle, creates the
manager the way VS Code's webview does (kernel, script loader, logger), runs the demo notebook's code
cells in order on a python3 kernel of a Jupyter server, and renders each output the way VS Code picks
a renderer (a widget view through get_model / create_view / display_view, else HTML, a picture or
text). The test checks that every tlkit widget renders once, that the script loader reports no
widget class it could not load and no request for a third-party script, that no view failed
("Error displaying widget"), and that the views answer: a quiz answer is checked in the kernel,
and ticking an augmentation redraws the grid.

What it does not check: the VS Code application and its Jupyter extension themselves (the webview,
the extension host relaying kernel messages, VS Code's theme CSS and output layout). They cannot be
installed offline: the VS Code Marketplace and Open VSX are out of reach here. Here the page talks to
the kernel directly with @jupyterlab/services over a websocket; VS Code relays the same messages.

It needs Playwright and a Chromium (as tests/test_browser.py), and the page built with node/npm:
``cd tests/vscode_renderer && npm ci && npm run build`` (.ci/run does this). Without them the test
is skipped, saying why; under CI (env CI set) it fails instead. Screenshots, the page's console and
the manager's log go to test-artifacts/browser/vscode_*.
"""
from __future__ import annotations

import shutil

import pytest

from _browser_helpers import (ARTIFACTS, CHROMIUM_FLAGS, DEMO, ROOT, RUN_ALL_SECONDS, WIDGETS,
                              answer_quiz_and_tick_rotate, browser_tools, missing, serve_jupyter, shoot)

RENDERER = ROOT / "tests" / "vscode_renderer"
PAGE_DIR = RENDERER / "dist" / "vscode_host"  # what `npm run build` writes; served as /static/vscode_host/
PAGE_FILES = ("index.html", "host.js", "ipywidgets.js", "require.js")
SOURCES = ("host.html", "host.js", "build.mjs", "package-lock.json")
BUILD = "cd tests/vscode_renderer && npm ci && npm run build"


@pytest.fixture(scope="module")
def page_dir():
    absent = [name for name in PAGE_FILES if not (PAGE_DIR / name).is_file()]
    if absent:
        npm = "" if shutil.which("npm") else " (and npm is not installed: it needs node and npm)"
        missing(f"The VS Code widget page is not built: {', '.join(absent)} missing in {PAGE_DIR}{npm}; "
                f"build it with: {BUILD}")
    built = min((PAGE_DIR / name).stat().st_mtime for name in PAGE_FILES)
    stale = [name for name in SOURCES if (RENDERER / name).stat().st_mtime > built]
    if stale:
        missing(f"The VS Code widget page is older than {', '.join(stale)}: rebuild it with: {BUILD}")
    return PAGE_DIR


@pytest.fixture(scope="module")
def server(page_dir, tmp_path_factory):
    # A bare Jupyter server, which also serves the page (its static files, same origin as the API).
    yield from serve_jupyter(tmp_path_factory, "jupyter_server",
                             (f"--ServerApp.extra_static_paths={page_dir.parent}",))


@pytest.fixture(scope="module")
def page(server):
    sync_api, chromium = browser_tools()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("vscode_*"):
        old.unlink()
    console: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            page.set_default_timeout(60_000)
            yield page
        finally:
            (ARTIFACTS / "vscode_console.txt").write_text("\n".join(console))
            browser.close()


@pytest.mark.slow
def test_widgets_render_and_respond_in_vscodes_widget_manager(page, server):
    page.goto(f"{server['url']}/static/vscode_host/index.html?token={server['token']}&notebook={DEMO.name}")
    page.wait_for_function("() => window.host && window.host.finished", timeout=RUN_ALL_SECONDS * 1000)
    host = page.evaluate("() => window.host")
    (ARTIFACTS / "vscode_manager_log.txt").write_text("\n".join(host["log"]))
    shoot(page, "vscode_01_ran_all")

    # The demo ran through, and VS Code's manager loaded every widget class from its own bundle.
    assert host["ok"], f"the demo did not run through ({host['status']}): {host['errors']}"
    assert host["errors"] == []
    assert host["loadErrors"] == [], "VS Code's widget manager could not load these widget classes"
    assert host["scriptRequests"] == [], "these widgets would need a third-party script in VS Code"
    assert any(entry.startswith("@jupyter-widgets/controls@") for entry in host["loaded"]), host["loaded"]
    assert page.locator(".vsc-output").get_by_text("demo finished").count() == 1

    # Every widget rendered as a live view, once, and none failed.
    for name in WIDGETS:
        view = page.locator(f".tlkit-{name}")
        assert view.count() == 1, f"expected one rendered {name} widget, found {view.count()}"
        view.first.scroll_into_view_if_needed()
        assert view.first.is_visible(), f"the {name} widget is not visible"
        shoot(page, f"vscode_02_{name}", f".tlkit-{name}")
    assert page.get_by_text("Error displaying widget").count() == 0
    assert host["widgetViews"] == len(WIDGETS)

    answer_quiz_and_tick_rotate(page, prefix="vscode_")

    # Nothing went wrong in the page meanwhile.
    assert page.evaluate("() => window.host.errors") == []
    assert page.evaluate("() => window.host.loadErrors") == []
