"""Read what the emulator received: which provider batches exist and which custom_ids each was sent."""

from __future__ import annotations

from dataclasses import dataclass

from groq_emulator import Emulator


@dataclass(frozen=True)
class SentBatch:
    id: str
    status: str
    metadata: dict[str, str]
    custom_ids: list[str]


def provider_batches(emulator: Emulator) -> list[SentBatch]:
    sent = []
    for batch_id, batch in emulator.batches.items():
        # From the batch's own copy of its requests: the service deletes input files once it has the results.
        custom_ids = [request.custom_id for request in emulator.batch_records[batch_id].requests]
        sent.append(SentBatch(batch_id, batch["status"], dict(batch["metadata"] or {}), custom_ids))
    return sent
