"""What laying out a pass costs as the attempts table grows: the request-hash index that reuse looks requests up
by takes its entries in random order, so the pages one pass writes grow with the history. Prints figures;
asserts nothing.

    .venv/bin/python bench/reuse_index_growth.py [--items 21000] [--history 0,250000,1000000]
                                                 [--database-url sqlite:///...|postgresql://...]

For each history size, on a fresh database at the newest migration: that many earlier attempts (batches of
50,000 items, one pass each, written through the store as a lay-out writes them), then a new batch of
`--items` whose pending attempts are written as a lay-out writes them (groups of 500, one transaction), timed,
first with the schema as it is and then without `ix_attempts_request_hash`. CPU is this process's (SQLite
runs inside it); on PostgreSQL the server's work is not in it. Without the index, reuse could not find
anything: the second figure is what the index costs, not a proposal.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import backend_cpu, drop_postgres, fresh_postgres

from service.models import AttemptStatus, Batch, Chunk, PassKind
from service.store import Database, transaction
from service.store import attempts as attempts_store
from service.store import batches as batches_store
from service.store import chunks as chunks_store
from service.store import passes as passes_store
from service.store.attempts import NewAttempt

HISTORY_BATCH = 50_000
GROUP = 500  # as service/batches/layout.py writes attempts
BODY = b'{"messages":[{"role":"user","content":"x"}]}'
MODEL = "openai/gpt-oss-20b"


def request_hash(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


async def add_batch(database: Database, batch_id: str, items: int) -> list[NewAttempt]:
    """A batch of `items` with a pass and its chunk; the pending attempts a lay-out of it would write."""
    async with transaction(database.workers) as session:
        tiers = [{"model": MODEL, "params": {}}]
        batch = Batch(id=batch_id, tenant="bench", tiers=tiers, item_count=items, pending=items)
        rows = ((f"{batch_id}-{n}", BODY, None, False) for n in range(items))
        await batches_store.insert_batch(session, batch, rows)
        pass_ = await passes_store.insert(session, batch_id, kind=PassKind.PRIMARY, model=MODEL, tier=0)
        assert pass_.id is not None
        chunk = Chunk(batch_id=batch_id, pass_id=pass_.id, chunk_index=0, line_count=items)
        await chunks_store.insert(session, [chunk])
        connection = await session.connection()
        first_item = (
            await connection.execute(text("SELECT min(id) FROM items WHERE batch_id = :b"), {"b": batch_id})
        ).scalar_one()
    pending = [
        NewAttempt(
            item_id=first_item + n,
            pass_id=pass_.id,
            chunk_id=chunk.id,
            tier=0,
            sent_because="first",
            overrides_json=None,
            max_tokens_sent=None,
            reasoning_effort_sent=None,
            request_hash=request_hash(f"{batch_id}-{n}"),
            status=AttemptStatus.PENDING,
        )
        for n in range(items)
    ]
    return pending


async def write_attempts(database: Database, pending: list[NewAttempt]) -> float:
    """The attempts written as a lay-out writes them, in groups in one transaction; this process's CPU seconds."""
    gc.collect()
    started = time.process_time()
    async with transaction(database.workers) as session:
        for start in range(0, len(pending), GROUP):
            await attempts_store.insert_rows(session, pending[start : start + GROUP])
    return time.process_time() - started


def wal_bytes(database_url: str) -> int | None:
    if not database_url.startswith("sqlite"):
        return None
    wal = Path(database_url.split("///", 1)[1] + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def checkpoint(database: Database) -> None:
    if database.worker_engine.dialect.name == "sqlite":
        async with database.worker_engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        async with database.worker_engine.connect() as connection:
            await connection.execute(text("COMMIT"))  # CHECKPOINT cannot run inside a transaction
            await connection.exec_driver_sql("CHECKPOINT")


async def measure(database_url: str, history: int, items: int, server: tuple[str, str] | None = None) -> None:
    """`server`: (admin URL, database name) of a PostgreSQL database, whose backends' CPU is added."""
    database = Database.connect(database_url)
    try:
        await database.migrate()
        for number in range(0, history, HISTORY_BATCH):
            await write_attempts(
                database, await add_batch(database, f"lb_history_{number}", min(HISTORY_BATCH, history - number))
            )
        figures = []
        for label, drop in (("with ix_attempts_request_hash", False), ("without it", True)):
            if drop:
                async with transaction(database.workers) as session:
                    await (await session.connection()).exec_driver_sql("DROP INDEX ix_attempts_request_hash")
            pending = await add_batch(database, f"lb_new_{int(drop)}", items)
            await checkpoint(database)
            before = await backend_cpu(*server) if server else {}
            cpu = await write_attempts(database, pending)
            after = await backend_cpu(*server) if server else {}
            backends = sum(spent - before.get(pid, 0.0) for pid, spent in after.items())
            figures.append((label, cpu, backends, wal_bytes(database_url)))
        for label, cpu, backends, written in figures:
            extra = f", {written / 1e6:6.1f} MB of WAL" if written is not None else f", server {backends:6.3f} s"
            print(f"  {history:>9,} earlier attempts, {label:30}: {cpu:6.3f} s CPU{extra}", flush=True)
    finally:
        await database.dispose()


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def run(args: argparse.Namespace, work: Path) -> None:
    print(f"{args.items:,} new attempts written as a lay-out writes them")
    for history in (int(n) for n in args.history.split(",")):
        if args.database_url and args.database_url.startswith("postgresql"):
            url, name = await fresh_postgres(args.database_url)
            try:
                await measure(url, history, args.items, (args.database_url, name))
            finally:
                await drop_postgres(args.database_url, name)
        else:
            path = work / f"history-{history}.db"
            await measure(f"sqlite:///{path}", history, args.items)
            remove_sqlite_files(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=21_000)
    parser.add_argument("--history", default="0,250000,1000000")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server to create databases on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llm-batch-reuse-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
