"""``make demo``: run the real service on ~200 synthetic PR analyses and show what two passes cost.

Starts the app (workers included) with uvicorn on a free local port, submits the batch with
``?fallback=true`` over HTTP, draws each pass's progress, then prints a table per pass and what the
same run would have cost on the primary model only or on the fallback model only.

Without ``GROQ_API_KEY`` the app runs against its built-in Groq emulator, with emulated time 20x
faster than real time, so the demo takes a few seconds; Ctrl-C cancels the batch, since the
emulator's state ends with the process. With a key it sends real batches to Groq, which may take
minutes to hours; Ctrl-C then leaves the batch to the service's next start.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import httpx
import uvicorn
from llm_batch_client.report import ProgressView, final_line, money, pass_table, price
from llm_batch_client.report import (
    format_table as format_table,  # re-exported: tests/unit/test_demo_data.py imports them
)
from llm_batch_client.report import reasons_text as reasons_text

from demo.data import DEFAULT_COUNT, DEFAULT_SEED, demo_payload
from service.settings import Settings
from service.store.database import display_url

# Environment defaults for the demo only; anything the user set wins.
DEMO_ENV_DEFAULTS = {
    "POLL_INTERVAL_SECONDS": "1",
    "EMULATOR_TIME_SCALE": "0.05",  # emulated time runs 20x faster than real time
}
POLL_EVERY_SECONDS = 0.5
STARTUP_TIMEOUT_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 300.0
SHUTDOWN_TIMEOUT_SECONDS = 40.0
CANCEL_WAIT_SECONDS = 10.0
TERMINAL = ("completed", "failed", "cancelled")
TOKENS_PER_PRICE_UNIT = 1_000_000


# -- what-if arithmetic (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class WhatIf:
    """What the same items would have cost with a single model, next to what the run cost."""

    actual_usd: float
    primary_model: str
    primary_only_usd: float  # pass 1 as it ran: its failures stay failed
    primary_only_failed: int
    fallback_model: str
    fallback_only_usd: float | None  # None when no item reached the fallback model (nothing to go on)
    fallback_measured_items: int  # items whose fallback-model tokens were measured in this run
    fallback_estimated_items: int  # items whose fallback-model tokens are estimated
    fallback_avg_output_tokens: float | None
    primary_avg_input_tokens: float  # per pass-1 item with usage, over the items not measured on the fallback
    fallback_avg_input_tokens: float | None  # per item measured on the fallback model

    @property
    def saving_vs_fallback_pct(self) -> float | None:
        if not self.fallback_only_usd:
            return None
        return (self.fallback_only_usd - self.actual_usd) / self.fallback_only_usd * 100.0


def _usd(prices: Mapping[str, tuple[float, float]], model: str, input_tokens: float, output: float) -> float:
    price_in, price_out = prices[model]
    return (input_tokens * price_in + output * price_out) / TOKENS_PER_PRICE_UNIT


def _usage(row: Mapping[str, Any]) -> tuple[int, int]:
    usage = row.get("usage") or {}
    return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)


def whatif_costs(
    summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], prices: Mapping[str, tuple[float, float]]
) -> WhatIf:
    """Primary-only and fallback-only costs of the run in ``summary`` (GET /batches/{id}), whose merged
    result rows (GET /batches/{id}/results) are ``rows``; ``prices`` are batch USD per 1M tokens.

    Primary only: pass 1 exactly as it ran, its failures left unrecovered.
    Fallback only (an estimate): an item that was sent to the fallback model counts with the tokens
    measured there; any other item with its pass-1 input tokens (the pass-1 average when its line had
    no usage) and the average output tokens of the fallback model's answers in this run.
    """
    passes = sorted(summary["passes"], key=lambda p: p["number"])
    first = passes[0]
    primary_model: str = first["model"]
    fallback_model: str = summary.get("fallback_model") or (passes[1]["model"] if len(passes) > 1 else primary_model)
    primary_only = _usd(prices, primary_model, first["cost"]["input_tokens"], first["cost"]["output_tokens"])

    measured: list[Mapping[str, Any]] = []
    others: list[Mapping[str, Any]] = []
    for row in rows:
        (measured if row.get("model") == fallback_model and row.get("usage") else others).append(row)
    outputs = [output for _, output in map(_usage, measured) if output > 0]
    avg_output = sum(outputs) / len(outputs) if outputs else None
    pass1_inputs = [_usage(row)[0] for row in others if row.get("pass") == 1 and _usage(row)[0] > 0]
    avg_input = sum(pass1_inputs) / len(pass1_inputs) if pass1_inputs else 0.0
    measured_inputs = [inp for inp, _ in map(_usage, measured)]
    avg_measured_input = sum(measured_inputs) / len(measured_inputs) if measured_inputs else None

    fallback_only: float | None = None
    if avg_output is not None or not others:
        input_tokens = float(sum(_usage(row)[0] for row in measured))
        output_tokens = float(sum(_usage(row)[1] for row in measured))
        for row in others:
            own_input = _usage(row)[0] if row.get("pass") == 1 else 0
            input_tokens += own_input if own_input > 0 else avg_input
            output_tokens += avg_output or 0.0
        fallback_only = _usd(prices, fallback_model, input_tokens, output_tokens)

    return WhatIf(
        actual_usd=float(summary["cost"]["usd"]),
        primary_model=primary_model,
        primary_only_usd=primary_only,
        primary_only_failed=int(first["failed"]),
        fallback_model=fallback_model,
        fallback_only_usd=fallback_only,
        fallback_measured_items=len(measured),
        fallback_estimated_items=len(others),
        fallback_avg_output_tokens=avg_output,
        primary_avg_input_tokens=avg_input,
        fallback_avg_input_tokens=avg_measured_input,
    )


# -- plain-text tables (the per-pass table is service/report.py, shared with the llm-batch CLI) ---------


def whatif_lines(summary: Mapping[str, Any], whatif: WhatIf, prices: Mapping[str, tuple[float, float]]) -> list[str]:
    counts = summary["counts"]
    total = counts["total"]
    models = [whatif.primary_model] + ([whatif.fallback_model] if whatif.fallback_model != whatif.primary_model else [])
    price_text = "; ".join(f"{m} {price(prices[m][0])} in / {price(prices[m][1])} out" for m in models)
    share = whatif.primary_only_failed / total * 100 if total else 0.0
    rows = [
        [
            "two passes, as run",
            money(whatif.actual_usd),
            f"{counts['succeeded']} succeeded, {counts['failed']} failed",
        ],
        [
            f"{whatif.primary_model} only",
            money(whatif.primary_only_usd),
            f"{whatif.primary_only_failed} items would have failed ({share:.1f}%)",
        ],
        [
            f"{whatif.fallback_model} only (estimate)",
            money(whatif.fallback_only_usd) if whatif.fallback_only_usd is not None else "n/a",
            "" if whatif.fallback_only_usd is not None else "no item reached the fallback model",
        ],
    ]
    lines = [f"What if the same {total} items had used one model (batch prices per 1M tokens: {price_text}):"]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines += [f"  {r[0].ljust(widths[0])}  {r[1].rjust(widths[1])}  {r[2]}".rstrip() for r in rows]
    saving = whatif.saving_vs_fallback_pct
    if saving is not None:
        verb = "saves" if saving >= 0 else "costs"
        lines.append(f"  Two passes {verb} {abs(saving):.1f}% versus {whatif.fallback_model} only.")
    if whatif.fallback_only_usd is not None and whatif.fallback_estimated_items:
        average = whatif.fallback_avg_output_tokens or 0.0
        lines += [
            f"  The {whatif.fallback_model}-only figure is an estimate: {whatif.fallback_measured_items}"
            f" items count with the tokens measured on {whatif.fallback_model},",
            f"  the other {whatif.fallback_estimated_items} with their pass-1 input tokens and"
            f" {average:,.0f} output tokens (the fallback model's average answer in this run).",
        ]
        fallback_input = whatif.fallback_avg_input_tokens
        if fallback_input is not None and fallback_input > whatif.primary_avg_input_tokens > 0:
            lines.append(
                f"  It errs low: prompts sent to {whatif.fallback_model} averaged {fallback_input:,.0f} input"
                f" tokens against {whatif.primary_avg_input_tokens:,.0f} on {whatif.primary_model},"
            )
            lines.append("  as a model without json_schema support gets the schema as an instruction too.")
    return lines


# -- progress ----------------------------------------------------------------------------------------


def pass_line(p: Mapping[str, Any], model_width: int) -> str:
    chunks = p.get("provider_batches") or []
    provider = ""
    if chunks:
        statuses = sorted({c.get("status") or c.get("state") or "?" for c in chunks})
        done = sum(c["request_counts"]["completed"] + c["request_counts"]["failed"] for c in chunks)
        lines = sum(c.get("lines") or 0 for c in chunks)
        provider = f"  [{'/'.join(statuses)} {done}/{lines}]"
    return (
        f"pass {p['number']}  {p['model'].ljust(model_width)}  {p['status']:<9}"
        f"{p['items']:>5} items {p['succeeded']:>4} ok {p['failed']:>4} failed {p['pending']:>4} pending"
        f"  {money(p['cost']['usd'])}{provider}"
    )


def progress_lines(summary: Mapping[str, Any]) -> list[str]:
    passes = sorted(summary["passes"], key=lambda p: p["number"])
    models = [summary.get("model") or "", summary.get("fallback_model") or "", *(p["model"] for p in passes)]
    width = max(len(model) for model in models)
    lines = [f"batch {summary['id']}  {summary['status']}"]
    lines += [pass_line(p, width) for p in passes]
    return lines


# -- the service -------------------------------------------------------------------------------------


def apply_env_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the demo's defaults (in ``os.environ`` by default) where the user set nothing; returns them."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    applied: dict[str, str] = {}
    for key, value in DEMO_ENV_DEFAULTS.items():
        if key not in env:
            env[key] = value
            applied[key] = value
    return applied


class BackgroundServer:
    """The app served by uvicorn on a free 127.0.0.1 port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="llm-batch-demo-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the service failed to start (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start within {STARTUP_TIMEOUT_SECONDS:.0f}s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        with contextlib.suppress(OSError):
            self.sock.close()


def describe_database(url: str, from_env: bool) -> str:
    shown = display_url(url)
    return f"{shown} ({'DATABASE_URL' if from_env else 'default; set DATABASE_URL to change'})"


def fetch_results(client: httpx.Client, batch_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        response = client.get(f"/batches/{batch_id}/results", params=params)
        response.raise_for_status()
        page = response.json()
        rows.extend(page["data"])
        if not page["has_more"]:
            return rows
        params["after"] = page["next_cursor"]


def submit(client: httpx.Client, payload: dict[str, Any], out: TextIO) -> dict[str, Any]:
    response = client.post("/batches", params={"fallback": "true"}, json=payload)
    if response.status_code != 202:
        raise RuntimeError(f"POST /batches answered {response.status_code}: {response.text}")
    created: dict[str, Any] = response.json()
    print(f"Accepted: batch {created['id']} ({response.headers.get('location', '')})", file=out)
    return created


def watch(client: httpx.Client, created: dict[str, Any], timeout: float, out: TextIO) -> dict[str, Any] | None:
    """Poll until a terminal status, drawing progress; the final summary, or None on timeout."""
    view = ProgressView(out)
    deadline = time.monotonic() + timeout
    summary = created
    while True:
        view.update(progress_lines(summary))
        if summary["status"] in TERMINAL:
            return summary
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL_EVERY_SECONDS)
        response = client.get(f"/batches/{created['id']}")
        response.raise_for_status()
        summary = response.json()


def cancel(client: httpx.Client, batch_id: str, out: TextIO) -> None:
    """Cancel the batch and wait a little for it to settle (the emulator's batches die with this process)."""
    print(f"Cancelling batch {batch_id}, whose emulated provider batches end with this process ...", file=out)
    try:
        client.post(f"/batches/{batch_id}/cancel")
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        status = "?"
        while time.monotonic() < deadline:
            status = client.get(f"/batches/{batch_id}").json()["status"]
            if status in TERMINAL:
                break
            time.sleep(POLL_EVERY_SECONDS)
        print(f"Batch {batch_id} is {status}.", file=out)
    except (httpx.HTTPError, KeyboardInterrupt):
        print("Could not cancel it; it stays in the database.", file=out)


def report(
    client: httpx.Client, summary: dict[str, Any], prices: Mapping[str, tuple[float, float]], out: TextIO
) -> None:
    rows = fetch_results(client, summary["id"])
    print(file=out)
    for line in pass_table(summary):
        print(line, file=out)
    print(file=out)
    print(final_line(summary), file=out)
    print(file=out)
    for line in whatif_lines(summary, whatif_costs(summary, rows, prices), prices):
        print(line, file=out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="number of PRs (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="data seed (default %(default)s)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds to wait for the batch (default %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stdout
    database_from_env = "DATABASE_URL" in os.environ
    applied = apply_env_defaults()

    from service.settings import get_settings

    get_settings.cache_clear()  # settings are read once per process; the environment has just changed
    settings = get_settings()
    from service.app import create_app  # after the environment is final: it reads settings at import

    # The service logs at INFO for operators; the demo shows progress itself, so only warnings get through.
    logging.getLogger().setLevel(logging.WARNING)

    print("llm-batch demo", file=out)
    print(f"  database: {describe_database(settings.database_url, database_from_env)}", file=out)
    if settings.uses_emulator:
        speed = 1 / settings.emulator_time_scale if settings.emulator_time_scale > 0 else 0
        print(
            "  provider: built-in Groq emulator (GROQ_API_KEY is not set); emulated time runs"
            f" {speed:g}x faster (EMULATOR_TIME_SCALE={settings.emulator_time_scale:g})",
            file=out,
        )
    else:
        print(f"  provider: Groq Batch API at {settings.groq_base_url or 'https://api.groq.com'}", file=out)
    if applied:
        print("  demo defaults: " + ", ".join(f"{k}={v}" for k, v in applied.items()), file=out)

    payload = demo_payload(args.count, args.seed)
    server = BackgroundServer(create_app(settings))
    try:
        server.start()
        print(f"  service:  {server.url}", file=out)
        return run(server.url, settings, payload, args.timeout, out)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=out)
        return 130
    except (RuntimeError, httpx.HTTPError) as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    finally:
        if server.thread.is_alive():
            print("Stopping the service ...", file=out)
        server.stop()


def run(url: str, settings: Settings, payload: dict[str, Any], timeout: float, out: TextIO) -> int:
    """Submit, watch, report: the part of the demo that talks to the running service."""
    headers = {"Authorization": f"Bearer {settings.api_tokens[0]}"} if settings.api_tokens else {}
    print(
        f"Submitting {len(payload['items'])} PR analyses: pass 1 on {settings.primary_model}, "
        f"failures to {settings.fallback_model} (?fallback=true)",
        file=out,
    )
    with httpx.Client(base_url=url, headers=headers, timeout=60.0) as client:
        created = submit(client, payload, out)
        try:
            summary = watch(client, created, timeout, out)
        except KeyboardInterrupt:
            print("\nInterrupted.", file=out)
            if settings.uses_emulator:
                cancel(client, created["id"], out)
            else:
                print(f"Batch {created['id']} carries on at Groq; the service resumes it on its next start.", file=out)
            return 130
        if summary is None:
            print(f"\nBatch {created['id']} is still running after {timeout:g}s; see GET /batches/{{id}}.", file=out)
            return 1
        report(client, summary, settings.prices(), out)
    print(f"\nBatch {summary['id']} {summary['status']}.", file=out)
    return 0 if summary["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
