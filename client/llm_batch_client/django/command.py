"""The base of a monolith's `run_llm_batch` management command, over its own queryset:

    class Command(LlmBatchCommand[PullRequest]):
        batch_options = BatchOptions(params={"temperature": 0, "response_format": PR_ANALYSIS})

        def get_queryset(self):
            return PullRequest.objects.filter(summary="")

        def to_item(self, pr):
            return {"custom_id": f"{pr.repo}#{pr.number}", "body": {"messages": review_messages(pr)}}

        def store_result(self, pr, result):       # result: a llm_batch_client.ResultRow that succeeded
            ...
        def store_failure(self, pr, result):      # result.error.code says why
            ...

gives `manage.py run_llm_batch [--limit N] [--with-fallback] [--poll] [--budget USD] [--reuse] [--no-strict]`,
`--retry-batch ID [--retry-model M] [--poll]` and `--import-batch ID [--since-pass N]`.

Each item carries `metadata={"pk": row.pk}`, which the service echoes on the item's result rows: that is how
a result finds its row again (whatever the custom_id). The batch carries `metadata={"django_command": ...,
"django_model": ...}`, by which `handle_webhook()` knows the batches that are this command's.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from llm_batch_client.calls import BatchOptions
from llm_batch_client.data import Batch, ResultRow
from llm_batch_client.django.conf import client, llm_batch_settings
from llm_batch_client.django.models import WebhookReceipt
from llm_batch_client.errors import BatchWaitTimeout, LlmBatchError
from llm_batch_client.report import cost_report, progress_line
from llm_batch_client.sync_client import LlmBatchClient
from llm_batch_client.text import parse_usd
from llm_batch_client.webhooks import WebhookEvent

RowT = TypeVar("RowT", bound=models.Model)
IMPORT_PAGE = 500
DECIDED = ("succeeded", "failed")


@dataclass
class ImportTally:
    stored: int = 0  # succeeded rows given to store_result
    failed: int = 0  # failed rows given to store_failure
    unmatched: int = 0  # result rows whose metadata pk names no row (deleted since)

    def __str__(self) -> str:
        text = f"stored {self.stored} results and {self.failed} failures"
        return text + (f"; {self.unmatched} rows no longer exist" if self.unmatched else "")


class _Rows:
    """The queryset's rows as items, read with .iterator() each time it is iterated: streamed without being
    held in memory, and sent again from the start if the first answer is lost."""

    def __init__(self, queryset: QuerySet[Any], to_item: Callable[[Any], dict[str, Any]]) -> None:
        self.queryset = queryset
        self.to_item = to_item
        self.count = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.count = 0
        for row in self.queryset.iterator(chunk_size=IMPORT_PAGE):
            self.count += 1
            yield self.to_item(row)


class LlmBatchCommand(BaseCommand, Generic[RowT]):
    help = "Send rows to the llm-batch service as one batch; with --poll, wait and store the results."

    batch_options: BatchOptions = BatchOptions()  # model, cascade, params, output_schema, ...
    poll_interval: float = 5.0  # seconds between polls without a webhook
    webhook_poll_interval: float = 60.0  # with LLM_BATCH_CALLBACK_URL: the webhook wakes the wait, polls are a backstop
    wait_timeout: float = 24 * 3600.0

    # -- what the subclass supplies -------------------------------------------------------------------------

    def get_queryset(self) -> QuerySet[RowT]:
        raise NotImplementedError("return the rows to send, such as Model.objects.filter(summary='')")

    def to_item(self, row: RowT) -> Mapping[str, Any]:
        raise NotImplementedError('return {"custom_id": ..., "body": {"messages": [...]}} for the row')

    def store_result(self, row: RowT, result: ResultRow) -> None:
        raise NotImplementedError("store result.output (or result.content) on the row")

    def store_failure(self, row: RowT, result: ResultRow) -> None:
        raise NotImplementedError("record result.error.code (and .message) on the row")

    # -- the command ----------------------------------------------------------------------------------------

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, metavar="N", help="send only the first N rows")
        parser.add_argument("--with-fallback", action="store_true", help="run the cascade: failures move on")
        parser.add_argument("--poll", action="store_true", help="wait for the batch, then store its results")
        parser.add_argument("--budget", metavar="USD", help="the most the batch may cost")
        parser.add_argument("--reuse", action="store_true", default=None, help="take identical earlier answers")
        parser.add_argument("--no-strict", action="store_true", help="best-effort structured output")
        parser.add_argument("--retry-batch", metavar="ID", help="send this batch's failed items again")
        parser.add_argument("--retry-model", metavar="MODEL", help="with --retry-batch: the retry's model")
        parser.add_argument("--import-batch", metavar="ID", help="store this batch's results (no submission)")
        parser.add_argument("--since-pass", type=int, default=0, metavar="N", help="with --import-batch")
        parser.add_argument("--poll-interval", type=float, metavar="SECONDS", help="seconds between polls")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with client() as llm_batch:
                self._handle(llm_batch, options)
        except BatchWaitTimeout as error:
            raise CommandError(f"{error}; store its results later with --import-batch {error.batch_id}") from None
        except LlmBatchError as error:
            raise CommandError(f"llm-batch: {error.status or 'no answer'} {error.title}: {error.detail}") from None

    def _handle(self, llm_batch: LlmBatchClient, options: dict[str, Any]) -> None:
        started = timezone.now()  # a webhook received from now on is this run's
        if options["import_batch"]:
            tally = self.import_batch(llm_batch, options["import_batch"], since_pass=options["since_pass"])
            self.stdout.write(f"Batch {options['import_batch']}: {tally}.")
            return
        if options["retry_batch"]:
            batch = llm_batch.retry(options["retry_batch"], model=options["retry_model"])
            latest = max(batch.passes, key=lambda p: p.number)
            self.stdout.write(
                f"Retrying {latest.items} failed items of {batch.id} as pass {latest.number} on {latest.model}."
            )
        else:
            batch = self.submit(llm_batch, options)
        if options["poll"]:
            self.finish(llm_batch, batch, started, options.get("poll_interval"))
        else:
            self.stdout.write(f"Store its results once finished: --import-batch {batch.id} (or by webhook).")

    def submit(self, llm_batch: LlmBatchClient, options: dict[str, Any]) -> Batch:
        queryset = self.get_queryset()
        if options["limit"] is not None:
            queryset = queryset[: options["limit"]]
        rows = _Rows(queryset, self.item_for)
        batch = llm_batch.submit(rows, self.options_for(options), fallback=options["with_fallback"])
        tiers = " -> ".join(str(tier.get("model")) for tier in batch.cascade) or batch.model
        self.stdout.write(f"Submitted batch {batch.id}: {rows.count} rows, cascade {tiers}.")
        return batch

    def finish(self, llm_batch: LlmBatchClient, batch: Batch, started: datetime, poll_interval: float | None) -> Batch:
        """Wait for the batch, store what its latest run (started at `started`) changed, print the cost report."""
        done = self.wait(llm_batch, batch, started, poll_interval)
        tally = self.import_batch(llm_batch, done.id, since_pass=batch.latest_run_since_pass)
        self.stdout.write(f"Batch {done.id}: {tally}.")
        self.stdout.write(cost_report(done))
        if done.counts.failed:
            self.stdout.write(f"{done.counts.failed} items failed; send them again with --retry-batch {done.id}")
        return done

    def wait(self, llm_batch: LlmBatchClient, batch: Batch, started: datetime, poll_interval: float | None) -> Batch:
        """Until the batch finishes: woken by its webhook (a WebhookReceipt row for it since `started`, written
        by the webhook view in whichever process got it) when the batch has a callback_url, polling meanwhile."""
        shown: list[str] = []

        def progress(current: Batch) -> None:
            line = progress_line(current)
            if shown[-1:] != [line]:
                self.stderr.write(line)
                shown.append(line)

        if batch.callback_url is None:
            interval = poll_interval or self.poll_interval
            return llm_batch.wait(batch.id, timeout=self.wait_timeout, poll_interval=interval, on_progress=progress)
        return llm_batch.wait_for_webhook(
            batch.id,
            _ReceiptSince(batch.id, started),
            timeout=self.wait_timeout,
            poll_interval=poll_interval or self.webhook_poll_interval,
            on_progress=progress,
        )

    def handle_webhook(self, event: WebhookEvent) -> ImportTally | None:
        """For a `batch_finished` receiver: store what the event's latest run changed, if the batch is this
        command's (by its metadata); None for another command's batch."""
        if event.batch.metadata.get("django_command") != self.command_name():
            return None
        with client() as llm_batch:
            return self.import_batch(llm_batch, event.batch.id, since_pass=event.batch.latest_run_since_pass)

    def import_batch(self, llm_batch: LlmBatchClient, batch_id: str, *, since_pass: int = 0) -> ImportTally:
        """Give every decided result row that changed after pass `since_pass` to store_result or
        store_failure, a page of rows per transaction."""
        model = self.get_queryset().model
        tally = ImportTally()
        decided = (row for row in llm_batch.iter_results(batch_id, since_pass=since_pass) if row.status in DECIDED)
        for page in _pages(decided, IMPORT_PAGE):
            keys = [self.row_key(model, result) for result in page]
            rows = model._default_manager.in_bulk([key for key in keys if key is not None])
            with transaction.atomic():
                for result, key in zip(page, keys, strict=True):
                    row = rows.get(key) if key is not None else None
                    if row is None:
                        tally.unmatched += 1
                    elif result.status == "succeeded":
                        self.store_result(row, result)
                        tally.stored += 1
                    else:
                        self.store_failure(row, result)
                        tally.failed += 1
        return tally

    # -- how rows and items meet --------------------------------------------------------------------------

    def item_for(self, row: RowT) -> dict[str, Any]:
        """The subclass's item with {"pk": row.pk} added to its metadata."""
        item = dict(self.to_item(row))
        item["metadata"] = {**(item.get("metadata") or {}), "pk": row.pk}
        return item

    @staticmethod
    def row_key(model: type[models.Model], result: ResultRow) -> Any:
        """The primary key a result row's metadata names, as the model's pk field reads it (a UUID from its
        string, say); None without one."""
        value = (result.metadata or {}).get("pk")
        return None if value is None else model._meta.pk.to_python(value)

    def options_for(self, options: Mapping[str, Any]) -> BatchOptions:
        """The batch's fields: the class's batch_options, then the settings and the command line."""
        base = self.batch_options
        metadata = {**(base.metadata or {}), "django_command": self.command_name()}
        metadata["django_model"] = self.get_queryset().model._meta.label_lower
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


class _ReceiptSince:
    """The signal wait_for_webhook waits for: a receipt of the batch's webhook since `since`, asked of the
    database once a second at most."""

    def __init__(self, batch_id: str, since: datetime) -> None:
        self.batch_id = batch_id
        self.since = since
        self.asked = 0.0

    def __call__(self) -> bool:
        if time.monotonic() - self.asked < 1.0:
            return False
        self.asked = time.monotonic()
        return WebhookReceipt.objects.filter(batch_id=self.batch_id, received_at__gte=self.since).exists()


def _budget(value: str | None) -> Decimal | None:
    try:
        return None if value is None else parse_usd(value)
    except ValueError as error:
        raise CommandError(f"--budget: {error}") from None


def _pages(rows: Iterable[ResultRow], size: int) -> Iterator[list[ResultRow]]:
    iterator = iter(rows)
    while page := list(itertools.islice(iterator, size)):
        yield page
