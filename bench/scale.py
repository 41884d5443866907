"""The whole two-pass workload at scale, over HTTP, with the service as its own process: what it costs the
service against the raw limit of the same bytes, in one run. Prints figures; asserts nothing.

    .venv/bin/python bench/scale.py [--items 21000,100000] [--databases sqlite,postgres] [--provider URL]
                                    [--submit-as json|ndjson] [--poll-interval 1.0] [--floor]

For each database and size: a fresh database, the Groq emulator as a process (or `--provider URL`, any
Groq-compatible stand-in, e.g. `python -m tests.standin_provider --port 8091 --fail-share 0.2`), the service as
a process (uvicorn, workers in the same process), and a submission of N PR analyses of ~2 KB in best-effort mode
with the default cascade (so ~20% of pass 1 fails and goes to the second tier: two passes), sent as one JSON
body or (`--submit-as ndjson`, as the client streams an iterator) as NDJSON lines. Measured:

- service CPU (user+system from /proc) from submit to the status read that sees the batch completed, and the raw
  limit: this process parsing the same submission (as one JSON body, however it was sent), serialising every
  request line of both passes, parsing result lines of the same shape and their JSON content, and inserting it
  all into SQLite in one transaction (the ratio is what matters); on PostgreSQL also the CPU of its backends
  serving the run's database (SQLite's work is part of the service's own CPU);
- submit -> completed wall time (to the batch's own `finished_at`, so the status reads' interval does not count),
  minus the provider's own time (its simulated seconds per pass plus the CPU its process spent making the
  results);
- NDJSON export rows/s; peak RSS of the service (VmHWM); GET /batches/{id} latency after the run (p50/p99) and
  the service's CPU per such read.

With `--floor`, also bench/io_floor.py's floor for the same bytes (the raw limit into a WAL file, plus uvicorn
taking in the POST and the groq SDK moving both passes' files), measured after the run, and the service's CPU
as a multiple of it: what the service spends beyond the I/O any implementation must do.

The bench waits for completion by reading the status every `--poll-interval` seconds (default 1; the client
polls every 2 s at first). Each read costs the service a few ms of CPU, which counts in its CPU figure: at 0.1 s a
21k run's ~250 reads were ~15% of it.
Loopback only, bounded by --timeout per run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import io_floor as floor_bench  # noqa: E402
from harness import (  # noqa: E402
    FINALIZING,
    PROCESSING,
    STATUS_READS,
    VALIDATING,
    backend_cpu,
    drop_postgres,
    fresh_postgres,
    payload,
    proc_stat,
    raw_limit,
    result_lines,
    start,
    stop_all,
    wait_http,
)

from tests.loopback import free_port, service_command  # noqa: E402
from tests.payloads import ndjson_lines  # noqa: E402


@dataclass
class Figures:
    database: str
    items: int
    service_cpu: float
    database_cpu: float | None  # PostgreSQL's backends; None for SQLite, which runs inside the service
    raw_cpu: float
    wall: float
    provider_seconds: float
    export_rows_per_second: float
    peak_rss_mb: float
    status_p50_ms: float
    status_p99_ms: float
    status_cpu_ms: float
    passes: int
    succeeded: int
    floor_cpu: float | None = None  # bench/io_floor.py's floor for the same bytes (--floor)


async def run_one(database: str, items: int, args: argparse.Namespace, work: Path) -> Figures:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "GROQ_"))}
    dropped: str | None = None
    if database == "sqlite":
        database_url = f"sqlite:///{work}/bench-{items}.db"
    else:
        database_url, dropped = await fresh_postgres(args.pg_dsn)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        provider = args.provider
        emulator_pid: int | None = None
        if provider is None:
            port = free_port()
            emulator = start(
                [
                    sys.executable,
                    "-m",
                    "groq_emulator",
                    "--port",
                    str(port),
                    "--seed",
                    "1",
                    "--time-scale",
                    "1",
                    "--validating-seconds",
                    str(VALIDATING),
                    "--processing-seconds",
                    str(PROCESSING),
                    "--finalizing-seconds",
                    str(FINALIZING),
                    "--log-level",
                    "warning",
                ],
                env,
                work / f"emulator-{database}-{items}.log",
            )
            processes.append(emulator)
            emulator_pid = emulator.pid
            provider = f"http://127.0.0.1:{port}"
            await wait_http(f"{provider}/_emulator/faults")
        port = free_port()
        service_env = {
            **env,
            "DATABASE_URL": database_url,
            "GROQ_BASE_URL": provider,
            "GROQ_API_KEY": "bench",
            "POLL_INTERVAL_SECONDS": "0.1",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "text",
            "SPOOL_DIR": str(work / f"spool-{database}-{items}"),
            "MAX_ITEMS_PER_BATCH": str(max(items, 200_000)),
        }
        service = start(
            service_command(port, quiet=True),
            service_env,
            work / f"service-{database}-{items}.log",
        )
        processes.insert(0, service)
        url = f"http://127.0.0.1:{port}"
        await wait_http(f"{url}/healthz")
        submission = payload(items)
        body = orjson.dumps(submission)
        request_body, content_type = (
            (body, "application/json")
            if args.submit_as == "json"
            else (b"\n".join(ndjson_lines(submission)), "application/x-ndjson")
        )
        del submission
        if args.profile:  # py-spy (pip install py-spy) samples the service from submit to the end
            out = Path(args.profile) / f"service-{database}-{items}.txt"
            processes.append(
                start(
                    ["py-spy", "record", "-p", str(service.pid), "-o", str(out), "-f", "raw", "-r", "50"]
                    + (["--gil"] if args.profile_gil else []),
                    env,
                    work / "py-spy.log",
                )
            )
        async with httpx.AsyncClient(base_url=url, timeout=args.timeout) as client:
            before = proc_stat(service.pid)
            backends_before = await backend_cpu(args.pg_dsn, dropped)
            provider_before = proc_stat(emulator_pid).cpu if emulator_pid else 0.0
            started = time.monotonic()
            started_epoch = time.time()
            response = await client.post(
                "/batches", params={"fallback": "true"}, content=request_body, headers={"content-type": content_type}
            )
            response.raise_for_status()
            batch_id = response.json()["id"]
            while True:
                summary = (await client.get(f"/batches/{batch_id}")).json()
                if summary["status"] in ("completed", "failed", "cancelled"):
                    break
                if time.monotonic() - started > args.timeout:
                    raise RuntimeError(f"{database} {items}: still {summary['status']} after {args.timeout}s")
                await asyncio.sleep(args.poll_interval)
            after = proc_stat(service.pid)
            wall = datetime.fromisoformat(summary["finished_at"]).timestamp() - started_epoch
            backends_after = await backend_cpu(args.pg_dsn, dropped)
            provider_cpu = (proc_stat(emulator_pid).cpu - provider_before) if emulator_pid else 0.0
            export_started = time.monotonic()
            rows = 0
            async with client.stream(
                "GET", f"/batches/{batch_id}/results", headers={"Accept": "application/x-ndjson"}
            ) as stream:
                async for chunk in stream.aiter_bytes():
                    rows += chunk.count(b"\n")
            export_seconds = time.monotonic() - export_started
            latencies = []
            status_before = proc_stat(service.pid).cpu
            for _ in range(STATUS_READS):
                tick = time.monotonic()
                (await client.get(f"/batches/{batch_id}")).raise_for_status()
                latencies.append((time.monotonic() - tick) * 1000)
            status_cpu_ms = (proc_stat(service.pid).cpu - status_before) * 1000 / STATUS_READS
        peak = proc_stat(service.pid).hwm_mb
        passes = len(summary["passes"])
        failed_share = summary["passes"][0]["failed"] / max(1, summary["passes"][0]["items"])
        latencies.sort()
        figures = Figures(
            database=database,
            items=items,
            service_cpu=after.cpu - before.cpu,
            database_cpu=(
                sum(cpu - backends_before.get(pid, 0.0) for pid, cpu in backends_after.items())
                if dropped is not None
                else None
            ),
            raw_cpu=0.0,
            wall=wall,
            provider_seconds=passes * (VALIDATING + PROCESSING + FINALIZING) + provider_cpu,
            export_rows_per_second=rows / export_seconds if export_seconds else 0.0,
            peak_rss_mb=peak,
            status_p50_ms=statistics.median(latencies),
            status_p99_ms=latencies[int(len(latencies) * 0.99) - 1],
            status_cpu_ms=status_cpu_ms,
            passes=passes,
            succeeded=summary["counts"]["succeeded"],
        )
    finally:
        stop_all(processes)
        if dropped is not None:
            await drop_postgres(args.pg_dsn, dropped)
    # Once the service and the provider have stopped: on this 2-core machine their work would slow it down.
    results = result_lines(orjson.loads(body)["items"], 2, failed_share)
    floor = await io_floor(body, results, failed_share, work) if args.floor else None
    return replace(figures, raw_cpu=raw_limit(body, results), floor_cpu=floor)


async def io_floor(body: bytes, results: list[list[bytes]], failed_share: float, work: Path) -> float:
    """bench/io_floor.py's floor for the same bytes: the raw limit into a WAL file, plus uvicorn taking in the
    POST and the groq SDK moving both passes' files."""
    return (await floor_bench.floor_of(body, results, work, failed_share)).total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="21000,100000")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--provider", default=None, help="a Groq-compatible base URL instead of the emulator")
    parser.add_argument(
        "--pg-dsn", default=os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--submit-as", choices=("json", "ndjson"), default="json")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="seconds between the status reads that wait for completion (default 1; the client's default is 2)",
    )
    parser.add_argument(
        "--floor", action="store_true", help="also measure bench/io_floor.py's floor for the same bytes, and the ratio"
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--profile", default=None, help="a directory for py-spy's samples of the service")
    parser.add_argument(
        "--profile-gil", action="store_true", help="sample only the thread holding the GIL (Python's own CPU)"
    )
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="llm-batch-bench-") as tmp:
        for database in args.databases.split(","):
            for items in (int(n) for n in args.items.split(",")):
                figures = asyncio.run(run_one(database, items, args, Path(tmp)))
                results.append(figures)
                print_row(figures, header=len(results) == 1)
    print(f"\nsubmitted as {args.submit_as}")
    print("service CPU / raw: goal <= 3x (db CPU: PostgreSQL's backends for the run, not in the ratio; SQLite's")
    print("work is in the service's own CPU); submit->completed minus provider: goal <= 3 s at 21k;")
    print("export: goal >= 50,000 rows/s; peak RSS: goal <= 200 MB at 21k, <= 250 MB at 100k; status: <= 5 ms at 100k")
    print("GET CPU ms: the service's CPU per status read; floor (--floor): bench/io_floor.py's, for the same bytes")


def print_row(f: Figures, *, header: bool) -> None:
    if header:
        print(
            f"{'db':8} {'items':>7} {'passes':>6} {'ok':>7} {'svc CPU s':>9} {'db CPU s':>8} "
            f"{'raw CPU s':>9} {'ratio':>6} "
            f"{'wall s':>7} {'provider s':>10} {'ours s':>7} {'export rows/s':>13} {'peak MB':>8} "
            f"{'GET p50 ms':>10} {'p99 ms':>7} {'CPU ms':>6} {'floor s':>7} {'x floor':>7}"
        )
    print(
        f"{f.database:8} {f.items:>7} {f.passes:>6} {f.succeeded:>7} {f.service_cpu:>9.2f} "
        f"{'in svc' if f.database_cpu is None else f'{f.database_cpu:.2f}':>8} {f.raw_cpu:>9.2f} "
        f"{f.service_cpu / f.raw_cpu:>5.1f}x {f.wall:>7.1f} {f.provider_seconds:>10.1f} "
        f"{f.wall - f.provider_seconds:>7.1f} {f.export_rows_per_second:>13,.0f} {f.peak_rss_mb:>8.0f} "
        f"{f.status_p50_ms:>10.1f} {f.status_p99_ms:>7.1f} {f.status_cpu_ms:>6.1f} "
        + (f"{f.floor_cpu:>7.2f} {f.service_cpu / f.floor_cpu:>6.1f}x" if f.floor_cpu else f"{'-':>7} {'-':>7}"),
        flush=True,
    )


if __name__ == "__main__":
    main()
