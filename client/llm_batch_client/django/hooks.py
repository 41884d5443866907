"""What the steps of `run_llm_batch` (running.py, sending.py, importing.py) know of the command they run for: the
hooks and settings they call (`CommandHooks`, which LlmBatchCommand provides) and what passes through those hooks
(`ImportTally`, `Stored`). Typed against this, the steps never import the command, which imports them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from django.core.management.base import OutputWrapper
from django.db import models
from django.db.models import QuerySet

from llm_batch_client.calls import BatchOptions
from llm_batch_client.data import Batch, ResultRow
from llm_batch_client.sync_client import LlmBatchClient
from llm_batch_client.webhooks import WebhookEvent

__all__ = ["CommandHooks", "ImportTally", "Stored"]


@dataclass(frozen=True)
class ImportTally:
    stored: int = 0  # succeeded rows given to store_result
    failed: int = 0  # failed rows given to store_failure
    unmatched: int = 0  # result rows whose metadata pk names no row (deleted since)

    def __str__(self) -> str:
        text = f"stored {self.stored} results and {self.failed} failures"
        return text + (f"; {self.unmatched} rows no longer exist" if self.unmatched else "")


@dataclass(frozen=True)
class Stored:
    """What store_batch found or did: the tally of the batch's latest import, how its results came, and
    whether this call stored them (False: another path had, or was doing it and finished first)."""

    tally: ImportTally
    via: str
    here: bool


class CommandHooks(Protocol):
    """The part of an LlmBatchCommand the steps use, and nothing more."""

    stdout: OutputWrapper
    stderr: OutputWrapper
    poll_interval: float
    webhook_poll_interval: float
    wait_timeout: float
    results_per_transaction: int

    # what it is called, and over which rows
    def command_name(self) -> str: ...
    def model_label(self) -> str: ...
    def row_model(self) -> type[models.Model]: ...
    def get_queryset(self) -> QuerySet[Any]: ...
    def to_item(self, row: Any) -> Mapping[str, Any]: ...
    def options_for(self, options: Mapping[str, Any]) -> BatchOptions: ...

    # the hooks the steps call
    def rows_sent(self, batch: Batch, rows: QuerySet[Any]) -> None: ...
    def store_result(self, row: Any, result: ResultRow) -> None: ...
    def store_failure(self, row: Any, result: ResultRow) -> None: ...
    def batch_finished(self, batch: Batch, tally: ImportTally, via: str) -> None: ...

    # storing results, as a subclass may have changed it
    def store_batch(
        self, llm_batch: LlmBatchClient, batch: Batch, *, via: str, event: WebhookEvent | None = None
    ) -> Stored: ...
    def import_stored(
        self, llm_batch: LlmBatchClient, batch_id: str, *, again: bool = False, since_pass: int | None = None
    ) -> Stored: ...
