from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.live_server import LiveService, start_live_service
from tests.payloads import pr_batch

LiveServiceFactory = Callable[..., LiveService]


@pytest.fixture
def live_service_factory(tmp_path: Path) -> Iterator[LiveServiceFactory]:
    """live_service_factory(emulator_config=..., **settings) -> a LiveService on its own SQLite file."""
    started: list[LiveService] = []

    def start(**kwargs: Any) -> LiveService:
        directory = tmp_path / f"service-{len(started)}"
        directory.mkdir()
        service = start_live_service(f"sqlite:///{directory}/llm_batch.db", directory, **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.server.stop()


@pytest.fixture
def live_service(live_service_factory: LiveServiceFactory) -> LiveService:
    return live_service_factory()


def write_items(path: Path, count: int, *, start: int = 1) -> Path:
    with path.open("w") as handle:
        for item in pr_batch(count, start=start)["items"]:
            handle.write(json.dumps(item) + "\n")
    return path


def write_params(path: Path) -> Path:
    path.write_text(json.dumps(pr_batch(1)["params"]))
    return path
