"""Read what the emulator received: which provider batches exist and which custom_ids each was sent."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from service.emulator import Emulator


@dataclass(frozen=True)
class SentBatch:
    id: str
    status: str
    metadata: dict[str, str]
    custom_ids: list[str]


def provider_batches(emulator: Emulator) -> list[SentBatch]:
    sent = []
    for batch_id, batch in emulator.batches.items():
        content = emulator.files[batch["input_file_id"]].content
        custom_ids = [orjson.loads(line)["custom_id"] for line in content.splitlines() if line.strip()]
        sent.append(SentBatch(batch_id, batch["status"], dict(batch["metadata"] or {}), custom_ids))
    return sent
