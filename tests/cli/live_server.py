"""The app served by a real uvicorn on a free loopback port, in a thread, with its workers on the emulator:
what the CLI, a browser and a log collector meet in production."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from service.app import create_app
from service.emulator import Emulator, EmulatorConfig, create_emulator_app
from service.settings import Settings
from tests.conftest import fast_emulator_config, test_settings

STARTUP_SECONDS = 30.0
SHUTDOWN_SECONDS = 40.0


class LiveServer:
    """``log_config=None`` leaves logging as the test configured it (uvicorn's loggers included)."""

    def __init__(self, app: Any, *, log_config: dict[str, Any] | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on", log_config=log_config)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(SHUTDOWN_SECONDS)
        self.sock.close()


@dataclass
class LiveService:
    url: str
    settings: Settings
    emulator: Emulator
    server: LiveServer


def start_live_service(
    database_url: str,
    tmp_path: Path,
    *,
    emulator_config: EmulatorConfig | None = None,
    log_config: dict[str, Any] | None = None,
    **overrides: Any,
) -> LiveService:
    settings = test_settings(database_url, tmp_path, **overrides)
    emulator = Emulator(emulator_config or fast_emulator_config())
    app = create_app(settings, emulator=create_emulator_app(emulator=emulator))
    server = LiveServer(app, log_config=log_config).start()
    return LiveService(server.url, settings, emulator, server)
