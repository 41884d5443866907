"""Storing a finished batch's results in the monolith: each result row given to store_result or store_failure
once, whichever path gets there first (the webhook view, `--poll`, a later run, `--import-batch`), and
`batch_finished` sent once per run of the batch.

The batch's TrackedBatch row holds the import's progress: which passes are stored, and for an import under way
the cursor of its next page of results (the service's keyset cursor, which any process can resume from). Each
page is stored in one transaction that first moves the cursor on, conditionally on it being where this import
read the page from: two paths importing at once take turns page by page (the second one's update finds the
cursor moved, stores nothing and reads the next page), a path that dies mid-page leaves nothing of it, and a
hook that raises rolls its page back, to be given again by the next attempt.

A row is stored by the import of the run that last changed it (`since_pass < changed_in_pass <= through`), so a
retry that changes rows while an earlier run's import is still under way does not have them stored twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from llm_batch_client.data import Batch, ResultPage, ResultRow
from llm_batch_client.django.hooks import CommandHooks, ImportTally, Stored
from llm_batch_client.django.models import RowInFlight, TrackedBatch
from llm_batch_client.django.signals import batch_finished
from llm_batch_client.sync_client import LlmBatchClient
from llm_batch_client.webhooks import WebhookEvent

logger = logging.getLogger(__name__)

DECIDED = ("succeeded", "failed")
LAST_PAGE = "-"  # the cursor of an import whose last page is being stored


def last_pass(batch: Batch) -> int:
    return max((p.number for p in batch.passes), default=0)


def store_batch(
    command: CommandHooks,
    llm_batch: LlmBatchClient,
    batch: Batch,
    *,
    via: str,
    event: WebhookEvent | None = None,
) -> Stored:
    """Store the results of the finished `batch` that are not stored yet, page by page, alongside any other
    path doing the same; then send batch_finished (in the last page's transaction)."""
    tracked = TrackedBatch.of(batch.id, command.command_name(), command.model_label())
    here = False
    while True:
        tracked.refresh_from_db()
        if tracked.stored_through_pass >= last_pass(batch):
            if tracked.stored_at is None and batch.finished:  # finished before any pass ran: nothing to store
                release_rows(tracked, 1)
                TrackedBatch.objects.filter(pk=tracked.pk).update(stored_at=timezone.now(), stored_via=via)
            return Stored(_tally(tracked), tracked.stored_via or via, here)
        if tracked.importing_through_pass is None:
            _begin(tracked, last_pass(batch))
            continue
        cursor, since = tracked.import_cursor or None, tracked.import_since_pass
        page = llm_batch.results_page(batch.id, cursor, since_pass=since, limit=command.results_per_transaction)
        here = _store_page(command, tracked, page, batch, via, event) or here


def store_again(tracked: TrackedBatch, since_pass: int) -> bool:
    """Forget that the rows changed after `since_pass` were stored (--import-batch ID --again); False
    while an import of the batch is under way."""
    return bool(
        TrackedBatch.objects.filter(pk=tracked.pk, importing_through_pass__isnull=True).update(
            stored_through_pass=min(since_pass, tracked.stored_through_pass)
        )
    )


def _begin(tracked: TrackedBatch, through: int) -> None:
    """Start importing the rows that changed after the passes already stored, up to `through`, unless another
    path has just started."""
    TrackedBatch.objects.filter(
        pk=tracked.pk, importing_through_pass__isnull=True, stored_through_pass=tracked.stored_through_pass
    ).update(
        importing_through_pass=through,
        import_since_pass=tracked.stored_through_pass,
        import_cursor="",
        stored=0,
        failed=0,
        unmatched=0,
    )


def _store_page(
    command: CommandHooks,
    tracked: TrackedBatch,
    page: ResultPage,
    batch: Batch,
    via: str,
    event: WebhookEvent | None,
) -> bool:
    """Store one page, if the import's cursor is still where the page was read from; True when it was."""
    through, since = tracked.importing_through_pass, tracked.import_since_pass
    assert through is not None
    rows = [row for row in page.rows if row.status in DECIDED and since < row.changed_in_pass <= through]
    with transaction.atomic():
        moved = TrackedBatch.objects.filter(
            pk=tracked.pk, importing_through_pass=through, import_cursor=tracked.import_cursor
        ).update(import_cursor=page.next_cursor or LAST_PAGE)
        if not moved:
            return False  # another path stored this page meanwhile
        tally = _give_rows(command, tracked, rows)
        TrackedBatch.objects.filter(pk=tracked.pk).update(
            stored=F("stored") + tally.stored,
            failed=F("failed") + tally.failed,
            unmatched=F("unmatched") + tally.unmatched,
        )
        if page.next_cursor is None:
            _finish(command, tracked, through, batch, via, event)
    return True


def _give_rows(command: CommandHooks, tracked: TrackedBatch, rows: Sequence[ResultRow]) -> ImportTally:
    model = command.row_model()
    keys = [row_key(model, row) for row in rows]
    found = model._default_manager.in_bulk([key for key in keys if key is not None])
    stored = failed = unmatched = 0
    for result, key in zip(rows, keys, strict=True):
        row = found.get(key) if key is not None else None
        if row is None:
            unmatched += 1
        elif result.status == "succeeded":
            command.store_result(row, result)
            stored += 1
        else:
            command.store_failure(row, result)
            failed += 1
    landed = [str(key) for key in keys if key is not None]
    RowInFlight.objects.filter(
        batch=tracked, object_pk__in=landed, after_pass__lt=tracked.importing_through_pass
    ).delete()
    return ImportTally(stored, failed, unmatched)


def _finish(
    command: CommandHooks,
    tracked: TrackedBatch,
    through: int,
    batch: Batch,
    via: str,
    event: WebhookEvent | None,
) -> None:
    TrackedBatch.objects.filter(pk=tracked.pk).update(
        stored_through_pass=through,
        importing_through_pass=None,
        import_cursor="",
        stored_at=timezone.now(),
        stored_via=via,
    )
    release_rows(tracked, through)
    tracked.refresh_from_db()
    tally = _tally(tracked)
    logger.info("llm-batch %s: %s (by %s)", batch.id, tally, via)
    command.batch_finished(batch, tally, via)
    batch_finished.send(sender=type(command), batch=batch, tally=tally, via=via, event=event)


def forget_batch(tracked: TrackedBatch) -> int:
    """The service does not know the batch (deleted, or another service's): its rows are in flight no more, so
    they can be sent again. How many were."""
    with transaction.atomic():
        released, _ = RowInFlight.objects.filter(batch=tracked).delete()
        TrackedBatch.objects.filter(pk=tracked.pk).update(stored_at=timezone.now(), stored_via="gone")
    return released


def release_rows(tracked: TrackedBatch, through: int) -> None:
    """The batch's rows whose results came by pass `through` are no longer in flight (rows a later retry sent
    again stay)."""
    RowInFlight.objects.filter(batch=tracked, after_pass__lt=through).delete()


def _tally(tracked: TrackedBatch) -> ImportTally:
    return ImportTally(tracked.stored, tracked.failed, tracked.unmatched)


def row_key(model: type[models.Model], result: ResultRow) -> Any:
    """The primary key a result row's metadata names, as the model's pk field reads it (a UUID from its
    string, say); None without one."""
    value = (result.metadata or {}).get("pk")
    return None if value is None else model._meta.pk.to_python(value)
