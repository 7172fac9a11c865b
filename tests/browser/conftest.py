"""Fixtures that drive the real app: one `streamlit run app.py` server and one headless Chromium.

Both are session-scoped (a cold start costs a model load and a forward pass) and always shut
down. The browser is Debian's Chromium at /usr/bin/chromium, never a Playwright download; the
tests skip, saying so, where it is missing. The server's log and the screenshots go to
tests/browser/artifacts/ (git-ignored), which CI can keep on failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
HEALTH_TIMEOUT_S = 60
VIEWPORT = {"width": 1400, "height": 1800}  # tall enough for the frame, the strip and the metrics


@dataclass
class AppServer:
    """A running `streamlit run app.py`: its url, when it was launched, and where it logs.

    The app opens on the hover view (its default); ``SERVER_VIEW`` appended to a page's address
    opens the server-drawn strip, which the tests of the older page parts read."""

    url: str
    log: Path
    launched: float  # time.monotonic() when the process was started
    healthy_after_s: float  # launch -> /_stcore/health answered
    first_view_s: float | None = None  # launch -> first attention view in a browser (Chromium start included)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium; "
                    "`make browser-deps`); never `playwright install`")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def app_server(artifacts) -> AppServer:
    """`streamlit run app.py` on a free port of 127.0.0.1, healthy, terminated at the end."""
    _need_chromium()
    port = _free_port()
    log = artifacts / "streamlit.log"
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py",
           "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
           "--browser.gatherUsageStats", "false",
           # no file watcher: it would watch the whole checkout (the venv too) for nothing
           "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NLVIZ_VIEW": "hover"}  # the app's default: the hover view
    with open(log, "w") as out:
        launched = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = launched + HEALTH_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode} before it was healthy; log:\n"
                            + AppServer(url, log, launched, 0).log_tail())
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy after {HEALTH_TIMEOUT_S} s; log:\n"
                            + AppServer(url, log, launched, 0).log_tail())
            time.sleep(0.25)
        server = AppServer(url, log, launched, time.monotonic() - launched)
        print(f"\n[browser] streamlit healthy after {server.healthy_after_s:.1f} s at {url}")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (sync API)."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser):
    """A factory of pages, each in its own browser context (its own Streamlit session); all closed after."""
    contexts = []

    def make(viewport: dict | None = None):
        context = browser.new_context(viewport=viewport or VIEWPORT)
        context.set_default_timeout(60_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
