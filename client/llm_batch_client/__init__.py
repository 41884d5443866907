"""The client of the llm-batch service (its own distribution, `llm-batch-client`)."""

from llm_batch_client.client import (
    TERMINAL_STATUSES,
    BatchWaitTimeout,
    LlmBatchClient,
    LlmBatchConnectionError,
    LlmBatchError,
    WebhookVerificationError,
    verify_webhook,
)

__all__ = [
    "TERMINAL_STATUSES",
    "BatchWaitTimeout",
    "LlmBatchClient",
    "LlmBatchConnectionError",
    "LlmBatchError",
    "WebhookVerificationError",
    "verify_webhook",
]
