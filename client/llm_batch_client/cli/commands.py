"""The commands of `llm-batch`, each on the sync client, each answering an exit code."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from llm_batch_client.calls import BatchOptions
from llm_batch_client.cli.inputs import (
    JsonLinesItems,
    UsageError,
    amount,
    json_file,
    json_object,
    model_list,
    options_from,
    read_items,
)
from llm_batch_client.cli.output import Progress, dumps, output_file, write_rows
from llm_batch_client.data import Batch
from llm_batch_client.report import cascade_text, cost_report, estimate_report, progress_line, retry_text
from llm_batch_client.sync_client import LlmBatchClient
from llm_batch_client.text import count, format_table, usd
from llm_batch_client.waiting import BatchWaitTimeout

PROG = "llm-batch"
EXIT_DONE, EXIT_FAILURES, EXIT_USAGE, EXIT_NOT_FINISHED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass
class Io:
    out: TextIO
    err: TextIO
    as_json: bool

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def note(self, text: str) -> None:
        print(text, file=self.err)

    def dump(self, value: Any) -> None:
        print(dumps(value), file=self.out)

    def show(self, raw: Any, text: str) -> int:
        """The API's JSON with --json, else the text; the command is done."""
        if self.as_json:
            self.dump(raw)
        else:
            self.say(text)
        return EXIT_DONE


def outcome_code(batch: Batch) -> int:
    if not batch.finished:
        return EXIT_NOT_FINISHED
    return EXIT_DONE if batch.status == "completed" and batch.counts.failed == 0 else EXIT_FAILURES


def show_finished(io: Io, batch: Batch) -> int:
    if io.as_json:
        io.dump(batch.raw)
    else:
        io.say(cost_report(batch))
    return outcome_code(batch)


def wait_for(io: Io, client: LlmBatchClient, batch_id: str, args: argparse.Namespace) -> int:
    progress = None if io.as_json else Progress(io.err)
    try:
        batch = client.wait(
            batch_id,
            timeout=args.wait_timeout,
            poll_interval=args.poll_interval,
            max_poll_interval=max(args.poll_interval, 10.0),
            on_progress=progress,
        )
    except BatchWaitTimeout as error:
        io.note(f"{PROG}: {error}; follow it with: {PROG} wait {batch_id}")
        return EXIT_NOT_FINISHED
    except KeyboardInterrupt:
        io.note(f"\nStopped waiting; batch {batch_id} carries on. Follow it with: {PROG} wait {batch_id}")
        return EXIT_INTERRUPTED
    if not io.as_json:
        io.say()
    return show_finished(io, batch)


def batch_options(args: argparse.Namespace, header: dict[str, Any]) -> BatchOptions:
    """The batch fields: the items file's own, then the command line's."""
    return options_from(
        header,
        {
            "model": args.model,
            "fallback_model": args.fallback_model,
            "fallback_params": json_object("--fallback-params", args.fallback_params),
            "cascade": model_list("--cascade", args.cascade),
            "strict": args.strict,
            "params": json_object("--params", args.params),
            "output_schema": json_file("--output-schema", args.output_schema),
            "callback_url": args.callback_url,
            "metadata": json_object("--metadata", args.metadata),
            "budget_usd": amount("--budget", args.budget),
            "reuse": args.reuse,
        },
    )


def _submission(args: argparse.Namespace) -> tuple[Any, BatchOptions, int]:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    items, header = read_items(args.items, args.limit)
    options = batch_options(args, header)  # the options are checked before a large file is read through
    total = items.check() if isinstance(items, JsonLinesItems) else len(items)
    return items, options, total


def cmd_submit(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    items, options, total = _submission(args)
    batch = client.submit(items, options, fallback=args.fallback, idempotency_key=args.idempotency_key)
    if not io.as_json:
        io.say(f"Accepted: batch {batch.id}, {total} items; cascade {cascade_text(batch)}.")
        for warning in batch.warnings:
            io.note(f"{PROG}: warning: {warning}")
    return follow(io, client, batch, args)


def follow(io: Io, client: LlmBatchClient, batch: Batch, args: argparse.Namespace) -> int:
    """After submit or retry: wait with --wait, else print the batch (--json) or how to follow it."""
    if args.wait:
        return wait_for(io, client, batch.id, args)
    return io.show(batch.raw, f"Follow it: {PROG} wait {batch.id}")


def cmd_estimate(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    items, options, _ = _submission(args)
    estimate = client.estimate(items, options, fallback=args.fallback)
    return io.show(estimate.raw, estimate_report(estimate))


def cmd_status(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    if args.wait:
        return wait_for(io, client, args.batch_id, args)
    batch = client.get(args.batch_id)
    if batch.finished:
        return show_finished(io, batch)
    if io.as_json:
        io.dump(batch.raw)
    else:
        io.say(progress_line(batch))
    return EXIT_NOT_FINISHED


def cmd_wait(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    return wait_for(io, client, args.batch_id, args)


def cmd_results(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    client.get(args.batch_id)  # a missing batch fails here with one line, before any file is created
    rows = client.iter_results(
        args.batch_id,
        status="failed" if args.failed_only else args.status,
        pass_number=args.pass_number,
        tier=args.tier,
        since_pass=args.since_pass,
        updated_after=args.updated_after,
        ndjson=True,
    )
    if not args.output:
        write_rows(io.out, rows, args.format)
        return EXIT_DONE
    path = Path(args.output)
    try:
        with output_file(path) as handle:
            tally = write_rows(handle, rows, args.format)
    except OSError as error:
        raise UsageError(f"-o {args.output}: {error}") from None
    written = sum(tally.values())
    if io.as_json:
        io.dump({"batch_id": args.batch_id, "path": str(path), "rows": written, **tally})
    else:
        by_status = ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
        io.note(f"Wrote {written} rows to {path}" + (f": {by_status}" if by_status else ""))
    return EXIT_DONE


def cmd_retry(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    batch = client.retry(
        args.batch_id,
        model=args.model,
        params=json_object("--params", args.params),
        custom_ids=args.custom_ids,
        idempotency_key=args.idempotency_key,
    )
    if not io.as_json:
        io.say(retry_text(batch))
    return follow(io, client, batch, args)


def cmd_budget(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    budget_usd = None if args.usd.lower() == "none" else amount("USD", args.usd)
    batch = client.set_budget(args.batch_id, budget_usd)
    if not io.as_json:
        now = f"${batch.budget.budget_usd}" if batch.budget is not None else "none"
        io.say(f"Batch {batch.id} ({batch.status}): budget {now}.")
    return follow(io, client, batch, args)


def cmd_cancel(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    batch = client.cancel(args.batch_id)
    return io.show(batch.raw, f"Cancelling batch {batch.id}: results finished before the cancel are kept.")


def cmd_delete(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    batch = client.delete_batch(args.batch_id)
    if batch.purged:
        return io.show(batch.raw, f"Batch {batch.id} is deleted: its content is purged; counts and cost remain.")
    running = " It is cancelled first." if not batch.finished else ""
    return io.show(batch.raw, f"Deleting batch {batch.id}: its content is being purged.{running}")


def cmd_list(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    batches = list(itertools.islice(client.list(status=args.status), args.limit))
    if io.as_json:
        io.dump([batch.raw for batch in batches])
        return EXIT_DONE
    if not batches:
        io.say("No batches." if not args.status else f"No {args.status} batches.")
        return EXIT_DONE
    headers = ["batch", "status", "created", "items", "succeeded", "failed", "pending", "passes", "cost USD"]
    rows = [
        [
            b.id,
            b.status,
            b.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            count(b.counts.total),
            count(b.counts.succeeded),
            count(b.counts.failed),
            count(b.counts.pending + b.counts.retrying),
            str(len(b.passes)),
            usd(b.cost.usd),
        ]
        for b in batches
    ]
    for line in format_table(headers, rows, [False, False, False, *[True] * 6], total=False):
        io.say(line)
    return EXIT_DONE


def cmd_models(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    catalogue = client.models()
    if io.as_json:
        io.dump({"default_cascade": list(catalogue.default_cascade), "models": [m.id for m in catalogue.models]})
        return EXIT_DONE
    headers = ["model", "usable", "structured output", "in $/M", "out $/M", "max output", "lifecycle"]
    rows = [
        [
            m.id,
            "yes" if m.usable else f"no: {m.reason or m.lifecycle}",
            m.structured_output,
            "-" if m.input_usd_per_million is None else usd(m.input_usd_per_million),
            "-" if m.output_usd_per_million is None else usd(m.output_usd_per_million),
            count(m.max_completion_tokens),
            m.lifecycle,
        ]
        for m in catalogue.models
    ]
    for line in format_table(headers, rows, [False, False, False, True, True, True, False], total=False):
        io.say(line)
    io.say(f"\nDefault cascade (--with-fallback): {' -> '.join(catalogue.default_cascade)}")
    return EXIT_DONE
