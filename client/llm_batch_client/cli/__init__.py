"""`llm-batch`: drive a running llm-batch service from a terminal (the successor of `run_llm_batch`).

    llm-batch submit items.jsonl --limit 10 --with-fallback --wait   # run_llm_batch --limit 10 --with-fallback --poll
    llm-batch estimate items.jsonl --with-fallback --budget 5
    llm-batch retry lb_01... --wait                                  # run_llm_batch --retry-batch ID
    llm-batch budget lb_01... 12.50 --wait                           # raise the budget; resend budget_exceeded
    llm-batch status ID | wait ID | results ID -o out.csv --format csv | cancel ID | delete ID | list | models

Talks HTTP to the service (LLM_BATCH_URL, LLM_BATCH_TOKEN, or --url/--token).
Exit codes: 0 done (every item succeeded, or the command did what it was asked), 1 finished with failed items
(or the batch failed / was cancelled), 2 bad usage, bad input or an error from the service / no connection,
3 the batch is not finished yet (status of a running batch, or the wait gave up), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from llm_batch_client.cli.commands import (
    EXIT_DONE,
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_NOT_FINISHED,
    EXIT_USAGE,
    PROG,
    Io,
    cmd_budget,
    cmd_cancel,
    cmd_delete,
    cmd_estimate,
    cmd_list,
    cmd_models,
    cmd_results,
    cmd_retry,
    cmd_status,
    cmd_submit,
    cmd_wait,
)
from llm_batch_client.cli.inputs import UsageError
from llm_batch_client.cli.output import FORMATS
from llm_batch_client.errors import LlmBatchConnectionError, LlmBatchError
from llm_batch_client.retrying import RetryPolicy
from llm_batch_client.sync_client import LlmBatchClient

__all__ = ["EXIT_DONE", "EXIT_FAILURES", "EXIT_INTERRUPTED", "EXIT_NOT_FINISHED", "EXIT_USAGE", "main"]

DEFAULT_URL = "http://127.0.0.1:8000"
STATUSES = ["queued", "running", "completed", "failed", "cancelled"]
Command = Callable[[Io, LlmBatchClient, argparse.Namespace], int]
CLI_RESENDS = RetryPolicy(sends=3, backoff_seconds=0.25)  # a person is waiting: give up on no answer within a second


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Accepted before or after the command (`llm-batch --json status ID` = `llm-batch status ID --json`)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("service")
    group.add_argument("--url", default=default(None), help=f"service URL (env LLM_BATCH_URL; default {DEFAULT_URL})")
    group.add_argument("--token", default=default(None), help="bearer token (env LLM_BATCH_TOKEN)")
    group.add_argument("--json", dest="as_json", action="store_true", default=default(False), help="print JSON")
    group.add_argument("--http-timeout", type=float, default=default(60.0), help="seconds per request (default 60)")


def _wait_options(parser: argparse.ArgumentParser, flag: str | None) -> None:
    if flag is not None:
        parser.add_argument("--wait", "--follow", "--poll", dest="wait", action="store_true", help=flag)
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds between polls (default 2)")
    parser.add_argument(
        "--wait-timeout", "--timeout", type=float, default=24 * 3600.0, help="give up waiting after SECONDS"
    )


def _submission_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("items", metavar="FILE", help="items: JSON Lines (.jsonl), or JSON (a list, or a body)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N items")
    parser.add_argument(
        "--with-fallback", "--fallback", dest="fallback", action="store_true", help="run the cascade: failures move on"
    )
    parser.add_argument("--cascade", metavar="M1,M2", help="the tiers' models, cheapest first")
    parser.add_argument("--model", help="the first tier's model")
    parser.add_argument("--fallback-model", help="with --with-fallback: the second tier's model")
    parser.add_argument("--fallback-params", metavar="JSON", help="the second tier's params (JSON or @FILE)")
    strict = parser.add_mutually_exclusive_group()
    strict.add_argument("--strict", dest="strict", action="store_true", default=None, help="strict structured output")
    strict.add_argument("--no-strict", dest="strict", action="store_false", help="best-effort structured output")
    parser.add_argument("--params", metavar="JSON", help="merged under every body (JSON or @FILE)")
    parser.add_argument("--output-schema", metavar="FILE", help="JSON Schema every output must meet")
    parser.add_argument("--metadata", metavar="JSON", help="kept with the batch (JSON or @FILE)")
    parser.add_argument("--budget", metavar="USD", help="the most the batch may cost")
    parser.add_argument("--reuse", action="store_true", default=None, help="take identical earlier answers, free")
    parser.add_argument("--callback-url", help="URL that gets the signed webhook when the batch finishes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Submit and follow LLM batches on a running llm-batch service.",
        epilog="Exit codes: 0 done, 1 failed items remain, 2 usage/input/service error, 3 not finished yet.",
    )
    _connection_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Command, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _connection_options(sub, suppress=True)
        sub.set_defaults(run=run)
        return sub

    submit = command("submit", cmd_submit, "submit FILE's items as a batch")
    _submission_options(submit)
    submit.add_argument("--idempotency-key", metavar="KEY", help="resubmitting with KEY creates nothing new")
    _wait_options(submit, "wait for the batch, with a progress line, then print the cost report")

    estimate = command("estimate", cmd_estimate, "what FILE's items would cost, per tier, without submitting")
    _submission_options(estimate)

    status = command("status", cmd_status, "a batch's progress, or its cost report once finished")
    status.add_argument("batch_id", metavar="ID")
    _wait_options(status, "wait for it to finish (as the wait command)")

    wait = command("wait", cmd_wait, "wait for a batch with a progress line, then print its cost report")
    wait.add_argument("batch_id", metavar="ID")
    _wait_options(wait, None)

    results = command("results", cmd_results, "a batch's result rows (JSON, NDJSON or CSV)")
    results.add_argument("batch_id", metavar="ID")
    results.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    results.add_argument("--format", choices=FORMATS, default="ndjson", help="default: ndjson")
    results.add_argument("--status", choices=["succeeded", "failed", "pending", "retrying"])
    results.add_argument("--failed-only", action="store_true", help="same as --status failed")
    results.add_argument("--pass", dest="pass_number", type=int, metavar="N", help="rows decided in pass N")
    results.add_argument("--tier", type=int, metavar="N", help="rows decided on tier N")
    results.add_argument("--since-pass", type=int, metavar="N", help="rows changed after pass N (a retry's)")
    results.add_argument("--updated-after", metavar="TIME", help="rows changed after TIME (ISO 8601, UTC)")

    retry = command("retry", cmd_retry, "send a batch's failed items again as a new pass")
    retry.add_argument("batch_id", metavar="ID")
    retry.add_argument("--model", help="model of the retry pass (default: the cascade's last tier)")
    retry.add_argument("--params", metavar="JSON", help="params of the retry pass (JSON or @FILE)")
    retry.add_argument(
        "--custom-id", dest="custom_ids", action="extend", nargs="+", metavar="ID", help="only these failed items"
    )
    retry.add_argument("--idempotency-key", metavar="KEY", help="sending the retry again with KEY adds no pass")
    _wait_options(retry, "wait for the retry, with a progress line, then print the cost report")

    budget = command(
        "budget",
        cmd_budget,
        "raise a running batch's budget, or set a finished one's (its budget_exceeded items are sent within it)",
    )
    budget.add_argument("batch_id", metavar="ID")
    budget.add_argument("usd", metavar="USD", help="the new budget in USD, or none")
    _wait_options(budget, "wait for the batch, with a progress line, then print the cost report")

    cancel = command("cancel", cmd_cancel, "cancel a batch (finished results are kept)")
    cancel.add_argument("batch_id", metavar="ID")

    delete = command("delete", cmd_delete, "delete a batch: cancel it if running, purge its bodies, answers and files")
    delete.add_argument("batch_id", metavar="ID")

    listing = command("list", cmd_list, "batches, newest first")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="at most N batches (default 20)")

    command("models", cmd_models, "the model catalogue and the default cascade")
    return parser


def no_answer_message(error: LlmBatchConnectionError, args: argparse.Namespace) -> str:
    """One line: the URL and where it came from, what happened, and what to do about it."""
    source = "--url" if args.url else "LLM_BATCH_URL" if os.environ.get("LLM_BATCH_URL") else "the default of --url"
    text = f"{PROG}: no answer from {error.url} ({source}): {error.reason} ({error.attempts})."
    if not error.reached:
        return text + " Nothing reached the service: is it running there? Else give its address with --url."
    if error.idempotency_key is not None:
        return text + (
            f" It may have acted on it: run the same command with --idempotency-key {error.idempotency_key} to get"
            " what it did instead of doing it twice."
        )
    return text + " Try again once it answers."


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its message; usage errors are 2, --help is 0
        return int(exit_.code or 0)
    io = Io(out, err, args.as_json)
    url = args.url or os.environ.get("LLM_BATCH_URL") or DEFAULT_URL
    token = args.token or os.environ.get("LLM_BATCH_TOKEN") or None
    run: Command = args.run
    try:
        with LlmBatchClient(url, token=token, timeout=args.http_timeout, retry=CLI_RESENDS) as client:
            return run(io, client, args)
    except UsageError as error:
        io.note(f"{PROG}: {error}")
        return EXIT_USAGE
    except LlmBatchConnectionError as error:
        io.note(no_answer_message(error, args))
        return EXIT_USAGE
    except LlmBatchError as error:
        where = f" ({error.field})" if error.field else ""
        io.note(f"{PROG}: {error.status} {error.title}{where}: {error.detail}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        io.note(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
