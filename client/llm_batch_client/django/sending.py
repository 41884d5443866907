"""Sending rows: the command's queryset read as items, rows in flight passed over, and what went out recorded
(the batch tracked, its rows in flight, the command's rows_sent hook told) once the service has the batch."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

from django.db import models, transaction
from django.db.models import QuerySet
from django.db.models.functions import Cast

from llm_batch_client.data import Batch
from llm_batch_client.django.hooks import CommandHooks
from llm_batch_client.django.models import RowInFlight, TrackedBatch

READ_ROWS = 500  # rows read from the database at a time


class RowsToSend:
    """The queryset's rows that are not in flight (the first `limit` of them), as items: read with .iterator()
    each time they are iterated, so they are streamed without being held in memory and sent again from the
    start if the first answer is lost. `sent` holds the primary keys of the rows of the latest iteration,
    `in_flight` how many rows of the queryset were passed over."""

    def __init__(
        self,
        queryset: QuerySet[Any],
        to_item: Callable[[Any], dict[str, Any]],
        in_flight: set[str],
        limit: int | None,
    ) -> None:
        self.queryset = queryset
        self.to_item = to_item
        self.limit = limit
        self.sent: list[Any] = []
        self.in_flight = 0
        self._flying = in_flight
        self._started: Iterator[Any] | None = None
        self._reading: list[Generator[Any, None, None]] = []

    def empty(self) -> bool:
        """Whether there is nothing to send; if there is, the rows read to know it are sent first, not read
        again."""
        rows = self._rows()
        first = next(rows, None)
        if first is None:
            return True
        self._started = itertools.chain([first], rows)
        return False

    def close(self) -> None:
        """End the database reads left half-way (a send that failed), before the connection closes."""
        for reading in self._reading:
            reading.close()
        self._reading.clear()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rows, self._started = self._started or self._rows(), None
        self.sent = []
        for row in rows:
            self.sent.append(row.pk)
            yield self.to_item(row)

    def _rows(self) -> Generator[Any, None, None]:
        reading = self._read()
        self._reading.append(reading)
        return reading

    def _read(self) -> Generator[Any, None, None]:
        self.in_flight = 0
        taken = 0
        for row in self.queryset.iterator(chunk_size=READ_ROWS):
            if str(row.pk) in self._flying:
                self.in_flight += 1
                continue
            if self.limit is not None and taken >= self.limit:
                return
            taken += 1
            yield row


def rows_in_flight(model_label: str) -> set[str]:
    return set(RowInFlight.objects.filter(model_label=model_label).values_list("object_pk", flat=True))


def record_sent(command: CommandHooks, batch: Batch, keys: Sequence[Any], after_pass: int) -> None:
    """Record that the rows with primary keys `keys` went out in `batch` (their results come after pass
    `after_pass`) and tell the command's rows_sent, in one transaction. If rows_sent raises, the batch and its
    rows in flight are recorded all the same (its results will be stored; its rows are not sent again) and the
    error goes on."""
    try:
        with transaction.atomic():
            tracked = _record(command, batch, keys, after_pass)
            command.rows_sent(batch, sent_rows(command.row_model(), tracked, after_pass))
    except Exception:
        with transaction.atomic():
            _record(command, batch, keys, after_pass)
        raise


def _record(command: CommandHooks, batch: Batch, keys: Sequence[Any], after_pass: int) -> TrackedBatch:
    label = command.model_label()
    tracked = TrackedBatch.of(batch.id, command.command_name(), label)
    RowInFlight.objects.bulk_create(
        [RowInFlight(batch=tracked, model_label=label, object_pk=str(key), after_pass=after_pass) for key in keys],
        batch_size=READ_ROWS,
        ignore_conflicts=True,
    )
    return tracked


def sent_rows(model: type[models.Model], tracked: TrackedBatch, after_pass: int) -> QuerySet[Any]:
    """The rows sent in the batch's run after `after_pass`, as a queryset (a subquery of the rows in flight, not
    a list of every primary key, which could pass the database's limit of parameters)."""
    pk_field = model._meta.pk
    assert pk_field is not None
    flying = RowInFlight.objects.filter(batch=tracked, after_pass=after_pass)
    keys = flying.annotate(row_pk=Cast("object_pk", output_field=pk_field)).values("row_pk")
    return model._default_manager.filter(pk__in=keys)


def item_with_key(item: Mapping[str, Any], pk: Any) -> dict[str, Any]:
    """The subclass's item with {"pk": row.pk} added to its metadata: how each result finds its row again."""
    out = dict(item)
    out["metadata"] = {**(item.get("metadata") or {}), "pk": pk}
    return out
