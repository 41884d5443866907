"""Read what the emulators received: which provider batches exist and which custom_ids each was sent."""

from __future__ import annotations

from dataclasses import dataclass

import anthropic_emulator
import openai_emulator
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


def openai_batches(emulator: openai_emulator.Emulator) -> list[SentBatch]:
    """The OpenAI emulator's batches, each with the custom_ids of its valid lines."""
    return [
        SentBatch(batch_id, batch["status"], dict(batch["metadata"] or {}), emulator.custom_ids(batch_id))
        for batch_id, batch in emulator.batches.items()
    ]


def anthropic_batches(emulator: anthropic_emulator.Emulator) -> list[SentBatch]:
    """The Anthropic emulator's batches (no metadata exists there), each with its custom_ids."""
    return [
        SentBatch(batch_id, batch["processing_status"], {}, emulator.custom_ids(batch_id))
        for batch_id, batch in emulator.batches.items()
    ]
