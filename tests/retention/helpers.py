"""What the deletion tests look for: a unique word in the requests (which the emulator's answers echo), and every
place it could still be (the API, the database's rows and files, the spool directory, the provider's files)."""

from __future__ import annotations

import asyncio
import secrets
import string
from pathlib import Path
from typing import Any

from sqlalchemy import text

from service.store.database import create_engine
from tests.conftest import Service
from tests.payloads import pr_batch

# Every text column a request, an answer or an error could be written to.
TEXT_COLUMNS = {
    "item_bodies": ("body_json",),
    "items": ("metadata_json", "next_overrides_json", "error_message"),
    "attempts": ("content", "output_json", "error_message", "overrides_json"),
    "batches": ("params", "output_schema", "user_metadata"),
    "provider_batches": ("last_error", "provider_errors"),
    "webhook_deliveries": ("payload",),
    "idempotency_keys": ("response_body",),
}


def new_marker() -> str:
    """A word of lowercase letters the emulator's answers pick up from the prompt, found nowhere else."""
    return "qx" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(11))


def secret_batch(count: int, marker: str, **extra: Any) -> dict[str, Any]:
    """`count` items whose prompt (and metadata) carry `marker`: the answers' summaries are made of its words."""
    payload = pr_batch(count, strict=False, **extra)
    for number, item in enumerate(payload["items"], start=1):
        item["body"]["messages"] = [{"role": "user", "content": f"{marker} {marker} {marker} (PR {number})"}]
        item["metadata"] = {"note": marker}
    return payload


async def rows_mentioning(database_url: str, marker: str) -> dict[str, int]:
    """Rows per table whose text columns contain `marker` (a query: on PostgreSQL too)."""
    engine = create_engine(database_url)
    found: dict[str, int] = {}
    try:
        async with engine.connect() as connection:
            for table, columns in TEXT_COLUMNS.items():
                where = " OR ".join(f"CAST({column} AS TEXT) LIKE :pattern" for column in columns)
                count = (
                    await connection.execute(
                        text(f"SELECT COUNT(*) FROM {table} WHERE {where}"), {"pattern": f"%{marker}%"}
                    )
                ).scalar_one()
                if count:
                    found[table] = int(count)
    finally:
        await engine.dispose()
    return found


def database_files(database_url: str) -> list[Path]:
    path = Path(database_url.split("///", 1)[1])
    return [candidate for candidate in (path, Path(f"{path}-wal")) if candidate.exists()]


def files_mentioning(paths: list[Path], marker: str) -> list[str]:
    return [str(path) for path in paths if marker.encode() in path.read_bytes()]


def spool_files(service: Service, batch_id: str, marker: str) -> list[str]:
    """Files in the spool directory named after the batch or holding the marker."""
    spool = Path(service.settings.spool_dir)
    files = [path for path in spool.rglob("*") if path.is_file()]
    return [str(path) for path in files if batch_id in path.name or marker.encode() in path.read_bytes()]


def provider_files_mentioning(service: Service, marker: str) -> list[str]:
    return [file_id for file_id, stored in service.emulator.files.items() if marker.encode() in stored.content]


async def wait_purged(service: Service, batch_id: str, *, within: float = 30.0, **headers: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        body: dict[str, Any] = (await service.client.get(f"/batches/{batch_id}", headers=headers)).json()
        if body.get("purged_at"):
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"batch {batch_id} not purged after {within}s: {body}")
        await asyncio.sleep(0.05)
