"""The widgets in a real JupyterLab, in a real (headless) Chromium, driven by Playwright.

What a headless test cannot see: whether the views render at all in the browser ("Error
displaying widget", "Loading widget..."), whether clicks reach the kernel, and whether updates
made from a training thread reach the page. This test starts JupyterLab on 127.0.0.1 with a token,
opens tests/notebooks/widgets_demo.ipynb (a copy), runs all cells, checks every widget rendered,
then operates them: answers a quiz question, ticks an augmentation, presses Run, and presses Stop
during a run. A second test runs the same demo in Notebook 7 (the classic-looking interface built on
JupyterLab's parts) and answers a quiz question there. Screenshots and the server logs go to
test-artifacts/browser/ (git ignores it). VS Code itself cannot be driven here; tests/test_vscode_widgets.py
runs the same demo through the ipywidgets 8 widget manager that VS Code's Jupyter extension loads.

It needs Playwright (``pip install playwright``, in the [test] extra) and a Chromium; Playwright's
own browser download is not used. .ci/run installs Debian's ``chromium``; elsewhere point
``TLKIT_CHROMIUM`` at any Chromium or Chrome binary. Without them the test is skipped, saying so.
"""
from __future__ import annotations

import shutil

import pytest

from _browser_helpers import (ARTIFACTS, CHROMIUM_FLAGS, DEMO, RUN_ALL_SECONDS, WIDGETS, answer_quiz_and_tick_rotate,
                              browser_tools, serve_jupyter, shoot)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    # expose_app_in_browser lets the test call the app's commands (run all cells) as a menu would
    yield from serve_jupyter(tmp_path_factory, "jupyterlab", ("--LabApp.expose_app_in_browser=True",))


@pytest.fixture(scope="module")
def playwright():
    """One Playwright for the module (a second one cannot start while the first runs)."""
    sync_api, chromium = browser_tools()
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    with sync_api.sync_playwright() as pw:
        yield pw, chromium


@pytest.fixture(scope="module")
def page(playwright, lab):
    pw, chromium = playwright
    console: list[str] = []
    # A persistent context on a fresh folder: Playwright refuses --user-data-dir in args.
    context = pw.chromium.launch_persistent_context(
        str(lab["log"].parent / "chromium-profile"), executable_path=chromium, headless=True,
        args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        (ARTIFACTS / "console.txt").write_text("\n".join(console))
        context.close()


@pytest.mark.slow
def test_widgets_render_and_respond_in_jupyterlab(page, lab):
    page.goto(f"{lab['url']}/lab/tree/{DEMO.name}?token={lab['token']}")
    page.wait_for_function(  # the notebook is open and its kernel has started
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.connectionStatus === 'connected'; }", timeout=180_000)
    # Before running, JupyterLab shows the stored fallbacks (widget views are stripped on save).
    stored = page.locator(".jp-OutputArea-output").get_by_text("Learning-rate explorer — 1 run(s) so far.")
    stored.wait_for()
    stored.scroll_into_view_if_needed()
    shoot(page, "00_stored_fallback")
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.locator(".jp-OutputArea-output").get_by_text("demo finished").wait_for(timeout=RUN_ALL_SECONDS * 1000)
    shoot(page, "01_ran_all")

    # Every widget rendered as a live view, and none failed.
    for name in WIDGETS:
        view = page.locator(f".tlkit-{name}")
        view.first.wait_for(state="visible")
        assert view.count() == 1, f"expected one rendered {name} widget, found {view.count()}"
        view.first.scroll_into_view_if_needed()
        shoot(page, f"02_{name}", f".tlkit-{name}")
    assert page.get_by_text("Error displaying widget").count() == 0
    assert page.get_by_text("Loading widget").count() == 0

    answer_quiz_and_tick_rotate(page)

    # Type a sentence into the text explorer and press Enter: the prediction follows what was typed.
    text = page.locator(".tlkit-text")
    text.scroll_into_view_if_needed()
    box = text.locator("input[type='text']")
    box.fill("my car needs new tires and an oil change")
    box.press("Enter")
    text.get_by_text("Prediction: cars").wait_for()
    shoot(page, "04b_text_explorer", ".tlkit-text")

    # Move a slider with the keyboard, press Run: training runs in a thread and the table grows.
    overfit = page.locator(".tlkit-overfitting")
    overfit.scroll_into_view_if_needed()
    rows = overfit.locator("table.tlkit-results tbody tr")
    assert rows.count() == 1
    handle = overfit.locator(".widget-slider").first.locator(".noUi-handle")  # "images per class"
    handle.focus()
    handle.press("End")  # the largest value, like dragging the handle to the right
    overfit.locator("button[title^='Run with']").click()
    rows.nth(1).wait_for(timeout=RUN_ALL_SECONDS * 1000)
    overfit.get_by_text("Done: run 2").wait_for()
    assert rows.nth(1).locator("td").nth(1).text_content() == "4"  # images per class: the slider's maximum
    shoot(page, "05_overfitting_second_run", ".tlkit-overfitting")

    # Stop during a run: the run ends as "interrupted" and the widget is ready for the next one.
    freezing = page.locator(".tlkit-freezing")
    freezing.scroll_into_view_if_needed()
    # Long enough to stop in the middle: 10 epochs with every part training (head-only epochs on
    # these 16 images take a fraction of a second, and a run could end before Stop is clicked).
    for name in ("epochs", "parts trained"):
        handle = freezing.locator(".widget-slider").filter(has_text=name).locator(".noUi-handle")
        handle.focus()
        handle.press("End")
    run = freezing.locator("button[title^='Run with']")
    stop = freezing.locator("button[title^='Stop after']")
    run.click()
    page.wait_for_function("() => !document.querySelector(\".tlkit-freezing button[title^='Stop after']\").disabled")
    freezing.locator("table.tlkit-results tbody tr").nth(1).wait_for()  # the first live epoch is drawn
    stop.click()
    freezing.get_by_text("Stopped: run 2").wait_for(timeout=120_000)
    assert "interrupted" in freezing.locator("table.tlkit-results tbody tr").nth(1).text_content()
    assert run.is_enabled()
    assert not stop.is_enabled()
    shoot(page, "06_freezing_stopped", ".tlkit-freezing")


def test_a_static_html_export_shows_the_fallback_pictures(playwright, tmp_path):
    """What GitHub or an HTML export shows: the stored notebook has no widget views, only fallbacks."""
    pw, chromium = playwright
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(DEMO, as_version=4))
    page_file = tmp_path / "widgets_demo.html"
    page_file.write_text(body, encoding="utf-8")
    browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(page_file.as_uri())
        for text in ("Learning-rate explorer — 1 run(s) so far.", "Overfitting explorer — 1 run(s) so far.",
                     "Freezing explorer — 1 run(s) so far.", "Quiz: Freezing and fine-tuning", "Prediction explorer"):
            assert page.get_by_text(text).count() >= 1, f"{text!r} is missing from the static page"
        assert page.get_by_text("Loading widget").count() == 0
        assert page.get_by_text("Error displaying widget").count() == 0
        sizes = page.eval_on_selector_all("img[src^='data:image']", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(sizes) >= 5 and min(sizes) > 100, f"fallback pictures did not load: {sizes}"
        page.screenshot(path=str(ARTIFACTS / "07_static_html_export.png"), full_page=True)
    finally:
        browser.close()


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    pytest.importorskip("notebook", minversion="7", reason="Jupyter Notebook 7 is not installed (the [course] extra has it)")
    yield from serve_jupyter(tmp_path_factory, "notebook", ("--JupyterNotebookApp.expose_app_in_browser=True",))


@pytest.mark.slow
def test_widgets_render_and_respond_in_notebook_7(playwright, notebook7):
    """The same demo in the classic-looking Notebook 7: every widget renders, and one responds."""
    pw, chromium = playwright
    context = pw.chromium.launch_persistent_context(
        str(notebook7["log"].parent / "chromium-profile"), executable_path=chromium, headless=True,
        args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{notebook7['url']}/notebooks/{DEMO.name}?token={notebook7['token']}")
        page.wait_for_function(  # the notebook is open and its kernel has started
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.connectionStatus === 'connected'; }", timeout=180_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.locator(".jp-OutputArea-output").get_by_text("demo finished").wait_for(timeout=RUN_ALL_SECONDS * 1000)
        for name in WIDGETS:
            view = page.locator(f".tlkit-{name}")
            view.first.scroll_into_view_if_needed()
            view.first.wait_for(state="visible")
            assert view.count() == 1, f"expected one rendered {name} widget in Notebook 7, found {view.count()}"
        assert page.get_by_text("Error displaying widget").count() == 0
        assert page.get_by_text("Loading widget").count() == 0
        page.screenshot(path=str(ARTIFACTS / "08_notebook7_ran_all.png"))
        # A click in the page reaches the kernel and the verdict comes back.
        q2 = page.locator(".tlkit-quiz .tlkit-question-q2")
        q2.scroll_into_view_if_needed()
        q2.get_by_role("button", name="a", exact=True).click()
        q2.get_by_role("button", name="Check").click()
        q2.get_by_text("Not yet:").wait_for()
        q2.screenshot(path=str(ARTIFACTS / "09_notebook7_quiz_answered.png"))
    finally:
        context.close()
