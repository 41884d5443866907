"""Any ASGI app served by a real uvicorn on a free 127.0.0.1 port, in a thread with its own event loop."""

from __future__ import annotations

import socket
import sys
import threading
import time
from typing import Any, Literal

import uvicorn
from uvicorn.config import LOGGING_CONFIG


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on at the moment of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def service_command(port: int, *, quiet: bool = False) -> list[str]:
    """The service as a deployment runs it: uvicorn with the app factory, on 127.0.0.1:`port`. `quiet`: warnings
    only, no access log."""
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.app:serve_app"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    return command + (["--log-level", "warning", "--no-access-log"] if quiet else [])


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI HTTP request."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


class UvicornThread:
    """`log_config=None` leaves logging as the test configured it (uvicorn's loggers included)."""

    def __init__(
        self,
        app: Any,
        *,
        lifespan: Literal["auto", "on", "off"] = "off",
        log_config: dict[str, Any] | None = LOGGING_CONFIG,
        log_level: str | None = "warning",
        access_log: bool = False,
        stop_seconds: float = 30.0,
    ) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level=log_level,
            log_config=log_config,
            lifespan=lifespan,
            access_log=access_log,
            timeout_graceful_shutdown=1,
            interface="asgi3",
        )
        self.server = uvicorn.Server(config)
        self._stop_seconds = stop_seconds
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, within: float = 30.0) -> UvicornThread:
        self._thread.start()
        deadline = time.monotonic() + within
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=self._stop_seconds)
        self._sock.close()
