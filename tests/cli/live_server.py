"""The app served by a real uvicorn on a free loopback port, in a thread, with its workers on the emulator:
what the CLI, a browser and a log collector meet in production."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groq_emulator import Emulator, EmulatorConfig, create_emulator_app
from service.app import create_app
from service.settings import Settings
from tests.conftest import fast_emulator_config, test_settings
from tests.loopback import UvicornThread

STARTUP_SECONDS = 30.0
SHUTDOWN_SECONDS = 40.0


class LiveServer(UvicornThread):
    """The app with its lifespan (workers included); ``log_config=None`` leaves logging as the test set it."""

    def __init__(self, app: Any, *, log_config: dict[str, Any] | None = None) -> None:
        super().__init__(
            app, lifespan="on", log_config=log_config, log_level=None, access_log=True, stop_seconds=SHUTDOWN_SECONDS
        )

    @property
    def url(self) -> str:
        return self.base_url

    def start(self, within: float = STARTUP_SECONDS) -> LiveServer:
        super().start(within)
        return self


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
