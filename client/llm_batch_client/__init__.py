"""The client of the llm-batch service (its own distribution, `llm-batch-client`): sync and async clients,
typed results (money as Decimal), webhook verification, the cost report, the `llm-batch` command line and,
with the `django` extra, a Django app (`llm_batch_client.django`)."""

from llm_batch_client.async_client import AsyncLlmBatchClient
from llm_batch_client.calls import BatchOptions, TierSpec
from llm_batch_client.data import (
    TERMINAL_STATUSES,
    Attempt,
    Batch,
    Budget,
    Cost,
    Counts,
    Estimate,
    Item,
    ItemError,
    LineageStep,
    Model,
    ModelCatalogue,
    Pass,
    ResultPage,
    ResultRow,
    Tier,
    TierEstimate,
    Usage,
    WebhookDelivery,
)
from llm_batch_client.errors import (
    FieldError,
    LlmBatchConnectionError,
    LlmBatchError,
    UnexpectedAnswer,
    WebhookVerificationError,
)
from llm_batch_client.report import cost_report, estimate_report, progress_line
from llm_batch_client.retrying import RetryPolicy
from llm_batch_client.sync_client import LlmBatchClient
from llm_batch_client.waiting import BatchWaitTimeout
from llm_batch_client.webhooks import WebhookEvent, verify_webhook

__version__ = "0.3.0"

__all__ = [
    "TERMINAL_STATUSES",
    "AsyncLlmBatchClient",
    "Attempt",
    "Batch",
    "BatchOptions",
    "BatchWaitTimeout",
    "Budget",
    "Cost",
    "Counts",
    "Estimate",
    "FieldError",
    "Item",
    "ItemError",
    "LineageStep",
    "LlmBatchClient",
    "LlmBatchConnectionError",
    "LlmBatchError",
    "Model",
    "ModelCatalogue",
    "Pass",
    "ResultPage",
    "ResultRow",
    "RetryPolicy",
    "Tier",
    "TierEstimate",
    "TierSpec",
    "UnexpectedAnswer",
    "Usage",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookVerificationError",
    "cost_report",
    "estimate_report",
    "progress_line",
    "verify_webhook",
]
