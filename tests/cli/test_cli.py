"""`llm-batch` against a real uvicorn on loopback serving the app, its workers running on the emulator."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from llm_batch_client import Batch
from llm_batch_client.cli import EXIT_DONE, EXIT_FAILURES, EXIT_NOT_FINISHED, EXIT_USAGE, main
from llm_batch_client.text import usd

from tests.cli.conftest import LiveServiceFactory, write_items, write_params
from tests.cli.live_server import LiveService
from tests.client.network import FaultyProxy
from tests.conftest import fast_emulator_config
from tests.payloads import pr_batch

FAST_POLL = ["--poll-interval", "0.05"]
PRIMARY, SECOND = "openai/gpt-oss-20b", "openai/gpt-oss-120b"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def api(service: LiveService, path: str) -> dict[str, Any]:
    response = httpx.get(service.url + path, timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def batch_of(service: LiveService, batch_id: str) -> Batch:
    return Batch.from_json(api(service, f"/batches/{batch_id}"))


def expected_code(batch: Batch) -> int:
    return EXIT_DONE if batch.status == "completed" and batch.counts.failed == 0 else EXIT_FAILURES


def accepted_id(out: str) -> str:
    match = re.search(r"Accepted: batch (lb_\w+), ", out)
    assert match, out
    return match.group(1)


def test_submit_with_limit_fallback_and_wait_shows_progress_then_the_cost_report(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = write_items(tmp_path / "items.jsonl", 120)
    params = write_params(tmp_path / "params.json")
    code, out, err = run(
        capsys, "--url", live_service.url, "submit", str(items), "--limit", "100", "--with-fallback", "--no-strict",
        "--params", f"@{params}", "--wait", *FAST_POLL,
    )  # fmt: skip

    batch_id = accepted_id(out)
    batch = batch_of(live_service, batch_id)
    assert f"Accepted: batch {batch_id}, 100 items; cascade {PRIMARY} -> {SECOND}." in out
    assert batch.status == "completed" and batch.counts.total == 100 and code == expected_code(batch)
    assert [tier.model for tier in batch.tiers] == [PRIMARY, SECOND] and batch.passes[0].model == PRIMARY
    assert f"{batch_id}  running" in err and "done:" in err, "a progress line on stderr while it runs"
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("pass "))
    assert header.split()[:6] == ["pass", "kind", "tier", "model", "why", "sent"]
    for p in batch.passes:
        row = next(line for line in lines if line.startswith(f"{p.number} "))
        assert p.model in row and row.endswith(usd(p.cost.usd))
    total = next(line for line in lines if line.startswith("total"))
    assert total.endswith(usd(batch.cost.usd)) and f"Total: {usd(batch.cost.usd)}" in out
    assert f"Batch {batch_id} completed: {batch.counts.succeeded} of 100 items succeeded" in out


def test_a_json_body_file_with_cascade_budget_and_metadata(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "batch.json"
    body.write_text(json.dumps(pr_batch(12, metadata={"from": "file"}, items_metadata=True)))
    url = ["--url", live_service.url]
    code, out, _ = run(
        capsys, *url, "--json", "submit", str(body), "--cascade", f"{PRIMARY},{SECOND}", "--budget", "5",
        "--metadata", '{"run": 7}', "--fallback",
    )  # fmt: skip
    created = json.loads(out)
    assert code == EXIT_DONE and [tier["model"] for tier in created["cascade"]] == [PRIMARY, SECOND]
    assert created["metadata"] == {"run": 7}, "the command line's fields win over the file's"
    assert Decimal(created["budget"]["budget_usd"]) == Decimal(5) and created["counts"]["total"] == 12

    code, out, _ = run(capsys, *url, "wait", created["id"], *FAST_POLL)
    batch = batch_of(live_service, created["id"])
    assert code == expected_code(batch) and batch.budget is not None
    assert f"Budget: $5.00; spent {usd(batch.budget.spent_usd)}" in out
    assert batch.budget.spent_usd == batch.cost.usd
    rows = [json.loads(line) for line in run(capsys, *url, "results", created["id"])[1].splitlines()]
    assert [row["metadata"] for row in rows] == [{"pr_id": n} for n in range(1, 13)]


def test_estimate_prints_each_tier_and_the_bounds_and_creates_nothing(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = write_items(tmp_path / "items.jsonl", 50)
    params = write_params(tmp_path / "params.json")
    url = ["--url", live_service.url]
    args = ["estimate", str(items), "--with-fallback", "--params", f"@{params}", "--budget", "5"]
    code, out, _ = run(capsys, *url, *args)
    assert code == EXIT_DONE
    assert "Estimate for 50 items" in out and "Budget: $5.00: within it" in out
    estimate = json.loads(run(capsys, *url, "--json", *args)[1])
    expected = re.search(r"Expected: (\$[\d.,]+)  \(floor (\$[\d.,]+), upper bound (\$[\d.,]+)\)", out)
    assert expected is not None
    cost, floor, upper = (Decimal(estimate[name]["usd_exact"]) for name in ("cost", "floor", "upper_bound"))
    assert expected.groups() == (usd(cost), usd(floor), usd(upper))
    for tier in estimate["tiers"]:
        row = next(line for line in out.splitlines() if line.startswith(f"{tier['tier']} "))
        assert tier["model"] in row and usd(Decimal(tier["cost"]["usd_exact"])) in row
    assert api(live_service, "/batches")["data"] == []


def test_status_results_retry_list_and_models_follow_a_batch_with_failures(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = write_items(tmp_path / "items.jsonl", 60)
    params = write_params(tmp_path / "params.json")
    url = ["--url", live_service.url]
    code, out, _ = run(capsys, *url, "--json", "submit", str(items), "--params", f"@{params}", "--no-strict", "--wait",
                       *FAST_POLL)  # fmt: skip
    batch_id = json.loads(out)["id"]
    batch = batch_of(live_service, batch_id)
    assert batch.counts.failed > 0, "gpt-oss-20b on the emulator fails some best-effort items; no cascade here"
    assert code == EXIT_FAILURES

    code, out, _ = run(capsys, *url, "status", batch_id, "--json")
    assert (code, json.loads(out)) == (EXIT_FAILURES, api(live_service, f"/batches/{batch_id}"))
    code, out, _ = run(capsys, *url, "status", batch_id)
    assert code == EXIT_FAILURES and f"Batch {batch_id} completed: " in out and "Total: $" in out

    as_ndjson, as_csv = tmp_path / "all.jsonl", tmp_path / "failed.csv"
    assert run(capsys, *url, "results", batch_id, "-o", str(as_ndjson))[0] == EXIT_DONE
    code, _, err = run(capsys, *url, "results", batch_id, "-o", str(as_csv), "--format", "csv", "--failed-only")
    assert code == EXIT_DONE and f"to {as_csv}: {batch.counts.failed} failed" in err
    rows = [json.loads(line) for line in as_ndjson.read_text().splitlines()]
    assert [row["custom_id"] for row in rows] == [f"pr-{n}" for n in range(1, 61)]
    failed = [row for row in rows if row["status"] == "failed"]
    records = list(csv.DictReader(io.StringIO(as_csv.read_text())))
    assert [r["custom_id"] for r in records] == [row["custom_id"] for row in failed]
    assert [r["error_code"] for r in records] == [row["error"]["code"] for row in failed]
    assert sum(Decimal(r["cost_usd"]) for r in records) == sum(Decimal(row["cost_usd_exact"]) for row in failed)
    code, out, _ = run(capsys, *url, "results", batch_id, "--format", "json", "--status", "succeeded")
    assert json.loads(out) == [row for row in rows if row["status"] == "succeeded"]

    code, out, err = run(capsys, *url, "retry", batch_id, "--model", SECOND, "--wait", *FAST_POLL)
    after = batch_of(live_service, batch_id)
    retry_pass = after.passes[-1]
    assert f"Retrying {len(failed)} failed items of {batch_id} as pass {retry_pass.number} on groq:{SECOND}." in out
    assert retry_pass.kind == "retry" and retry_pass.items == len(failed) and code == expected_code(after)
    code, out, _ = run(capsys, *url, "results", batch_id, "--since-pass", str(retry_pass.number - 1))
    assert [json.loads(line)["custom_id"] for line in out.splitlines()] == [row["custom_id"] for row in failed]

    code, out, _ = run(capsys, *url, "list")
    assert code == EXIT_DONE and out.splitlines()[0].split()[:2] == ["batch", "status"] and batch_id in out
    code, out, _ = run(capsys, *url, "models")
    assert code == EXIT_DONE and f"Default cascade (--with-fallback): {PRIMARY} -> {SECOND}" in out


def test_cancel_and_status_of_an_unfinished_batch(
    live_service_factory: LiveServiceFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = live_service_factory(emulator_config=fast_emulator_config(processing_seconds=600.0))
    items = write_items(tmp_path / "items.jsonl", 5)
    url = ["--url", service.url]
    code, out, _ = run(capsys, *url, "--json", "submit", str(items))
    batch_id = json.loads(out)["id"]
    assert code == EXIT_DONE, "accepted is done for a submit without --wait"

    code, out, _ = run(capsys, *url, "status", batch_id)
    assert code == EXIT_NOT_FINISHED and out.startswith(f"{batch_id}  ") and "5 pending" in out
    code, _, err = run(capsys, *url, "wait", batch_id, "--wait-timeout", "0.3", *FAST_POLL)
    assert code == EXIT_NOT_FINISHED and "still " in err and f"llm-batch wait {batch_id}" in err

    code, out, _ = run(capsys, *url, "cancel", batch_id)
    assert code == EXIT_DONE and f"Cancelling batch {batch_id}" in out
    code, out, _ = run(capsys, *url, "status", batch_id, "--wait", *FAST_POLL)
    assert code == EXIT_FAILURES and f"Batch {batch_id} cancelled: " in out

    code, _, err = run(capsys, *url, "cancel", batch_id)
    assert code == EXIT_USAGE
    assert err.strip() == f"llm-batch: 409 Conflict: batch {batch_id} is already cancelled"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("items.jsonl", None, "{path}: no such file"),
        ("items.jsonl", '{"custom_id": "a", "body": {}}\n{"custom_id": "b", "body": }\n', "{path} line 2: not valid"),
        ("items.jsonl", '{"custom_id": "a", "body": {}}\n\n[1, 2]\n', "{path} line 3: expected an object"),
        ("items.jsonl", '{"custom_id": "a"}\n', '{path} line 1: "body" must be an object'),
        ("items.jsonl", '{"custom_id": 7, "body": {}}\n', '{path} line 1: "custom_id" must be a non-empty string'),
        ("items.jsonl", '{"custom_id": "a", "body": {}, "model": "x"}\n', '{path} line 1: unexpected key "model"'),
        ("items.jsonl", "\n\n", "{path}: no items"),
        ("items.json", '{"items": [], "params": {}}', "{path}: expected a non-empty list of items"),
        (
            "items.json",
            '{"items": [{"custom_id": "a", "body": {}}], "colour": 1}',
            '{path}: unknown batch field "colour"',
        ),
        ("items.json", '[{"custom_id": "a", "body": {}}, {"body": {}}]', '{path} item 2: "custom_id" must be'),
        ("items.json", "[1,", "{path}: not valid JSON"),
    ],
)
def test_a_bad_items_file_gets_one_line_naming_it_and_submits_nothing(
    live_service: LiveService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | None,
    message: str,
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    code, _, err = run(capsys, "--url", live_service.url, "submit", str(path), "--with-fallback")

    assert code == EXIT_USAGE
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("llm-batch: " + message.format(path=path))
    assert api(live_service, "/batches")["data"] == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--params", "{oops"], "--params: not valid JSON"),
        (["--params", "[1]"], "--params: expected a JSON object"),
        (["--params", "@missing.json"], "--params: missing.json: no such file"),
        (["--output-schema", "missing-schema.json"], "--output-schema: missing-schema.json: no such file"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--budget", "lots"], "--budget: 'lots' is not an amount in USD"),
        (["--budget", "-1"], "--budget: must be more than 0"),
        (["--cascade", ","], "--cascade: name at least one model"),
    ],
)
def test_bad_options_get_one_line_and_exit_2(
    live_service: LiveService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    items = write_items(tmp_path / "items.jsonl", 3)
    code, _, err = run(capsys, "--url", live_service.url, "submit", str(items), *extra)
    assert code == EXIT_USAGE
    assert err.strip().startswith(f"llm-batch: {message}") and len(err.strip().splitlines()) == 1
    assert api(live_service, "/batches")["data"] == []


def test_an_error_answer_and_no_answer_are_exit_2_with_one_line(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--url", live_service.url, "status", "lb_missing")
    assert (code, err.strip()) == (EXIT_USAGE, "llm-batch: 404 Not found: batch 'lb_missing' does not exist")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"custom_id": "a b", "body": {"messages": [{"role": "user", "content": "x"}]}}) + "\n")
    code, _, err = run(capsys, "--url", live_service.url, "submit", str(bad))
    assert code == EXIT_USAGE and err.startswith("llm-batch: 422 ") and "custom_id" in err

    code, _, err = run(capsys, "--url", "http://127.0.0.1:9", "list")
    assert code == EXIT_USAGE and err.startswith("llm-batch: no answer from http://127.0.0.1:9 (--url): ")
    assert "connection refused (GET /batches, 3 tries over " in err and "Nothing reached the service" in err
    assert len(err.strip().splitlines()) == 1 and err.count("no answer") == 1 and "dempotency" not in err

    assert run(capsys, "status")[0] == EXIT_USAGE, "argparse: a missing ID is a usage error"
    assert run(capsys, "--help")[0] == EXIT_DONE


def test_url_and_token_come_from_the_flags_or_the_environment(
    live_service_factory: LiveServiceFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "cli-token-0123456789abcdef"
    service = live_service_factory(api_tokens=[token])
    code, _, err = run(capsys, "--url", service.url, "list")
    assert code == EXIT_USAGE and err.startswith("llm-batch: 401 Unauthorized: ") and token not in err
    assert run(capsys, "--url", service.url, "--token", token, "list")[0] == EXIT_DONE
    monkeypatch.setenv("LLM_BATCH_URL", service.url)
    monkeypatch.setenv("LLM_BATCH_TOKEN", token)
    code, out, _ = run(capsys, "list", "--json")
    assert code == EXIT_DONE and json.loads(out) == []


def test_the_readme_walkthrough_reaches_a_finished_cascade(live_service: LiveService, tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    walkthrough = readme.split("From nothing to a finished two-pass run", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    script = walkthrough.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=60)
    commands = [
        shlex.split(line, comments=True) for line in walkthrough.splitlines() if line.startswith(".venv/bin/llm-batch ")
    ]
    submit, results = commands
    console_script = str(Path(sys.executable).parent / "llm-batch")
    env = {**os.environ, "LLM_BATCH_URL": live_service.url}

    done = subprocess.run(
        [console_script, *submit[1:], *FAST_POLL], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    batch_id = accepted_id(done.stdout)
    batch = batch_of(live_service, batch_id)
    assert batch.status == "completed" and len(batch.tiers) == 2, done.stderr
    assert done.returncode == expected_code(batch) and f"Batch {batch_id} completed: " in done.stdout

    arguments = [batch_id if argument == "BATCH_ID" else argument for argument in results[1:]]
    written = subprocess.run([console_script, *arguments], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert written.returncode == EXIT_DONE, written.stderr
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == batch.counts.total == 200


def test_console_script_and_python_m_run_as_subprocesses(live_service: LiveService, tmp_path: Path) -> None:
    console_script = Path(sys.executable).parent / "llm-batch"
    assert console_script.exists(), "client/pyproject.toml [project.scripts] installs llm-batch into the venv"
    items = write_items(tmp_path / "items.jsonl", 40)
    params = write_params(tmp_path / "params.json")
    env = {**os.environ, "LLM_BATCH_URL": live_service.url}
    done = subprocess.run(
        [str(console_script), "submit", str(items), "--with-fallback", "--params", f"@{params}", "--poll", "--json",
         *FAST_POLL],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    summary = Batch.from_json(json.loads(done.stdout))
    assert summary.status == "completed" and done.returncode == expected_code(summary), done.stderr

    listed = subprocess.run(
        [sys.executable, "-m", "llm_batch_client.cli", "list", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == EXIT_DONE, listed.stderr
    assert [batch["id"] for batch in json.loads(listed.stdout)] == [summary.id]


def test_no_answer_names_the_url_and_its_setting_and_the_key_to_resend_with(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's answers are lost: the message names the URL and LLM_BATCH_URL, and the advice works: the same
    command with --idempotency-key gets the batch the lost requests made, creating no second one."""
    items = write_items(tmp_path / "items.jsonl", 3)
    with FaultyProxy(live_service.server.port) as proxy:
        monkeypatch.setenv("LLM_BATCH_URL", proxy.url)
        proxy.lose_answers = 100
        code, _, err = run(capsys, "submit", str(items), "--params", f"@{write_params(tmp_path / 'p.json')}")
        assert code == EXIT_USAGE and err.startswith(f"llm-batch: no answer from {proxy.url} (LLM_BATCH_URL): ")
        key = re.search(r"--idempotency-key (llmb-[\w-]+)", err)
        assert key and "(POST /batches, 3 tries over " in err and len(err.strip().splitlines()) == 1, err
        proxy.lose_answers = 0
        code, out, _ = run(
            capsys, "submit", str(items), "--params", f"@{tmp_path / 'p.json'}", "--idempotency-key", key[1]
        )
        assert code == EXIT_DONE
    batches = api(live_service, "/batches")["data"]
    assert [batch["id"] for batch in batches] == [accepted_id(out)], "the lost requests made one batch: this one"


def test_budget_raises_a_finished_batchs_budget_and_waits_for_its_over_budget_items(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = write_items(tmp_path / "items.jsonl", 20)
    params = write_params(tmp_path / "params.json")
    url = ["--url", live_service.url]
    code, out, _ = run(capsys, *url, "--json", "submit", str(items), "--params", f"@{params}", "--budget", "0.0004")
    batch_id = json.loads(out)["id"]
    run(capsys, *url, "wait", batch_id, *FAST_POLL)
    assert batch_of(live_service, batch_id).failure_reasons.get("budget_exceeded", 0) > 0

    code, out, _ = run(capsys, *url, "budget", batch_id, "3", "--wait", *FAST_POLL)
    after = batch_of(live_service, batch_id)
    assert code == expected_code(after) and "budget $3" in out and "Budget: " in out
    assert "budget_exceeded" not in after.failure_reasons

    code, _, err = run(capsys, *url, "budget", batch_id, "lots")
    assert code == EXIT_USAGE and "USD" in err
