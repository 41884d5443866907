"""`llm-batch` against a real uvicorn on loopback serving the app, its workers running on the emulator."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from llm_batch_client.cli import EXIT_DONE, EXIT_FAILURES, EXIT_NOT_FINISHED, EXIT_USAGE, main

from tests.cli.conftest import LiveServiceFactory, write_items, write_params
from tests.cli.live_server import LiveService
from tests.conftest import fast_emulator_config

FAST_POLL = ["--poll-interval", "0.05"]
PRIMARY, FALLBACK = "openai/gpt-oss-20b", "llama-3.3-70b-versatile"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def api(service: LiveService, path: str) -> dict[str, Any]:
    response = httpx.get(service.url + path, timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def expected_code(summary: dict[str, Any]) -> int:
    return EXIT_DONE if summary["status"] == "completed" and summary["counts"]["failed"] == 0 else EXIT_FAILURES


def test_submit_with_fallback_and_wait_draws_progress_and_ends_with_the_per_pass_table(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = write_items(tmp_path / "items.jsonl", 120)
    params = write_params(tmp_path / "params.json")
    code, out, err = run(
        capsys, "--url", live_service.url, "submit", str(items), "--fallback", "--params", f"@{params}", "--wait",
        *FAST_POLL,
    )  # fmt: skip

    batch_id = out.split("Accepted: batch ", 1)[1].split(",", 1)[0]
    summary = api(live_service, f"/batches/{batch_id}")
    assert summary["status"] == "completed"
    assert [p["model"] for p in summary["passes"]] == [PRIMARY, FALLBACK]
    assert code == expected_code(summary)
    assert "pass 1  openai/gpt-oss-20b" in err and "[####" in err, "a live bar per pass"
    assert "done" in err and "$" in err
    table = out.splitlines()
    header = next(line for line in table if line.startswith("pass "))
    assert header.split() == [
        "pass", "model", "items", "succeeded", "failed", "failures", "by", "reason", "input", "tok", "output", "tok",
        "cost", "USD",
    ]  # fmt: skip
    total = next(line for line in table if line.startswith("total"))
    assert total.split()[6:8] == [str(summary["counts"]["total"]), str(summary["counts"]["succeeded"])]
    assert f"${summary['cost']['usd']:,.6f}" in total
    first_failures = summary["passes"][0]["failure_reasons"]
    assert all(f"{code} {count}" in out for code, count in first_failures.items())
    assert f"Final: {summary['counts']['succeeded']} of 120 items succeeded" in out


def test_submit_limit_sends_only_the_first_items_and_json_prints_the_created_batch(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = write_items(tmp_path / "items.jsonl", 30)
    code, out, _ = run(
        capsys, "submit", str(items), "--limit", "10", "--model", FALLBACK, "--url", live_service.url, "--json"
    )

    assert code == EXIT_DONE
    created = json.loads(out)
    assert created["counts"]["total"] == 10
    assert created["model"] == FALLBACK and created["fallback"] is False
    rows = list(api(live_service, f"/batches/{created['id']}/results?limit=100")["data"])
    assert [row["custom_id"] for row in rows] == [f"pr-{n}" for n in range(1, 11)]


def test_output_schema_file_is_sent_with_the_batch(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = write_items(tmp_path / "items.jsonl", 5)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["nope"], "properties": {"nope": {"type": "string"}}}))
    code, out, _ = run(
        capsys, "--url", live_service.url, "--json", "submit", str(items), "--output-schema", str(schema),
        "--params", '{"response_format": {"type": "json_object"}}', "--model", FALLBACK, "--wait", *FAST_POLL,
    )  # fmt: skip

    summary = json.loads(out)
    assert code == EXIT_FAILURES
    assert summary["failure_reasons"] == {"schema_mismatch": 5}, "every output misses the required field"


def test_status_results_retry_and_list_follow_a_batch_with_failures(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = write_items(tmp_path / "items.jsonl", 60)
    params = write_params(tmp_path / "params.json")
    url = ["--url", live_service.url]
    code, out, _ = run(capsys, *url, "--json", "submit", str(items), "--params", f"@{params}", "--wait", *FAST_POLL)
    summary = json.loads(out)
    batch_id = summary["id"]
    assert summary["counts"]["failed"] > 0, "gpt-oss-20b on the emulator fails some items; no fallback pass here"
    assert code == EXIT_FAILURES

    code, out, _ = run(capsys, *url, "status", batch_id, "--json")
    assert (code, json.loads(out)) == (EXIT_FAILURES, api(live_service, f"/batches/{batch_id}"))
    code, out, _ = run(capsys, *url, "status", batch_id)
    assert code == EXIT_FAILURES and "Final: " in out and "pass 1" in out

    everything, failed_only = tmp_path / "all.jsonl", tmp_path / "failed.jsonl"
    assert run(capsys, *url, "results", batch_id, "-o", str(everything))[0] == EXIT_DONE
    code, _, err = run(capsys, *url, "results", batch_id, "-o", str(failed_only), "--failed-only")
    assert code == EXIT_DONE and f"to {failed_only}" in err
    rows = [json.loads(line) for line in everything.read_text().splitlines()]
    failed = [json.loads(line) for line in failed_only.read_text().splitlines()]
    assert [row["custom_id"] for row in rows] == [f"pr-{n}" for n in range(1, 61)]
    assert failed == [row for row in rows if row["status"] == "failed"]
    code, out, _ = run(capsys, *url, "results", batch_id, "--failed-only")
    assert [json.loads(line) for line in out.splitlines()] == failed, "without -o the rows go to stdout"

    chosen = failed[0]["custom_id"]
    code, out, err = run(
        capsys, *url, "retry", batch_id, "--model", FALLBACK, "--custom-id", chosen, "--wait", *FAST_POLL
    )
    assert f"Retrying 1 chosen items of {batch_id} as pass 2 on {FALLBACK}" in out
    after = api(live_service, f"/batches/{batch_id}")
    assert after["passes"][1]["items"] == 1 and after["passes"][1]["kind"] == "retry"
    assert code == expected_code(after)
    item = api(live_service, f"/batches/{batch_id}/items/{chosen}")
    assert [attempt["model"] for attempt in item["attempts"]] == [PRIMARY, FALLBACK]

    code, out, _ = run(capsys, *url, "list")
    assert code == EXIT_DONE
    assert batch_id in out.splitlines()[2] and out.splitlines()[0].split()[:2] == ["batch", "status"]


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
    assert code == EXIT_NOT_FINISHED and "pending" in out
    code, _, err = run(capsys, *url, "status", batch_id, "--wait", "--wait-timeout", "0.3", *FAST_POLL)
    assert code == EXIT_NOT_FINISHED and "still " in err

    code, out, _ = run(capsys, *url, "cancel", batch_id)
    assert code == EXIT_DONE and f"Cancelling batch {batch_id}" in out
    code, out, _ = run(capsys, *url, "status", batch_id, "--wait", *FAST_POLL)
    assert code == EXIT_FAILURES and f"Batch {batch_id} cancelled." in out

    code, _, err = run(capsys, *url, "cancel", batch_id)
    assert code == EXIT_USAGE
    assert err.strip() == f"llm-batch: 409 Conflict: batch {batch_id} is already cancelled"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "{path}: no such file"),
        ('{"custom_id": "a", "body": {}}\n{"custom_id": "b", "body": }\n', "{path} line 2: not valid JSON"),
        ('{"custom_id": "a", "body": {}}\n\n[1, 2]\n', "{path} line 3: expected an object"),
        ('{"custom_id": "a"}\n', '{path} line 1: "body" must be an object'),
        ('{"custom_id": 7, "body": {}}\n', '{path} line 1: "custom_id" must be a non-empty string'),
        ('{"custom_id": "a", "body": {}, "model": "x"}\n', '{path} line 1: unexpected key "model"'),
        ("\n\n", "{path}: no items"),
    ],
)
def test_bad_items_file_gets_one_line_naming_it_and_submits_nothing(
    live_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "items.jsonl"
    if content is not None:
        path.write_text(content)
    code, _, err = run(capsys, "--url", live_service.url, "submit", str(path), "--fallback")

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


def test_unknown_batch_and_unreachable_service_are_exit_2_with_one_line(
    live_service: LiveService, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--url", live_service.url, "status", "lb_missing")
    assert (code, err.strip()) == (EXIT_USAGE, "llm-batch: 404 Not found: batch 'lb_missing' does not exist")

    code, _, err = run(capsys, "--url", "http://127.0.0.1:9", "list")
    assert code == EXIT_USAGE
    assert err.startswith("llm-batch: cannot reach the service at http://127.0.0.1:9: ")

    assert run(capsys, "status")[0] == EXIT_USAGE, "argparse: a missing ID is a usage error"
    assert run(capsys, "--help")[0] == EXIT_DONE


def test_url_comes_from_the_environment(
    live_service: LiveService, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_BATCH_URL", live_service.url)
    code, out, _ = run(capsys, "list", "--json")
    assert code == EXIT_DONE and json.loads(out)["data"] == []


def test_token_comes_from_the_flag_or_the_environment(
    live_service_factory: LiveServiceFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "cli-token-0123456789abcdef"
    service = live_service_factory(api_tokens=[token])
    code, _, err = run(capsys, "--url", service.url, "list")
    assert code == EXIT_USAGE and err.startswith("llm-batch: 401 Unauthorized: ")
    assert token not in err
    assert run(capsys, "--url", service.url, "--token", token, "list")[0] == EXIT_DONE
    monkeypatch.setenv("LLM_BATCH_TOKEN", token)
    assert run(capsys, "--url", service.url, "list")[0] == EXIT_DONE


def test_the_readme_walkthrough_reaches_a_finished_two_pass_run(live_service: LiveService, tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    walkthrough = readme.split("From nothing to a finished two-pass run", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    script = walkthrough.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=60)
    lines = walkthrough.splitlines()
    commands = [shlex.split(line, comments=True) for line in lines if line.startswith(".venv/bin/llm-batch ")]
    submit, results = commands
    console_script = str(Path(sys.executable).parent / "llm-batch")
    env = {**os.environ, "LLM_BATCH_URL": live_service.url}

    done = subprocess.run(
        [console_script, *submit[1:], *FAST_POLL], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    batch_id = done.stdout.split("Accepted: batch ", 1)[1].split(",", 1)[0]
    summary = api(live_service, f"/batches/{batch_id}")
    assert summary["status"] == "completed" and len(summary["passes"]) == 2, done.stderr
    assert done.returncode == expected_code(summary)
    assert f"Batch {batch_id} completed." in done.stdout

    arguments = [batch_id if argument == "BATCH_ID" else argument for argument in results[1:]]
    written = subprocess.run([console_script, *arguments], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert written.returncode == EXIT_DONE, written.stderr
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == summary["counts"]["total"] == 200


def test_console_script_runs_a_two_pass_batch_as_a_subprocess(live_service: LiveService, tmp_path: Path) -> None:
    console_script = Path(sys.executable).parent / "llm-batch"
    assert console_script.exists(), "pyproject [project.scripts] installs llm-batch into the venv"
    items = write_items(tmp_path / "items.jsonl", 40)
    params = write_params(tmp_path / "params.json")
    env = {**os.environ, "LLM_BATCH_URL": live_service.url}
    done = subprocess.run(
        [str(console_script), "submit", str(items), "--with-fallback", "--params", f"@{params}", "--poll", "--json",
         *FAST_POLL],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed" and len(summary["passes"]) == 2
    assert done.returncode == expected_code(summary), done.stderr

    listed = subprocess.run(
        [sys.executable, "-m", "llm_batch_client.cli", "list", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == EXIT_DONE, listed.stderr
    assert [batch["id"] for batch in json.loads(listed.stdout)["data"]] == [summary["id"]]
