"""What a test reads while real processes work: the database they share and the emulator they call."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from sqlalchemy import text
from sqlmodel import col, select

from service.models import Attempt, Batch, Chunk, Item, WorkerHeartbeat
from service.store.database import create_engine, session_factory

T = TypeVar("T")


class Database:
    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url)
        self.sessions = session_factory(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def chunks(self) -> list[Chunk]:
        async with self.sessions() as session:
            return list((await session.exec(select(Chunk).order_by(col(Chunk.id)))).all())

    async def held_leases(self) -> list[tuple[str, str, str]]:
        """(table, row id, owner) of every lease still held."""
        held: list[tuple[str, str, str]] = []
        async with self.sessions() as session:
            for row_id, owner in await session.execute(
                select(Batch.id, Batch.lease_owner).where(col(Batch.lease_owner).is_not(None))
            ):
                held.append(("batches", str(row_id), str(owner)))
            for row_id, owner in await session.execute(
                select(Chunk.id, Chunk.lease_owner).where(col(Chunk.lease_owner).is_not(None))
            ):
                held.append(("provider_batches", str(row_id), str(owner)))
        return held

    async def worker_id(self, pid: int) -> str | None:
        async with self.sessions() as session:
            return (await session.exec(select(WorkerHeartbeat.worker_id).where(WorkerHeartbeat.pid == pid))).first()

    async def workers(self) -> list[WorkerHeartbeat]:
        async with self.sessions() as session:
            return list((await session.exec(select(WorkerHeartbeat))).all())

    async def attempts(self) -> list[Attempt]:
        async with self.sessions() as session:
            return list((await session.exec(select(Attempt).order_by(col(Attempt.id)))).all())

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the work tables (worker presence left out): equal snapshots, nothing changed."""
        tables = {"batches": Batch, "items": Item, "provider_batches": Chunk, "attempts": Attempt}
        snapshot: dict[str, list[tuple[Any, ...]]] = {}
        async with self.sessions() as session:
            for name, model in tables.items():
                columns = list(model.__table__.columns)  # type: ignore[attr-defined]
                rows = await session.execute(select(*columns).order_by(columns[0]))
                snapshot[name] = [tuple(row) for row in rows]
        return snapshot

    async def scalar(self, sql: str) -> Any:
        async with self.sessions() as session:
            return (await session.execute(text(sql))).scalar()


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], *, within: float, what: str, poll: float = 0.05
) -> T:
    """Probe until `accept(value)`; the last value. AssertionError after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within}s (last: {value!r})")
        await asyncio.sleep(poll)


class EmulatorClient:
    """The emulator's control and inspection routes, plus its Files API, over HTTP. `prefix`: where a provider's
    emulator is mounted in the gated process (tests/reliability/gated_emulator.py), "" for Groq's."""

    def __init__(self, base_url: str, prefix: str = "") -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=10, headers={"Authorization": "Bearer any"})
        self.prefix = prefix

    async def close(self) -> None:
        await self.client.aclose()

    async def set_faults(self, **faults: float) -> None:
        (await self.client.post(f"{self.prefix}/_emulator/faults", json=faults)).raise_for_status()

    async def batches(self) -> list[dict[str, Any]]:
        response = await self.client.get(f"{self.prefix}/_emulator/batches")
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    async def batches_per_chunk(self) -> Counter[str]:
        return Counter((batch.get("metadata") or {}).get("llm_batch_chunk", "?") for batch in await self.batches())

    async def files(self) -> list[dict[str, Any]]:
        response = await self.client.get("/openai/v1/files")
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    async def requests_made(self) -> int:
        response = await self.client.get(f"{self.prefix}/_emulator/requests")
        response.raise_for_status()
        return len(response.json()["data"])

    async def arm_gate(self, method: str, path: str, count: int = 1) -> None:
        (await self.client.post("/_gate", json={"method": method, "path": path, "count": count})).raise_for_status()

    async def held(self) -> list[dict[str, Any]]:
        response = await self.client.get("/_gate")
        response.raise_for_status()
        held: list[dict[str, Any]] = response.json()["held"]
        return held
