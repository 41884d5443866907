"""What a chunk keeps of Groq's batch object, written whenever a step has just seen it."""

from __future__ import annotations

from typing import Any

from service.providers.groq import ProviderBatchInfo


def provider_state(info: ProviderBatchInfo) -> dict[str, Any]:
    """What we keep of Groq's batch object on the chunk."""
    return {
        "provider_batch_id": info.id,
        "input_file_id": info.input_file_id,
        "provider_status": info.status,
        "request_total": info.request_counts.total,
        "request_completed": info.request_counts.completed,
        "request_failed": info.request_counts.failed,
        "output_file_id": info.output_file_id,
        "error_file_id": info.error_file_id,
        "provider_errors": info.errors or None,
    }
