"""The base of a monolith's `run_llm_batch` management command, over its own queryset:

    class Command(LlmBatchCommand[PullRequest]):
        batch_options = BatchOptions(params={"temperature": 0, "response_format": PR_ANALYSIS})

        def get_queryset(self):                   # which rows to send (rows in flight are passed over)
            return PullRequest.objects.filter(summary="")

        def to_item(self, pr):
            return {"custom_id": f"{pr.repo}#{pr.number}", "body": {"messages": review_messages(pr)}}

        def rows_sent(self, batch, rows):         # optional: these rows went out as batch.id
            rows.update(llm_batch_id=batch.id)

        def store_result(self, pr, result):       # result: a llm_batch_client.ResultRow that succeeded
            ...
        def store_failure(self, pr, result):      # result.error.code says why
            ...
        def batch_finished(self, batch, tally, via):   # optional: once per run, its results stored
            ...

gives `manage.py run_llm_batch [--limit N] [--with-fallback] [--cascade M1,M2] [--poll] [--budget USD] [--reuse]
[--no-strict] [--idempotency-key KEY]`, `--retry-batch ID [--retry-model M] [--poll]` and `--import-batch ID [--again
[--since-pass N]]` and `--delete-batch ID`.

The hooks are called once per row and run: store_result / store_failure in the transaction that records the
page of results as stored, batch_finished (and the signal of that name) in the one that records the run as
stored; rows_sent in the one that records the rows in flight. A hook that raises rolls its transaction back,
and what it was given is given again by the next attempt. See importing.py for how.

Each item carries `metadata={"pk": row.pk}`, which the service echoes on the item's result rows: that is how
a result finds its row again (whatever the custom_id). The batch carries `metadata={"django_command": ...,
"django_model": ...}`, by which the webhook view knows the command whose batch it is.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Generic, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models
from django.db.models import QuerySet

from llm_batch_client.calls import BatchOptions
from llm_batch_client.data import Batch, ResultRow
from llm_batch_client.django import running
from llm_batch_client.django.conf import client, llm_batch_settings
from llm_batch_client.django.hooks import ImportTally, Stored
from llm_batch_client.django.importing import store_again, store_batch
from llm_batch_client.django.models import TrackedBatch
from llm_batch_client.errors import LlmBatchConnectionError, LlmBatchError
from llm_batch_client.sync_client import LlmBatchClient
from llm_batch_client.text import parse_usd
from llm_batch_client.waiting import BatchWaitTimeout
from llm_batch_client.webhooks import WebhookEvent

__all__ = ["ImportTally", "LlmBatchCommand"]

RowT = TypeVar("RowT", bound=models.Model)
logger = logging.getLogger(__name__)


class LlmBatchCommand(BaseCommand, Generic[RowT]):
    help = "Send rows to the llm-batch service as one batch; with --poll, wait and store the results."

    batch_options: BatchOptions = BatchOptions()  # model, cascade, params, output_schema, ...
    poll_interval: float = 5.0  # seconds between polls without a webhook (LLM_BATCH_POLL_SECONDS)
    webhook_poll_interval: float = 60.0  # with a webhook, which wakes the wait (LLM_BATCH_WEBHOOK_POLL_SECONDS)
    wait_timeout: float = 24 * 3600.0
    results_per_transaction: int = 500  # result rows given to the hooks in one transaction (a page of results)

    # -- the hooks ------------------------------------------------------------------------------------------

    def get_queryset(self) -> QuerySet[RowT]:
        """The rows to send. Rows sent in a batch whose result is not stored yet are passed over."""
        raise NotImplementedError("return the rows to send, such as Model.objects.filter(summary='')")

    def to_item(self, row: RowT) -> Mapping[str, Any]:
        raise NotImplementedError('return {"custom_id": ..., "body": {"messages": [...]}} for the row')

    def rows_sent(self, batch: Batch, rows: QuerySet[RowT]) -> None:
        """These rows went out as `batch` (a submission, or a retry of its failures): record it if you like
        (`rows.update(llm_batch_id=batch.id)`). Called once, after the service accepted the batch."""

    def store_result(self, row: RowT, result: ResultRow) -> None:
        raise NotImplementedError("store result.output (or result.content) on the row")

    def store_failure(self, row: RowT, result: ResultRow) -> None:
        raise NotImplementedError("record result.error.code (and .message) on the row")

    def batch_finished(self, batch: Batch, tally: ImportTally, via: str) -> None:
        """A run of `batch` finished and its results are stored (`tally`); `via` says how they came: webhook,
        poll or import. Called once per run, before the signal batch_finished is sent."""

    # -- the command ----------------------------------------------------------------------------------------

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, metavar="N", help="send only the first N rows (not in flight)")
        parser.add_argument("--with-fallback", action="store_true", help="run the cascade: failures move on")
        parser.add_argument("--cascade", metavar="M1,M2", help="the tiers' models, cheapest first (provider:model)")
        parser.add_argument("--poll", action="store_true", help="wait for the batch, then store its results")
        parser.add_argument("--budget", metavar="USD", help="the most the batch may cost")
        parser.add_argument("--reuse", action="store_true", default=None, help="take identical earlier answers")
        parser.add_argument("--no-strict", action="store_true", help="best-effort structured output")
        parser.add_argument("--idempotency-key", metavar="KEY", help="send with KEY: a request sent before with it")
        parser.add_argument("--retry-batch", metavar="ID", help="send this batch's failed items again")
        parser.add_argument("--retry-model", metavar="MODEL", help="with --retry-batch: the retry's model")
        parser.add_argument("--model", dest="old_model", metavar="MODEL", help="deprecated: --retry-model")
        parser.add_argument("--import-batch", metavar="ID", help="store this batch's results not stored yet")
        parser.add_argument("--again", action="store_true", help="with --import-batch: store its rows again")
        parser.add_argument("--since-pass", type=int, metavar="N", help="with --again: the rows changed after pass N")
        parser.add_argument(
            "--delete-batch", metavar="ID", help="delete this batch on the service (its bodies and answers purged)"
        )
        parser.add_argument("--poll-interval", type=float, metavar="SECONDS", help="seconds between polls")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with client() as llm_batch:
                running.run(self, llm_batch, options)
        except BatchWaitTimeout as error:
            raise CommandError(f"{error}; store its results later with --import-batch {error.batch_id}") from None
        except LlmBatchConnectionError as error:
            raise CommandError(running.no_answer_message(error)) from None
        except LlmBatchError as error:
            status = f"{error.status} " if error.status is not None else ""
            raise CommandError(f"llm-batch: {status}{error.title}: {error.detail}") from None

    # -- for a webhook receiver, a task queue or a test ------------------------------------------------------

    def store_batch(
        self, llm_batch: LlmBatchClient, batch: Batch, *, via: str, event: WebhookEvent | None = None
    ) -> Stored:
        """Store the results of the finished `batch` not stored yet (by any path): once each."""
        return store_batch(self, llm_batch, batch, via=via, event=event)

    def import_batch(
        self, llm_batch: LlmBatchClient, batch_id: str, *, again: bool = False, since_pass: int | None = None
    ) -> ImportTally:
        """Store the results of the finished batch `batch_id` that are not stored yet (for a task queue: call it
        from a `webhook_received` receiver's task with LLM_BATCH_STORE_IN_WEBHOOK = False). `again=True`: first
        forget what was stored of the rows that changed after pass `since_pass` (0: every row), so the hooks see
        them a second time. The tally of the batch's latest import."""
        return self.import_stored(llm_batch, batch_id, again=again, since_pass=since_pass).tally

    def import_stored(
        self, llm_batch: LlmBatchClient, batch_id: str, *, again: bool = False, since_pass: int | None = None
    ) -> Stored:
        if since_pass is not None and not again:
            message = "import_batch(since_pass=N) stores what is not stored yet; to store again, pass again=True"
            warnings.warn(message, DeprecationWarning, stacklevel=3)
        if again:
            tracked = TrackedBatch.of(batch_id, self.command_name(), self.model_label())
            if not store_again(tracked, since_pass or 0):
                raise CommandError(f"an import of {batch_id} is under way; run this again once it is done")
        batch = llm_batch.get(batch_id)
        if not batch.finished:
            raise CommandError(f"batch {batch_id} is still {batch.status}: its results are not final yet")
        return self.store_batch(llm_batch, batch, via="import")

    def delete_batch(self, llm_batch: LlmBatchClient, batch_id: str) -> Batch:
        """Delete `batch_id` on the service (cancelled if running; its bodies, answers and files purged; its
        counts and cost kept) and forget it here, so its rows still in flight can be sent again."""
        return running.delete(llm_batch, batch_id)

    def handle_webhook(self, event: WebhookEvent | None) -> ImportTally | None:
        """Deprecated: the webhook view stores the results of a command's batch itself, once, and then sends
        batch_finished. Kept so that a receiver of the first version, calling this from batch_finished, stores
        nothing twice: it answers the tally of what is stored."""
        message = (
            "LlmBatchCommand.handle_webhook() is deprecated: the webhook view stores the results of the command's"
            " batches itself; remove the batch_finished receiver that calls it"
        )
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        logger.warning(message)
        if event is None or event.batch.metadata.get("django_command") != self.command_name():
            return None
        with client() as llm_batch:
            return self.store_batch(llm_batch, event.batch, via="webhook", event=event).tally

    # -- how rows, items and batches meet ---------------------------------------------------------------------

    def row_model(self) -> type[RowT]:
        return self.get_queryset().model

    def model_label(self) -> str:
        return self.row_model()._meta.label_lower

    def options_for(self, options: Mapping[str, Any]) -> BatchOptions:
        """The batch's fields: the class's batch_options, then the settings and the command line."""
        base = self.batch_options
        if options.get("cascade"):
            base = dataclasses.replace(base, cascade=[name.strip() for name in options["cascade"].split(",")])
        metadata = {**(base.metadata or {}), "django_command": self.command_name()}
        metadata["django_model"] = self.model_label()
        return dataclasses.replace(
            base,
            callback_url=base.callback_url or llm_batch_settings().callback_url,
            metadata=metadata,
            budget_usd=_budget(options.get("budget")) or base.budget_usd,
            reuse=options["reuse"] if options.get("reuse") is not None else base.reuse,
            strict=False if options.get("no_strict") else base.strict,
        )

    def command_name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]


def _budget(value: str | None) -> Decimal | None:
    try:
        return None if value is None else parse_usd(value)
    except ValueError as error:
        raise CommandError(f"--budget: {error}") from None
