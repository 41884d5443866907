"""The status page in headless Chromium (Debian's package, driven directly: no browser download is possible),
served by a real uvicorn on loopback: a finished two-pass batch and one whose fallback pass is running.
Screenshots go to tests/artifacts/ui/ (gitignored); their paths are printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from groq_emulator import ManualClock
from tests.cli.live_server import LiveService, start_live_service
from tests.conftest import fast_emulator_config
from tests.payloads import pr_batch

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "ui"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
CHROMIUM_TIMEOUT_SECONDS = 90
WAIT_SECONDS = 60.0


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but chromium is not installed (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed: apt-get update && apt-get install -y chromium")
    return found


class Browser:
    def __init__(self, executable: str, profile: Path) -> None:
        self.executable = executable
        self.profile = profile

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_SECONDS, check=False)

    def dom(self, url: str) -> str:
        done = self._run("--dump-dom", url)
        assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
        return done.stdout

    def screenshot(self, url: str, path: Path, size: str = "1280,1400") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        done = self._run(f"--screenshot={path}", f"--window-size={size}", url)
        assert done.returncode == 0 and path.exists() and path.stat().st_size > 10_000, done.stderr[-2000:]
        return path


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Browser:
    return Browser(chromium, tmp_path / "chromium-profile")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[LiveService, ManualClock]]:
    """The emulator's clock stands still until the test moves it, so a batch can be caught mid-pass."""
    clock = ManualClock()
    config = fast_emulator_config(clock=clock, processing_seconds=10.0, validating_seconds=0.5)
    live = start_live_service(f"sqlite:///{tmp_path}/llm_batch.db", tmp_path, emulator_config=config)
    yield live, clock
    live.server.stop()


def advance_until(
    client: httpx.Client, clock: ManualClock, batch_id: str, step: float, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        summary: dict[str, Any] = client.get(f"/batches/{batch_id}").json()
        if done(summary):
            return summary
        assert time.monotonic() < deadline, f"batch {batch_id} is stuck: {summary}"
        clock.advance(step)
        time.sleep(0.05)


def fallback_half_done(summary: dict[str, Any]) -> bool:
    if len(summary["passes"]) < 2:
        return False
    chunks = summary["passes"][1]["provider_batches"]
    return bool(chunks) and chunks[0]["status"] == "in_progress" and chunks[0]["request_counts"]["completed"] > 0


def test_chromium_renders_a_finished_and_a_running_batch(
    browser: Browser, service: tuple[LiveService, ManualClock], capsys: pytest.CaptureFixture[str]
) -> None:
    live, clock = service
    with httpx.Client(base_url=live.url, timeout=30) as client:
        finished_id = client.post("/batches?fallback=true", json=pr_batch(200, strict=False)).json()["id"]
        finished = advance_until(client, clock, finished_id, 1.0, lambda s: s["status"] == "completed")
        running_id = client.post("/batches?fallback=true", json=pr_batch(120, start=1000, strict=False)).json()["id"]
        running = advance_until(client, clock, running_id, 0.5, fallback_half_done)

        dom = browser.dom(f"{live.url}/ui/batches/{finished_id}")
        assert 'id="batch-status">completed<' in dom
        assert len(re.findall(r'class="card pass"', dom)) == len(finished["passes"]) >= 2
        assert f"${finished['cost']['usd']:,.6f}" in dom
        assert 'http-equiv="refresh"' not in dom
        assert dom.count('data-kind="failed"') >= 1, "pass 1's failures by reason"

        dom = browser.dom(f"{live.url}/ui/batches/{running_id}")
        assert 'id="batch-status">running<' in dom
        assert '<meta http-equiv="refresh" content="2">' in dom
        assert 'data-kind="pending"' in dom, "the fallback pass is still pending"
        fallback = running["passes"][1]["provider_batches"][0]
        assert fallback["id"] in dom and "badge in_progress" in dom

        listing = browser.dom(f"{live.url}/ui")
        assert finished_id in listing and running_id in listing

        shots = [
            browser.screenshot(f"{live.url}/ui/batches/{running_id}", ARTIFACTS / "batch-running.png"),
            browser.screenshot(f"{live.url}/ui/batches/{finished_id}", ARTIFACTS / "batch-finished.png"),
            browser.screenshot(f"{live.url}/ui", ARTIFACTS / "batches.png", size="1280,600"),
        ]
    with capsys.disabled():
        for shot in shots:
            print(f"\nstatus page screenshot: {shot}")
