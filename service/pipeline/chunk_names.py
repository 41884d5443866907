"""How a chunk is named on Groq: its key in the provider batch's metadata and in its input file's name, so a
worker taking over a dead one's chunk can find what it already created."""

from __future__ import annotations

CHUNK_METADATA_KEY = "llm_batch_chunk"


def chunk_key(batch_id: str, pass_number: int, chunk_index: int) -> str:
    return f"{batch_id}/pass-{pass_number}/chunk-{chunk_index}"


def chunk_metadata(batch_id: str, pass_number: int, chunk_index: int, model: str) -> dict[str, str]:
    return {
        CHUNK_METADATA_KEY: chunk_key(batch_id, pass_number, chunk_index),
        "llm_batch_id": batch_id,
        "pass": str(pass_number),
        "chunk": str(chunk_index),
        "model": model,
    }


def upload_filename(key: str) -> str:
    """The name of a chunk's input file on Groq: it carries the chunk key, so a stray upload can be recognised."""
    return f"{key.replace('/', '_')}.jsonl"
