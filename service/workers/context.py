"""What every worker step needs, made once in the lifespan (or by `python -m service worker`). It is the
`StepContext` the lifecycle's chunk steps ask for (`service/batches/chunks/context.py`)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from service.batches.config import LifecycleConfig
from service.providers.protocol import Providers
from service.settings import Settings
from service.store import Sessions


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class WorkerContext:
    sessions: Sessions  # the workers' own pool: never shared with the API's requests
    providers: Providers
    config: LifecycleConfig
    worker_id: str = field(default_factory=new_worker_id)
    lease_seconds: float = 30.0
    # Set to end this process's workers' idle wait at once (a submission, a finished pass: there is a next step).
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self.wakeup.set()

    @classmethod
    def build(
        cls, settings: Settings, sessions: Sessions, providers: Providers, *, worker_id: str | None = None
    ) -> WorkerContext:
        ctx = cls(
            sessions=sessions,
            providers=providers,
            config=LifecycleConfig.from_settings(settings),
            lease_seconds=settings.worker_lease_seconds,
        )
        if worker_id is not None:
            ctx.worker_id = worker_id
        return ctx

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def spool_dir(self) -> Path:
        path = Path(self.settings.spool_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
