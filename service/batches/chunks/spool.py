"""A chunk's request lines on disk: written once when its pass is laid out, read when it is sent. A worker on
another host (or after the file changed) builds them again from the items."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import orjson

from service.batches.chunks.context import StepContext
from service.batches.lines import spec_of_pass
from service.kit.spooling import SPOOL_BUFFER_BYTES
from service.models import Batch, Chunk, Pass
from service.pipeline.chunk_names import chunk_key, upload_filename
from service.pipeline.lines import line_id
from service.store import items as items_store


def layout_spool_path(spool_dir: Path, batch_id: str, pass_number: int, chunk_index: int) -> Path:
    return spool_dir / "layout" / upload_filename(chunk_key(batch_id, pass_number, chunk_index))


def discard_layout_spool(spool_dir: Path, batch_id: str, pass_number: int, chunk_index: int) -> None:
    """A chunk given up before it was sent (cancelled, over budget): its lines will never be read."""
    layout_spool_path(spool_dir, batch_id, pass_number, chunk_index).unlink(missing_ok=True)


def discard_batch_spool(spool_dir: Path, batch_id: str, chunk_ids: Iterable[int]) -> int:
    """Every file this host spooled for a batch (laid-out lines, lines built again, results being downloaded),
    when the batch is purged; how many were deleted."""
    paths = [
        *(spool_dir / "layout").glob(f"{batch_id}_pass-*.jsonl"),
        *spool_dir.glob(f"{batch_id}-p*.jsonl"),
        *(path for chunk_id in chunk_ids for path in spool_dir.glob(f"result-{chunk_id}-*.jsonl")),
    ]
    for path in paths:
        path.unlink(missing_ok=True)
    return len(paths)


def _file_digest(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None


async def chunk_lines(ctx: StepContext, batch: Batch, pass_: Pass, chunk: Chunk) -> Path:
    """The chunk's JSONL: the file written when the pass was laid out, when this host has it unchanged;
    otherwise the lines are built again from the items (another host laid the pass out)."""
    laid_out = layout_spool_path(ctx.spool_dir, batch.id, pass_.number, chunk.chunk_index)
    if chunk.spool_sha256 is not None and _file_digest(laid_out) == chunk.spool_sha256:
        return laid_out
    assert chunk.id is not None
    name = f"{batch.id}-p{pass_.number}-c{chunk.chunk_index}-{ctx.worker_id.replace(':', '_')}.jsonl"
    path = ctx.spool_dir / name
    spec = spec_of_pass(ctx.config, batch, pass_)
    async with ctx.sessions() as session:
        with path.open("wb", buffering=SPOOL_BUFFER_BYTES) as handle:
            async for item_id, custom_id, body_json, overrides in items_store.stream_for_chunk(session, chunk.id):
                line = line_id(spec.entry, custom_id, item_id)
                handle.write(spec.build(line, orjson.loads(body_json), orjson.loads(overrides or "null")).line)
    return path
