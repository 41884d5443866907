"""Writing what the command line shows: result rows (JSON, NDJSON, CSV), JSON documents, a progress line."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from llm_batch_client.data import Batch, ResultRow
from llm_batch_client.report import progress_line
from llm_batch_client.text import ProgressView

FORMATS = ("ndjson", "json", "csv")
CSV_COLUMNS = [
    "custom_id",
    "status",
    "model",
    "provider",
    "pass",
    "tier",
    "cost_usd",
    "attempts",
    "error_code",
    "error_message",
    "changed_in_pass",
    "updated_at",
    "metadata",
    "output",
]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def csv_record(row: ResultRow) -> list[str]:
    def text(value: Any) -> str:
        return "" if value is None else str(value)

    return [
        row.custom_id,
        row.status,
        text(row.model),
        text(row.provider),
        text(row.pass_number),
        text(row.tier),
        str(row.cost_usd),
        str(row.attempts),
        row.error.code if row.error else "",
        text(row.error.message) if row.error else "",
        str(row.changed_in_pass),
        row.updated_at.isoformat(),
        dumps(row.metadata) if row.metadata is not None else "",
        dumps(row.output) if row.output is not None else "",
    ]


def write_rows(handle: TextIO, rows: Iterable[ResultRow], form: str) -> dict[str, int]:
    """Write the rows as they arrive (constant memory); the count by status."""
    tally: dict[str, int] = {}
    if form == "csv":
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
    elif form == "json":
        handle.write("[")
    for number, row in enumerate(rows):
        tally[row.status] = tally.get(row.status, 0) + 1
        if form == "csv":
            writer.writerow(csv_record(row))
        elif form == "json":
            handle.write(("," if number else "") + "\n" + dumps(row.raw))
        else:
            handle.write(dumps(row.raw) + "\n")
    if form == "json":
        handle.write("\n]\n" if tally else "]\n")
    return tally


@contextmanager
def output_file(path: Path) -> Iterator[TextIO]:
    """FILE written as FILE.part, renamed when complete: a cut-off export never looks finished."""
    partial = path.with_name(path.name + ".part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            yield handle
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


class Progress:
    """The progress line of a running batch, on stderr: redrawn in place on a terminal, else printed when it
    changes."""

    def __init__(self, err: TextIO) -> None:
        self._view = ProgressView(err)

    def __call__(self, batch: Batch) -> None:
        self._view.update([progress_line(batch)])
