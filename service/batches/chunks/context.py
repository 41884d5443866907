"""What a chunk's step needs from whoever runs it: the database, the providers, the configuration, and who holds
the lease. The workers' context is one (`service/workers/context.py`); a test can build its own."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from service.batches.config import LifecycleConfig
from service.models import Pass
from service.providers.protocol import BatchProvider, Providers
from service.settings import Settings
from service.store import Sessions


class StepContext(Protocol):
    sessions: Sessions
    providers: Providers
    config: LifecycleConfig
    worker_id: str
    lease_seconds: float

    def wake(self) -> None:
        """Something committed that the workers should act on now (a batch may start its next round)."""
        ...

    @property
    def settings(self) -> Settings: ...

    @property
    def spool_dir(self) -> Path: ...


def provider_of(ctx: StepContext, pass_: Pass) -> BatchProvider:
    """The provider that runs the chunks of `pass_`."""
    return ctx.providers.get(pass_.provider)
