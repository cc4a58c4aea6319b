"""What the real-browser tests share (tests/test_browser.py, tests/test_vscode_widgets.py).

A Chromium found on this machine (Playwright's own browser download is not used), a Jupyter server
on 127.0.0.1 with a token and its own settings, and the demo notebook those tests run.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tests" / "notebooks" / "widgets_demo.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
WIDGETS = ("quiz", "augmentation", "overfitting", "lr", "freezing", "predictions", "text")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"]
RUN_ALL_SECONDS = 600  # the demo takes ~30 s on an idle 2-core laptop; CI machines can be much busier


def find_chromium() -> str | None:
    candidates = [os.environ.get("TLKIT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing(reason: str) -> None:
    """A prerequisite is missing: skip, saying why; under CI (env CI set), fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests, but: {reason}")
    pytest.skip(reason)


def browser_tools():
    """Playwright's sync API and a Chromium executable, or skip (fail under CI) saying what is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed: pip install playwright (the [test] extra has it)")
    chromium = find_chromium()
    if chromium is None:
        missing("No Chromium found (/usr/bin/chromium, PATH, or TLKIT_CHROMIUM): apt-get install chromium "
                "(.ci/run does this)")
    return sync_api, chromium


def serve_jupyter(tmp_path_factory, app: str, extra_args: tuple[str, ...] = ()):
    """A Jupyter server (``python -m APP``: ``jupyterlab``, ``notebook``, ``jupyter_server``) on 127.0.0.1 with a token.

    It gets its own settings (no news popup) and a copy of the demo notebook in its root folder;
    yields its URL, token and log, stops it afterwards and copies the log to ARTIFACTS.
    """
    home = tmp_path_factory.mktemp(app)
    (home / "notebooks").mkdir()
    shutil.copy(DEMO, home / "notebooks" / DEMO.name)  # the browser saves it: never touch the repository's copy
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # the news popup can cover widgets
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, TLKIT_OFFLINE="1", JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"))
    log_path = home / f"{app}.log"
    command = [sys.executable, "-m", app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={home / 'notebooks'}", *extra_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers often run as root
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start:\n" + log_path.read_text()[-3000:]) from None
                time.sleep(0.5)
        yield {"url": url, "token": token, "log": log_path}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / log_path.name)


def shoot(page, name: str, selector: str | None = None) -> None:
    """A screenshot of the page (or of the first element matching ``selector``) into ARTIFACTS."""
    target = page.locator(selector).first if selector else page
    target.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def answer_quiz_and_tick_rotate(page, prefix: str = "") -> None:
    """What every front end must let a learner do with the demo's live widgets.

    The check cell answered q1 from code after the quiz was shown: the view must have followed.
    A learner then answers q2 in the page (the verdict comes back from the kernel), and ticking an
    augmentation redraws the grid (a new picture arrives as a binary comm buffer).
    """
    quiz = page.locator(".tlkit-quiz")
    quiz.scroll_into_view_if_needed()  # JupyterLab skips rendering cells out of view
    assert "Right." in quiz.locator(".tlkit-question-q1").text_content()
    q2 = quiz.locator(".tlkit-question-q2")
    q2.get_by_role("button", name="a", exact=True).click()
    q2.get_by_role("button", name="Check").click()
    q2.get_by_text("Not yet:").wait_for()
    q2.get_by_role("button", name="b", exact=True).click()
    q2.get_by_role("button", name="Check").click()
    q2.get_by_text("Right.").wait_for()
    assert "Score: 3 of 4 right" in quiz.text_content()  # q1 and q4 from code, q2 here
    shoot(page, f"{prefix}03_quiz_answered", ".tlkit-quiz")

    augment = page.locator(".tlkit-augmentation")
    augment.scroll_into_view_if_needed()
    before = augment.locator("img").get_attribute("src")
    augment.get_by_role("checkbox", name="rotate").check()
    page.wait_for_function("(old) => { const img = document.querySelector('.tlkit-augmentation img');"
                           " return img && img.src !== old; }", arg=before)
    assert "rotate" in augment.text_content()
    shoot(page, f"{prefix}04_augmentation_rotate", ".tlkit-augmentation")
