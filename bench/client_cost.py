"""What the client costs its own process for a large batch: submit N items as NDJSON, wait, read the N results with
`iter_results(ndjson=True)` and write them out. Prints figures; asserts nothing.

    .venv/bin/python bench/client_cost.py [--items 21000] [--runs 3] [--items-as generator|list]
                                          [--client-source DIR]

The service runs as its own process (uvicorn, SQLite, its built-in emulator: no GROQ_API_KEY), and the client as
another (this script with --client), so that only the client's work is measured: its CPU (user+system, from
getrusage) for each phase and its peak RSS (VmHWM) over the whole run, the interpreter and its imports included.
The items are the PR analyses of bench/scale.py (~2 KB each, best effort, the default cascade), made one by one
by a generator while the body streams (`--items-as list`: built as a list first, as a caller holding them all
does; the list itself then counts in the RSS). Each result row is written to a file as a line of custom_id,
status, model, cost and the answer's JSON text; the rows are then read once more without writing, for the
client's reading alone. The service's CPU is printed beside, for scale.

`--client-source DIR` runs the client from DIR (a checkout's client/, on PYTHONPATH) instead of the installed
one: the figures before a change, measured the same way:

    git archive <commit> client | tar -x -C /tmp/before && .venv/bin/python bench/client_cost.py \
        --client-source /tmp/before/client

Goal (issue #23): submit + results <= 1.5 s of client CPU and <= 100 MB peak RSS at 21,000 items.
Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DIFF_LINE = "+    if lock.acquire(timeout=order.lock_ttl):\n+        charge(order, idempotency_key=order.id)\n"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary", "risk_level", "categories", "score"],
    "properties": {
        "summary": {"type": "string", "maxLength": 400},
        "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
        "categories": {"type": "array", "items": {"type": "string", "enum": ["bugfix", "feature", "docs"]}},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
    },
}
PARAMS: dict[str, Any] = {
    "temperature": 0,
    "response_format": {"type": "json_schema", "json_schema": {"name": "pr", "schema": SCHEMA}},
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def items(count: int) -> Iterator[dict[str, Any]]:
    """bench/scale.py's PR analyses, made one at a time (a generator: the client streams it as NDJSON)."""
    body_text = DIFF_LINE * 21
    for number in range(1, count + 1):
        yield {
            "custom_id": f"acme/payments#{number}",
            "metadata": {"pk": number},
            "body": {
                "max_completion_tokens": 2048,
                "messages": [
                    {"role": "system", "content": "You review pull requests and answer in JSON."},
                    {"role": "user", "content": f"PR #{number}: fix the payment retry race.\n{body_text}"},
                ],
            },
        }


def client_run(url: str, count: int, output: Path, as_list: bool) -> dict[str, Any]:
    """The client's side, in this process: the figures of each phase."""
    started = cpu_seconds()
    from llm_batch_client import BatchOptions, LlmBatchClient

    imported = cpu_seconds()
    with LlmBatchClient(url, timeout=300) as client:
        source: Any = list(items(count)) if as_list else items(count)
        made = cpu_seconds()
        batch = client.submit(source, BatchOptions(params=PARAMS, strict=False), fallback=True)
        submitted = cpu_seconds()
        del source
        done = client.wait(batch.id, timeout=1800, poll_interval=1.0, max_poll_interval=2.0)
        waited = cpu_seconds()
        rows = 0
        with output.open("w", encoding="utf-8") as handle:
            for row in client.iter_results(batch.id, ndjson=True):
                answer = row.content if row.error is None else row.error.code
                handle.write(f"{row.custom_id}\t{row.status}\t{row.model}\t{row.cost_usd}\t{answer}\n")
                rows += 1
        written = cpu_seconds()
        read_again = sum(1 for _ in client.iter_results(batch.id, ndjson=True))
        read = cpu_seconds()
    return {
        "items": count,
        "rows": rows,
        "read_again": read_again,
        "status": done.status,
        "passes": len(done.passes),
        "import_cpu": imported - started,
        "list_cpu": made - imported,
        "submit_cpu": submitted - made,
        "wait_cpu": waited - submitted,
        "results_cpu": written - waited,
        "read_only_cpu": read - written,
        "peak_rss_mb": peak_rss_mb(),
    }


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wait_healthy(url: str, service: subprocess.Popen[bytes], within: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError("the service exited at start-up")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within:g}s")


def one_run(count: int, work: Path, number: int, args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.loopback import free_port, service_command

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "GROQ_"))}
    env.update(
        DATABASE_URL=f"sqlite:///{work}/client-cost-{number}.db",
        EMULATOR_TIME_SCALE="0.002",
        POLL_INTERVAL_SECONDS="0.2",
        LOG_LEVEL="WARNING",
        SPOOL_DIR=str(work / f"spool-{number}"),
        MAX_ITEMS_PER_BATCH=str(max(count, 200_000)),
    )
    with (work / f"service-{number}.log").open("wb") as log:
        service = subprocess.Popen(service_command(port, quiet=True), cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        wait_healthy(url, service)
        service_before = process_cpu(service.pid)
        output = work / f"results-{number}.ndjson"
        command = [sys.executable, __file__, "--client", url, "--items", str(count), "--output", str(output)]
        client_env = dict(os.environ)
        if args.client_source:
            client_env["PYTHONPATH"] = str(Path(args.client_source).resolve())
        client = subprocess.run(
            [*command, "--items-as", args.items_as],
            cwd=work, env=client_env, capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        if client.returncode != 0:
            raise RuntimeError(f"the client failed:\n{client.stderr}")
        figures: dict[str, Any] = json.loads(client.stdout.splitlines()[-1])
        figures["service_cpu"] = process_cpu(service.pid) - service_before
        return figures
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=21_000)
    parser.add_argument("--runs", type=int, default=3, help="runs, each with a fresh service (default 3)")
    parser.add_argument("--items-as", choices=("generator", "list"), default="generator")
    parser.add_argument("--client-source", metavar="DIR", help="run the client from DIR (put on PYTHONPATH)")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)  # the client process itself
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(client_run(args.client, args.items, args.output, args.items_as == "list")))
        return
    runs = []
    print(f"items as a {args.items_as}; client from {args.client_source or 'the installed llm_batch_client'}")
    with tempfile.TemporaryDirectory(prefix="llm-batch-client-cost-") as tmp:
        for number in range(args.runs):
            figures = one_run(args.items, Path(tmp), number, args)
            runs.append(figures)
            print_row(figures, header=number == 0)
    work = [run["submit_cpu"] + run["results_cpu"] for run in runs]
    print(f"\nsubmit + results, client CPU: median {statistics.median(work):.2f} s (goal <= 1.5 s);", end=" ")
    print(f"peak RSS: max {max(run['peak_rss_mb'] for run in runs):.0f} MB (goal <= 100 MB)")


def print_row(f: dict[str, Any], *, header: bool) -> None:
    if header:
        print(
            f"{'items':>7} {'rows':>7} {'passes':>6} {'import s':>8} {'submit s':>8} {'wait s':>6} {'results s':>9}"
            f" {'submit+results s':>16} {'read only s':>11} {'peak RSS MB':>11} {'service CPU s':>13}"
        )
    print(
        f"{f['items']:>7} {f['rows']:>7} {f['passes']:>6} {f['import_cpu']:>8.2f} {f['submit_cpu']:>8.2f}"
        f" {f['wait_cpu']:>6.2f} {f['results_cpu']:>9.2f} {f['submit_cpu'] + f['results_cpu']:>16.2f}"
        f" {f['read_only_cpu']:>11.2f} {f['peak_rss_mb']:>11.0f} {f['service_cpu']:>13.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
