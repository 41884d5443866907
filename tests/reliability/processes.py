"""Real processes for crash and signal tests: the emulator, API replicas and workers, each with its own log,
all on loopback, none outliving the test that started it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from service.settings import Settings
from tests.loopback import free_port, service_command

REPO = Path(__file__).resolve().parents[2]


def service_env(database_url: str, groq_base_url: str, spool_dir: Path, **overrides: Any) -> dict[str, str]:
    """The environment of a service process: our variables only (none leaks in from the test runner's)."""
    env = {key: value for key, value in os.environ.items() if key.lower() not in Settings.model_fields}
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "GROQ_BASE_URL": groq_base_url,
        "GROQ_API_KEY": "any",
        "GROQ_TIMEOUT_SECONDS": 30,
        "POLL_INTERVAL_SECONDS": 0.2,
        "WORKER_IDLE_SECONDS": 0.1,
        "WORKER_LEASE_SECONDS": 2,
        "SPOOL_DIR": spool_dir,
        "LOG_FORMAT": "text",
    }
    values.update(overrides)
    env.update({key.upper(): str(value) for key, value in values.items()})
    return env


class Process:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.popen = subprocess.Popen(
            args, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def kill(self) -> None:
        self.send(signal.SIGKILL)
        self.popen.wait(timeout=10)

    async def wait(self, within: float) -> int:
        """The exit code; AssertionError if the process is still running after `within` seconds."""
        deadline = time.monotonic() + within
        while self.popen.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} still running after {within}s; log:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.05)
        return self.popen.returncode

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.popen.poll() is None:
            self.send(signal.SIGCONT)  # a stopped process cannot die of SIGKILL until it runs again
            self.kill()
        self._log.close()


class Processes:
    """Starts the processes of one test; `close()` kills whatever is still running."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(name, args, env if env is not None else dict(os.environ), self.log_dir / f"{name}.log")
        self.started.append(process)
        return process

    async def emulator(self, *, gated: bool = False, **timings: float) -> str:
        """Start the emulator on a free port (the gated one for tests that hold responses); its base URL."""
        port = free_port()
        module = "tests.reliability.gated_emulator" if gated else "groq_emulator"
        args = [sys.executable, "-m", module, "--port", str(port), "--seed", "7"]
        defaults: dict[str, float | str] = {
            "validating_seconds": 0.05,
            "processing_seconds": 0.3,
            "finalizing_seconds": 0.05,
        }
        if not gated:
            defaults |= {"time_scale": 1.0, "cancel_seconds": 0.1, "log_level": "warning"}
        for key, value in (defaults | timings).items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        process = self.start(f"emulator-{port}", args)
        url = f"http://127.0.0.1:{port}"
        await wait_for_http(f"{url}/_emulator/faults", process)
        return url

    async def standin(self, module: str = "tests.standin_provider", **options: Any) -> str:
        """Start an independent provider stand-in (tests/standin_provider.py: Groq's or OpenAI's wire,
        tests/standin_anthropic.py: Anthropic's) on a free port; its base URL."""
        port = free_port()
        args = [sys.executable, "-m", module, "--port", str(port)]
        for key, value in options.items():
            flag = f"--{key.replace('_', '-')}"
            args += [flag] if value is True else [flag, str(value)]
        process = self.start(f"{module.rsplit('.', 1)[-1]}-{port}", args)
        url = f"http://127.0.0.1:{port}"
        await wait_for_http(f"{url}/_bill", process)
        return url

    def worker(self, name: str, env: dict[str, str]) -> Process:
        return self.start(name, [sys.executable, "-m", "service", "worker"], env)

    async def api(self, name: str, env: dict[str, str], *, workers: bool = False, port: int | None = None) -> str:
        """An API replica (with its workers in the same process when `workers`); its base URL."""
        port = port or free_port()
        process = self.start(name, service_command(port), {**env, "WORKERS_ENABLED": str(workers).lower()})
        url = f"http://127.0.0.1:{port}"
        await wait_for_http(f"{url}/healthz", process, within=60)
        return url

    def close(self) -> None:
        for process in reversed(self.started):
            process.close()


async def stop_cleanly(*processes: Process) -> None:
    """SIGTERM to every one at once; each must then drain and exit 0 within 30 s."""
    for process in processes:
        process.send(signal.SIGTERM)
    for process in processes:
        assert await process.wait(30) == 0, process.log()[-3000:]


async def wait_for_http(url: str, process: Process, *, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{process.name} did not answer on {url}; log:\n{process.log()[-3000:]}")
            await asyncio.sleep(0.05)
