"""`llm-batch`: drive a running llm-batch service from a terminal (the successor of `run_llm_batch`).

    llm-batch submit ITEMS.jsonl --fallback --limit 10 --wait     # run_llm_batch --limit 10 --with-fallback --poll
    llm-batch retry lb_01... --model openai/gpt-oss-120b          # run_llm_batch --retry-batch ID
    llm-batch status lb_01... [--wait] | results lb_01... -o out.jsonl [--failed-only] | cancel ID | list

Talks HTTP to the service through llm_batch_client.client (LLM_BATCH_URL, LLM_BATCH_TOKEN, or --url/--token).
Exit codes: 0 done (every item succeeded, or the command did what it was asked), 1 finished with failed items
(or the batch failed / was cancelled), 2 bad usage, bad input or an error from the service / no connection,
3 the batch is not finished yet (status of a running batch, or --wait gave up), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from llm_batch_client.client import BatchWaitTimeout, LlmBatchClient, LlmBatchConnectionError, LlmBatchError
from llm_batch_client.report import ProgressView, final_line, format_table, money, pass_table, progress_bars

PROG = "llm-batch"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_POLL_SECONDS = 2.0
DEFAULT_WAIT_SECONDS = 24 * 3600.0
EXIT_DONE, EXIT_FAILURES, EXIT_USAGE, EXIT_NOT_FINISHED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
TERMINAL_STATUSES = ("completed", "failed", "cancelled")

JsonObject = dict[str, Any]


class UsageError(Exception):
    """Bad arguments or bad input: one line for the user, exit code 2."""


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
        print(json.dumps(value, indent=2, ensure_ascii=False), file=self.out)


# -- reading input ---------------------------------------------------------------------------------------


def read_items(path: str, limit: int | None = None) -> list[JsonObject]:
    """ITEMS.jsonl: one {"custom_id": str, "body": {...}} per line; blank lines are skipped."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{path}: no such file")
    items: list[JsonObject] = []
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if limit is not None and len(items) >= limit:
                break
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except json.JSONDecodeError as error:
                raise UsageError(f"{path} line {number}: not valid JSON: {error.msg} at column {error.colno}") from None
            except UnicodeDecodeError:
                raise UsageError(f"{path} line {number}: not UTF-8 text") from None
            items.append(_checked_item(item, f"{path} line {number}"))
    if not items:
        raise UsageError(f"{path}: no items (expected one JSON object per line)")
    return items


def _checked_item(item: Any, where: str) -> JsonObject:
    if not isinstance(item, dict):
        raise UsageError(f'{where}: expected an object {{"custom_id": ..., "body": {{...}}}}')
    unexpected = sorted(set(item) - {"custom_id", "body"})
    if unexpected:
        raise UsageError(f'{where}: unexpected key "{unexpected[0]}" (an item has only "custom_id" and "body")')
    if not isinstance(item.get("custom_id"), str) or not item["custom_id"]:
        raise UsageError(f'{where}: "custom_id" must be a non-empty string')
    if not isinstance(item.get("body"), dict):
        raise UsageError(f'{where}: "body" must be an object (a chat-completions body without "model")')
    return item


def json_object_arg(option: str, value: str | None) -> JsonObject | None:
    """A JSON object given inline, or as @FILE."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        text = _read_text(option, value[1:])
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{option}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    if not isinstance(parsed, dict):
        raise UsageError(f"{option}: expected a JSON object")
    return parsed


def json_file_arg(option: str, path: str | None) -> JsonObject | None:
    return None if path is None else json_object_arg(option, "@" + path)


def _read_text(option: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{option}: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{option}: {path}: {error}") from None


# -- showing batches ---------------------------------------------------------------------------------------


def outcome_code(summary: JsonObject) -> int:
    if summary["status"] not in TERMINAL_STATUSES:
        return EXIT_NOT_FINISHED
    if summary["status"] == "completed" and summary["counts"]["failed"] == 0:
        return EXIT_DONE
    return EXIT_FAILURES


def show_summary(io: Io, summary: JsonObject) -> int:
    if io.as_json:
        io.dump(summary)
    else:
        for line in progress_bars(summary):
            io.say(line)
        if summary["status"] in TERMINAL_STATUSES:
            io.say()
            for line in pass_table(summary):
                io.say(line)
            io.say()
            io.say(final_line(summary))
    return outcome_code(summary)


def wait_for(io: Io, client: LlmBatchClient, batch_id: str, args: argparse.Namespace) -> int:
    view = ProgressView(io.err)
    on_progress: Callable[[JsonObject], None] | None = None
    if not io.as_json:

        def on_progress(summary: JsonObject) -> None:
            view.update(progress_bars(summary))

    try:
        summary = client.wait(
            batch_id, timeout=args.wait_timeout, poll_interval=args.poll_interval, on_progress=on_progress
        )
    except BatchWaitTimeout as error:
        io.note(f"{PROG}: {error}; follow it with: {PROG} status {batch_id} --wait")
        return EXIT_NOT_FINISHED
    except KeyboardInterrupt:
        io.note(f"\nStopped waiting; batch {batch_id} carries on. Follow it with: {PROG} status {batch_id} --wait")
        return EXIT_INTERRUPTED
    if io.as_json:
        io.dump(summary)
        return outcome_code(summary)
    io.say()
    for line in pass_table(summary):
        io.say(line)
    io.say()
    io.say(final_line(summary))
    io.say(f"Batch {batch_id} {summary['status']}.")
    return outcome_code(summary)


# -- commands ---------------------------------------------------------------------------------------------


def cmd_submit(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    # The options are checked before a large items file is read.
    params = json_object_arg("--params", args.params)
    fallback_params = json_object_arg("--fallback-params", args.fallback_params)
    output_schema = json_file_arg("--output-schema", args.output_schema)
    metadata = json_object_arg("--metadata", args.metadata)
    items = read_items(args.items, args.limit)
    created = client.submit(
        items,
        fallback=args.fallback,
        params=params,
        model=args.model,
        fallback_model=args.fallback_model,
        fallback_params=fallback_params,
        output_schema=output_schema,
        callback_url=args.callback_url,
        metadata=metadata,
        idempotency_key=args.idempotency_key,
    )
    batch_id = created["id"]
    if not io.as_json:
        fallback = f"failures to {created['fallback_model']}" if created["fallback"] else "no fallback pass"
        io.say(f"Accepted: batch {batch_id}, {len(items)} items; pass 1 on {created['model']}, {fallback}.")
    return wait_or_follow(io, client, batch_id, created, args)


def wait_or_follow(
    io: Io, client: LlmBatchClient, batch_id: str, summary: dict[str, Any], args: argparse.Namespace
) -> int:
    """After submit or retry: wait with --wait, else print the summary (--json) or how to follow it."""
    if args.wait:
        return wait_for(io, client, batch_id, args)
    if io.as_json:
        io.dump(summary)
    else:
        io.say(f"Follow it: {PROG} status {batch_id} --wait")
    return EXIT_DONE


def cmd_status(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    if args.wait:
        return wait_for(io, client, args.batch_id, args)
    return show_summary(io, client.get(args.batch_id))


def cmd_results(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    client.get(args.batch_id)  # a missing batch fails here with one line, before any file is created
    rows = client.iter_results(args.batch_id, status="failed" if args.failed_only else None)
    tally = {"succeeded": 0, "failed": 0, "pending": 0}
    if args.output:
        path = Path(args.output)
        temporary = path.with_name(path.name + ".part")
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                _write_rows(handle, rows, tally)
        except OSError as error:
            raise UsageError(f"-o {args.output}: {error}") from None
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        temporary.replace(path)
        written = sum(tally.values())
        if io.as_json:
            io.dump({"batch_id": args.batch_id, "path": str(path), "rows": written, **tally})
        else:
            io.note(f"Wrote {written} rows to {path}: " + ", ".join(f"{n} {k}" for k, n in tally.items() if n))
    else:
        _write_rows(io.out, rows, tally)
    return EXIT_DONE


def _write_rows(handle: TextIO, rows: Any, tally: dict[str, int]) -> None:
    for row in rows:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        tally[row.get("status", "pending")] = tally.get(row.get("status", "pending"), 0) + 1


def cmd_retry(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    summary = client.retry(
        args.batch_id,
        model=args.model,
        params=json_object_arg("--params", args.params),
        custom_ids=args.custom_ids,
    )
    retry_pass = max(summary["passes"], key=lambda p: p["number"])
    if not io.as_json:
        which = f"{len(args.custom_ids)} chosen" if args.custom_ids else "all failed"
        io.say(f"Retrying {which} items of {args.batch_id} as pass {retry_pass['number']} on {retry_pass['model']}.")
    return wait_or_follow(io, client, args.batch_id, summary, args)


def cmd_cancel(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    summary = client.cancel(args.batch_id)
    if io.as_json:
        io.dump(summary)
    else:
        io.say(f"Cancelling batch {args.batch_id}: results finished before the cancel are kept.")
    return EXIT_DONE


def cmd_list(io: Io, client: LlmBatchClient, args: argparse.Namespace) -> int:
    page = client.list(status=args.status, limit=args.limit, after=args.after)
    if io.as_json:
        io.dump(page)
        return EXIT_DONE
    headers = ["batch", "status", "created", "items", "succeeded", "failed", "pending", "passes", "cost USD"]
    rows = [
        [
            b["id"],
            b["status"],
            str(b.get("created_at", ""))[:19].replace("T", " "),
            str(b["counts"]["total"]),
            str(b["counts"]["succeeded"]),
            str(b["counts"]["failed"]),
            str(b["counts"]["pending"]),
            str(len(b["passes"])),
            money(b["cost"]["usd"]),
        ]
        for b in page["data"]
    ]
    if not rows:
        io.say("No batches." if not args.status else f"No {args.status} batches.")
        return EXIT_DONE
    for line in format_table(headers, rows, [False, False, False, *[True] * 6], total=False):
        io.say(line)
    if page.get("has_more"):
        io.say(f"More: {PROG} list --after {page['next_cursor']}")
    return EXIT_DONE


# -- arguments --------------------------------------------------------------------------------------------


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Accepted before or after the command (`llm-batch --json status ID` = `llm-batch status ID --json`)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("service")
    group.add_argument("--url", default=default(None), help=f"service URL (env LLM_BATCH_URL; default {DEFAULT_URL})")
    group.add_argument("--token", default=default(None), help="bearer token (env LLM_BATCH_TOKEN)")
    group.add_argument("--json", dest="as_json", action="store_true", default=default(False), help="print JSON")
    group.add_argument(
        "--http-timeout", type=float, default=default(60.0), help="seconds per HTTP request (default 60)"
    )


def _wait_options(parser: argparse.ArgumentParser, flag_help: str, *aliases: str) -> None:
    parser.add_argument("--wait", *aliases, action="store_true", help=flag_help)
    parser.add_argument(
        "--poll-interval", type=float, default=DEFAULT_POLL_SECONDS, help="seconds between polls (default 2)"
    )
    parser.add_argument(
        "--wait-timeout", type=float, default=DEFAULT_WAIT_SECONDS, help="give up waiting after this many seconds"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Submit and follow two-pass LLM batches on a running llm-batch service.",
        epilog="Exit codes: 0 done, 1 failed items remain, 2 usage/input/service error, 3 not finished yet.",
    )
    _connection_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _connection_options(sub, suppress=True)
        return sub

    submit = command("submit", "submit ITEMS.jsonl (one {custom_id, body} per line) as a batch")
    submit.add_argument("items", metavar="ITEMS.jsonl")
    submit.add_argument(
        "--fallback", "--with-fallback", action="store_true", help="send pass-1 failures to the fallback model"
    )
    submit.add_argument("--limit", type=int, help="submit only the first N items")
    submit.add_argument("--model", help="pass-1 model (default: the service's PRIMARY_MODEL)")
    submit.add_argument("--fallback-model", help="pass-2 model (default: the service's FALLBACK_MODEL)")
    submit.add_argument("--params", help="JSON object (or @FILE) merged under every item's body")
    submit.add_argument("--fallback-params", help="JSON object (or @FILE) merged over each body in pass 2")
    submit.add_argument("--output-schema", metavar="FILE", help="JSON Schema file every output must meet")
    submit.add_argument("--metadata", help="JSON object stored with the batch")
    submit.add_argument("--callback-url", help="URL that receives the signed webhook when the batch finishes")
    submit.add_argument("--idempotency-key", help="the same key again returns the first batch instead of a new one")
    _wait_options(submit, "wait for the batch, with a progress bar per pass, then print the table", "--poll")
    submit.set_defaults(run=cmd_submit)

    status = command("status", "show a batch: progress per pass, then the per-pass table once finished")
    status.add_argument("batch_id", metavar="ID")
    _wait_options(status, "wait until the batch finishes")
    status.set_defaults(run=cmd_status)

    results = command("results", "write the merged results as JSON lines (to stdout, or -o FILE)")
    results.add_argument("batch_id", metavar="ID")
    results.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    results.add_argument("--failed-only", action="store_true", help="only the failed items")
    results.set_defaults(run=cmd_results)

    retry = command("retry", "send the failed items again as a new pass (default: the fallback model)")
    retry.add_argument("batch_id", metavar="ID")
    retry.add_argument("--model", help="model of the retry pass")
    retry.add_argument("--params", help="JSON object (or @FILE) replacing fallback_params for this pass")
    retry.add_argument(
        "--custom-id",
        dest="custom_ids",
        action="extend",
        nargs="+",
        metavar="CUSTOM_ID",
        help="retry only these failed items (repeatable)",
    )
    _wait_options(retry, "wait for the retry pass to finish")
    retry.set_defaults(run=cmd_retry)

    cancel = command("cancel", "cancel a batch (finished results are kept)")
    cancel.add_argument("batch_id", metavar="ID")
    cancel.set_defaults(run=cmd_cancel)

    listing = command("list", "list batches, newest first")
    listing.add_argument("--status", choices=["queued", "running", *TERMINAL_STATUSES])
    listing.add_argument("--limit", type=int, default=20, help="batches per page (default 20, at most 200)")
    listing.add_argument("--after", metavar="CURSOR", help="the next page (printed under a full page)")
    listing.set_defaults(run=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed its message; usage errors are 2, --help is 0
        return int(exit_.code or 0)
    io = Io(out, err, args.as_json)
    url = args.url or os.environ.get("LLM_BATCH_URL") or DEFAULT_URL
    token = args.token or os.environ.get("LLM_BATCH_TOKEN") or None
    run: Callable[[Io, LlmBatchClient, argparse.Namespace], int] = args.run
    try:
        with LlmBatchClient(url, token=token, timeout=args.http_timeout) as client:
            return run(io, client, args)
    except UsageError as error:
        io.note(f"{PROG}: {error}")
    except LlmBatchConnectionError as error:
        io.note(f"{PROG}: cannot reach the service at {url}: {error.detail}")
    except LlmBatchError as error:
        io.note(f"{PROG}: {error.status} {error.title}: {error.detail}")
    except KeyboardInterrupt:
        io.note(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
