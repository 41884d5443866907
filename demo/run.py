"""``make demo``: the real service on ~200 synthetic PR analyses, through the default cascade.

Starts the app (workers included) with uvicorn on a free local port and, over HTTP with the service's own
client (`llm_batch_client`):

1. asks what the run will cost (POST /batches/estimate) before sending anything;
2. runs the default cascade (gpt-oss-20b, then gpt-oss-120b for what it cannot do; strict structured output),
   drawing its progress, then prints the cost report and the estimate's error;
3. compares the bill with the floor (every item once on the cheapest tier) and with the strong model alone
   (run on the emulator; estimated when talking to Groq, where it would be billed);
4. runs the same items again with reuse: nothing is sent, nothing is billed;
5. runs them through a cascade across three providers, ``groq:openai/gpt-oss-20b -> openai:gpt-5-mini ->
   anthropic:claude-haiku-4-5``, best effort (so the 20B's invalid answers move on) and with a tight output budget
   on the OpenAI tier (so some of its answers run out of tokens twice and move on too): every tier has work, and the
   report shows what each provider cost.

Without any provider key the app runs against its built-in emulators, with emulated time 20x faster than real
time, so the demo takes seconds; Ctrl-C cancels the batch, since the emulators' state ends with the process. With
keys it sends real batches, which may take minutes to hours; Ctrl-C then leaves the batch to the service's next
start. Step 5 runs when every provider it names can (all emulated, or a key for each).
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
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

import httpx
import uvicorn
from llm_batch_client import (
    Batch,
    BatchOptions,
    BatchWaitTimeout,
    LlmBatchClient,
    LlmBatchError,
    TierSpec,
    cost_report,
    estimate_report,
    progress_line,
)

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
ACROSS_PROVIDERS = ("groq:openai/gpt-oss-20b", "openai:gpt-5-mini", "anthropic:claude-haiku-4-5")
OPENAI_TIGHT_BUDGET = 150  # max_completion_tokens of the OpenAI tier in step 5 (gpt-5-mini reasons first)


# -- the comparison (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """The run's bill next to the floor, the strong model alone and the estimate made before it."""

    cascade: Batch
    estimated_usd: Decimal
    strong_model: str
    strong_usd: Decimal
    strong_succeeded: int | None  # None: estimated, not run
    floor_usd: Decimal
    floor_failed: int

    @property
    def estimate_error(self) -> Decimal | None:
        actual = self.cascade.cost.usd
        return (self.estimated_usd - actual) / actual if actual else None

    @property
    def over_floor(self) -> Decimal | None:
        return self.cascade.cost.usd / self.floor_usd if self.floor_usd else None

    @property
    def saving_vs_strong(self) -> Decimal | None:
        return 1 - self.cascade.cost.usd / self.strong_usd if self.strong_usd else None


def floor_of(batch: Batch) -> tuple[Decimal, int]:
    """Every item once on the first tier: the first pass as it ran, and how many items it left failed."""
    first = min(batch.passes, key=lambda p: p.number)
    return first.cost.usd, first.failed


def comparison_lines(comparison: Comparison) -> list[str]:
    batch = comparison.cascade
    total = batch.counts.total
    first_model = str(batch.cascade[0]["model"]) if batch.cascade else "the first tier"
    strong_note = (
        f"{comparison.strong_succeeded} succeeded (run)" if comparison.strong_succeeded is not None else "estimated"
    )
    rows = [
        (
            "the cascade, as run",
            comparison.cascade.cost.usd,
            f"{batch.counts.succeeded} succeeded, {batch.counts.failed} failed",
        ),
        (
            f"floor: every item once on {first_model}",
            comparison.floor_usd,
            f"{comparison.floor_failed} of {total} items would have failed",
        ),
        (f"{comparison.strong_model} alone", comparison.strong_usd, strong_note),
    ]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"The same {total} items three ways:"]
    lines += [f"  {name.ljust(width)}  {usd(amount):>12}  {note}" for name, amount, note in rows]
    if comparison.over_floor is not None:
        lines.append(
            f"  The cascade costs {comparison.over_floor:.3f}x the floor",
        )
    if comparison.saving_vs_strong is not None:
        lines[-1] += f" and {comparison.saving_vs_strong:.1%} less than {comparison.strong_model} alone."
    if comparison.estimate_error is not None:
        lines.append(
            f"  Estimated before sending: {usd(comparison.estimated_usd)}; billed {usd(batch.cost.usd)} "
            f"({comparison.estimate_error:+.1%})."
        )
    return lines


def usd(amount: Decimal) -> str:
    return f"${amount:,.6f}"


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


def watch(client: LlmBatchClient, batch: Batch, timeout: float, out: TextIO) -> Batch:
    """Poll until the batch finishes, redrawing its progress line; BatchWaitTimeout after `timeout`."""
    interactive = out.isatty()
    shown: list[str] = []

    def show(current: Batch) -> None:
        line = progress_line(current)
        if shown and shown[-1] == line:
            return
        shown.append(line)
        print(f"\r{line}\033[K" if interactive else line, end="" if interactive else "\n", file=out, flush=True)

    show(batch)
    try:
        return client.wait(
            batch.id, timeout=timeout, poll_interval=POLL_EVERY_SECONDS, max_poll_interval=2.0, on_progress=show
        )
    finally:
        if interactive:
            print(file=out)


def cancel(client: LlmBatchClient, batch_id: str, out: TextIO) -> None:
    """Cancel the batch and wait a little for it to settle (the emulator's batches die with this process)."""
    print(f"Cancelling batch {batch_id}, whose emulated provider batches end with this process ...", file=out)
    try:
        client.cancel(batch_id)
        print(f"Batch {batch_id} is {client.wait(batch_id, timeout=CANCEL_WAIT_SECONDS).status}.", file=out)
    except (LlmBatchError, BatchWaitTimeout, KeyboardInterrupt):
        print("Could not cancel it; it stays in the database.", file=out)


def strong_alone(
    client: LlmBatchClient, payload: dict[str, Any], model: str, *, run_it: bool, timeout: float, out: TextIO
) -> tuple[Decimal, int | None]:
    """What the strong model alone costs on these items: run (on the emulator), or estimated (on Groq)."""
    options = options_of(payload, cascade=[model], reuse=False)
    if not run_it:
        return client.estimate(payload["items"], options).cost, None
    print(f"\nFor comparison, the same items on {model} alone:", file=out)
    finished = watch(client, client.submit(payload["items"], options), timeout, out)
    return finished.cost.usd, finished.counts.succeeded


def options_of(payload: dict[str, Any], **changes: Any) -> BatchOptions:
    return BatchOptions(params=payload["params"], metadata=payload.get("metadata"), **changes)


def run(url: str, settings: Settings, payload: dict[str, Any], timeout: float, out: TextIO) -> int:
    """Estimate, run, compare, run again with reuse: the part of the demo that talks to the service."""
    token = settings.token_grants()[0].token if settings.token_grants() else None
    items = payload["items"]
    with LlmBatchClient(url, token, timeout=60.0) as client:
        catalogue = client.models()
        cascade = list(catalogue.default_cascade)
        # Billed in full even when an earlier demo ran the same items (this database remembers them); step 4
        # asks for reuse.
        options = options_of(payload, reuse=False)
        print(f"\n1. What it will cost, before anything is sent ({' -> '.join(cascade)}):\n", file=out)
        estimate = client.estimate(items, options, fallback=True)
        print(estimate_report(estimate), file=out)

        print(f"\n2. The run, through the default cascade ({len(items)} PR analyses):\n", file=out)
        batch = client.submit(items, options, fallback=True)
        try:
            finished = watch(client, batch, timeout, out)
        except KeyboardInterrupt:
            print("\nInterrupted.", file=out)
            if settings.uses_emulator:
                cancel(client, batch.id, out)
            else:
                print(f"Batch {batch.id} carries on at Groq; the service resumes it on its next start.", file=out)
            return 130
        except BatchWaitTimeout:
            print(f"\nBatch {batch.id} is still running after {timeout:g}s; see GET /batches/{{id}}.", file=out)
            return 1
        print("\n" + cost_report(finished), file=out)

        strong_usd, strong_ok = strong_alone(
            client, payload, cascade[-1], run_it=settings.uses_emulator, timeout=timeout, out=out
        )
        floor_usd, floor_failed = floor_of(finished)
        comparison = Comparison(finished, estimate.cost, cascade[-1], strong_usd, strong_ok, floor_usd, floor_failed)
        print("\n3. " + "\n".join(comparison_lines(comparison)), file=out)

        print("\n4. The same items again, with reuse (a backfill started over):\n", file=out)
        again = watch(client, client.submit(items, options_of(payload, reuse=True), fallback=True), timeout, out)
        sent = sum(len(p.provider_batches) for p in again.passes)
        print(
            f"   {again.counts.succeeded} of {again.counts.total} answered by reuse; billed {usd(again.cost.usd)},"
            f" saved {usd(again.saved_usd)}; provider batches created: {sent}.",
            file=out,
        )
        across = across_providers(client, payload, settings, timeout, out)
    print(f"\nBatch {finished.id} {finished.status}.", file=out)
    return 0 if finished.status == "completed" and across in (None, "completed") else 1


def across_providers(
    client: LlmBatchClient, payload: dict[str, Any], settings: Settings, timeout: float, out: TextIO
) -> str | None:
    """Step 5: the same items through a cascade across three providers; the batch's status (None: skipped)."""
    missing = sorted(
        {variable for name, variable in settings.missing_keys().items() if name in ("openai", "anthropic")}
    )
    if missing:
        print(f"\n5. Skipped: the cascade across providers needs {' and '.join(missing)}.", file=out)
        return None
    tiers = [ACROSS_PROVIDERS[0], TierSpec(ACROSS_PROVIDERS[1], {"max_completion_tokens": OPENAI_TIGHT_BUDGET}),
             ACROSS_PROVIDERS[2]]  # fmt: skip
    print(f"\n5. Across three providers ({' -> '.join(ACROSS_PROVIDERS)}), best effort:\n", file=out)
    options = options_of(payload, cascade=tiers, strict=False, reuse=False)
    finished = watch(client, client.submit(payload["items"], options), timeout, out)
    print("\n" + cost_report(finished), file=out)
    return finished.status


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
            "  providers: the built-in emulators of Groq, OpenAI and Anthropic (no provider key is set); emulated"
            f" time runs {speed:g}x faster (EMULATOR_TIME_SCALE={settings.emulator_time_scale:g})",
            file=out,
        )
    else:
        states = ", ".join(f"{name} {state}" for name, state in settings.provider_states().items())
        print(f"  providers: {states}", file=out)
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
    except (RuntimeError, httpx.HTTPError, LlmBatchError) as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1
    finally:
        if server.thread.is_alive():
            print("Stopping the service ...", file=out)
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
