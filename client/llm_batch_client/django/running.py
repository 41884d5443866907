"""What `run_llm_batch` does, step by step: store what finished unseen, send the rows not in flight (or retry a
batch's failures), wait, store the results, print the cost report."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError
from django.db.models import Q
from django.utils import timezone

from llm_batch_client.data import Batch
from llm_batch_client.django.conf import llm_batch_settings
from llm_batch_client.django.hooks import CommandHooks, Stored
from llm_batch_client.django.importing import forget_batch, last_pass, row_key
from llm_batch_client.django.models import TrackedBatch, WebhookReceipt
from llm_batch_client.django.sending import RowsToSend, item_with_key, record_sent, rows_in_flight
from llm_batch_client.errors import LlmBatchConnectionError, LlmBatchError
from llm_batch_client.report import cascade_text, cost_report, progress_line, retry_text
from llm_batch_client.sync_client import LlmBatchClient

BATCH_ID = re.compile(r"lb_\w+")


def run(command: CommandHooks, llm_batch: LlmBatchClient, options: dict[str, Any]) -> None:
    started = timezone.now()  # a webhook received from now on is this run's
    if options.get("delete_batch"):
        deleted = delete(llm_batch, options["delete_batch"])
        state = "purged" if deleted.purged else "being purged (a running batch is cancelled first)"
        command.stdout.write(f"Batch {deleted.id} is deleted: its bodies and answers are {state}.")
        return
    if options["import_batch"]:
        stored = command.import_stored(
            llm_batch, options["import_batch"], again=options["again"], since_pass=options["since_pass"]
        )
        command.stdout.write(outcome_text(options["import_batch"], stored))
        return
    catch_up(command, llm_batch)
    if options["retry_batch"]:
        batch = retry(command, llm_batch, options)
    else:
        sent = submit(command, llm_batch, options)
        if sent is None:
            return
        batch = sent
    if options["poll"]:
        finish(command, llm_batch, batch, started, options.get("poll_interval"))
    else:
        command.stdout.write("Its results are stored when it finishes: by the webhook, or by --poll or the next run.")


def delete(llm_batch: LlmBatchClient, batch_id: str) -> Batch:
    """Delete the batch on the service (its content is purged there; its counts and cost stay) and forget it
    here: its rows still in flight can be sent again. The service's tombstone of it."""
    batch = llm_batch.delete_batch(batch_id)
    tracked = TrackedBatch.objects.filter(batch_id=batch_id).first()
    if tracked is not None:
        forget_batch(tracked)
    return batch


def catch_up(command: CommandHooks, llm_batch: LlmBatchClient) -> None:
    """Store the results of this command's batches that finished without them being stored (a webhook lost,
    nobody polling): a scheduled run heals what the previous ones left."""
    mine = TrackedBatch.objects.filter(command=command.command_name(), model_label=command.model_label())
    for tracked in mine.filter(Q(stored_at__isnull=True) | Q(rows_in_flight__isnull=False)).distinct():
        try:
            batch = llm_batch.get(tracked.batch_id)
        except LlmBatchError as error:
            if error.status != 404:
                raise
            released = forget_batch(tracked)
            command.stderr.write(
                f"Batch {tracked.batch_id} is unknown to the service: its {released} rows are in flight no more."
            )
            continue
        if batch.deleted_at is not None:  # deleted on the service: its results are gone
            released = forget_batch(tracked)
            command.stderr.write(f"Batch {batch.id} was deleted: its {released} rows are in flight no more.")
            continue
        if batch.finished:
            stored = command.store_batch(llm_batch, batch, via="poll")
            if stored.here:
                command.stdout.write(f"Batch {batch.id} had finished: {stored.tally}.")


def submit(command: CommandHooks, llm_batch: LlmBatchClient, options: dict[str, Any]) -> Batch | None:
    rows = RowsToSend(
        command.get_queryset(),
        lambda row: item_with_key(command.to_item(row), row.pk),
        rows_in_flight(command.model_label()),
        options["limit"],
    )
    if rows.empty():
        flying = f" ({rows.in_flight} rows are in flight, their results not stored yet)" if rows.in_flight else ""
        command.stdout.write(f"Nothing to send{flying}.")
        return None
    try:
        batch = llm_batch.submit(
            rows,
            command.options_for(options),
            fallback=options["with_fallback"],
            idempotency_key=options["idempotency_key"],
        )
    finally:
        rows.close()
    record_sent(command, batch, rows.sent, after_pass=0)
    command.stdout.write(f"Submitted batch {batch.id}: {len(rows.sent)} rows, cascade {cascade_text(batch)}.")
    return batch


def retry(command: CommandHooks, llm_batch: LlmBatchClient, options: dict[str, Any]) -> Batch:
    batch_id = options["retry_batch"]
    if not BATCH_ID.fullmatch(batch_id):
        known = TrackedBatch.objects.filter(command=command.command_name()).order_by("-created_at")[:5]
        listed = ", ".join(tracked.batch_id for tracked in known) or "none yet"
        raise CommandError(
            f"--retry-batch takes the service's batch id (lb_...), no longer the pk of a run ({batch_id!r}); this"
            f" command's latest batches: {listed}"
        )
    model = options["retry_model"]
    if options.get("old_model"):
        command.stderr.write("warning: --model is deprecated, use --retry-model (the retry's model)")
        model = model or options["old_model"]
    batch = llm_batch.get(batch_id)
    if batch.finished:
        tracked = TrackedBatch.of(batch_id, command.command_name(), command.model_label())
        if tracked.stored_through_pass < last_pass(batch):
            stored = command.store_batch(llm_batch, batch, via="poll")
            command.stdout.write(f"Batch {batch.id} had finished: {stored.tally}.")
    model_class = command.row_model()
    failed = [row_key(model_class, row) for row in llm_batch.iter_results(batch_id, status="failed")]
    retried = llm_batch.retry(batch_id, model=model, idempotency_key=options["idempotency_key"])
    record_sent(command, retried, [key for key in failed if key is not None], after_pass=last_pass(retried) - 1)
    command.stdout.write(retry_text(retried))
    return retried


def finish(
    command: CommandHooks, llm_batch: LlmBatchClient, batch: Batch, started: datetime, interval: float | None
) -> Batch:
    """Wait for the batch, store what its latest run changed (unless another path did), print the cost report."""
    done = wait(command, llm_batch, batch, started, interval)
    stored = command.store_batch(llm_batch, done, via="poll")
    command.stdout.write(outcome_text(done.id, stored))
    command.stdout.write(cost_report(done))
    if done.counts.failed:
        command.stdout.write(f"{done.counts.failed} items failed; send them again with --retry-batch {done.id}")
    return done


def outcome_text(batch_id: str, stored: Stored) -> str:
    if stored.here:
        return f"Batch {batch_id}: {stored.tally}."
    return f"Batch {batch_id}: its results were stored already (by {stored.via}): {stored.tally}."


def wait(
    command: CommandHooks, llm_batch: LlmBatchClient, batch: Batch, started: datetime, interval: float | None
) -> Batch:
    """Until the batch finishes: woken by its webhook (a WebhookReceipt row for it since `started`, written
    by the webhook view in whichever process got it) when the batch has a callback_url, polling meanwhile."""
    shown: list[str] = []

    def progress(current: Batch) -> None:
        line = progress_line(current)
        if shown[-1:] != [line]:
            command.stderr.write(line)
            shown.append(line)

    config = llm_batch_settings()
    if batch.callback_url is None:
        seconds = interval or config.poll_seconds or command.poll_interval
        command.stderr.write(f"Waiting for {batch.id}: polling every {seconds:g} s (LLM_BATCH_POLL_SECONDS).")
        return llm_batch.wait(batch.id, timeout=command.wait_timeout, poll_interval=seconds, on_progress=progress)
    seconds = interval or config.webhook_poll_seconds or command.webhook_poll_interval
    command.stderr.write(
        f"Waiting for {batch.id}: woken by its webhook, polling every {seconds:g} s meanwhile"
        " (LLM_BATCH_WEBHOOK_POLL_SECONDS)."
    )
    return llm_batch.wait_for_webhook(
        batch.id,
        ReceiptSince(batch.id, started),
        timeout=command.wait_timeout,
        poll_interval=seconds,
        on_progress=progress,
    )


class ReceiptSince:
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


def no_answer_message(error: LlmBatchConnectionError) -> str:
    """The service did not answer: where it was looked for, what happened, what to do about it."""
    text = f"llm-batch: no answer from {error.url} (LLM_BATCH_URL): {error.reason} ({error.attempts})."
    if not error.reached:
        return text + (
            " Nothing was sent. Check that the service runs there (or correct LLM_BATCH_URL in the settings),"
            " then run the command again."
        )
    if error.idempotency_key is not None:
        return text + (
            " The service may have acted on it. Once it answers, run the same command with --idempotency-key"
            f" {error.idempotency_key}: the same request then answers what it did instead of doing it again."
        )
    return text + " Run the command again once the service answers."
