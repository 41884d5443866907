"""What every worker step needs, made once in the lifespan (or by `python -m service worker`)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service.pipeline.cost import PriceTable
from service.providers.groq import GroqBatchProvider
from service.settings import Settings


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class WorkerContext:
    sessions: async_sessionmaker[AsyncSession]
    provider: GroqBatchProvider
    settings: Settings
    prices: PriceTable
    worker_id: str = field(default_factory=new_worker_id)
    lease_seconds: float = 30.0

    @property
    def spool_dir(self) -> Path:
        path = Path(self.settings.spool_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def supports_json_schema(self, model: str) -> bool:
        return model in self.settings.json_schema_models
