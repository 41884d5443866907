"""examples/django, the monolith, end to end: in a venv holding only the client's wheel and Django, its
`run_llm_batch` command sends 300 PullRequest rows to the real service (on the built-in emulator), the
service's webhook reaches the Django dev server and verifies, `--retry-batch` sends the failures again.

gpt-oss-120b has a bad spell during the first run (the emulator fails its best-effort JSON often), so failures
survive the cascade and there is something to retry (with strict structured output the emulator fails almost
nothing); the spell is over by the time of the retry, as it would be a while later."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from llm_batch_client import Batch, LlmBatchClient
from standardwebhooks import Webhook

from groq_emulator.config import GPT_OSS_120B, default_behaviours
from tests.cli.live_server import LiveService
from tests.client.clean_venv import REPO, CleanVenv
from tests.client.conftest import TOKEN, start_service
from tests.conftest import fast_emulator_config
from tests.loopback import free_port
from tests.webhooks.helpers import SECRET

EXAMPLE = REPO / "examples" / "django"
ROWS = 300
COMMAND_SECONDS = 90
STARTUP_SECONDS = 30
ROW_STATE = """
import json
from decimal import Decimal
from reviews.models import PullRequest
from llm_batch_client.django.models import WebhookReceipt
rows = list(PullRequest.objects.order_by("pk"))
print(json.dumps({
    "rows": len(rows),
    "summaries": sum(bool(r.summary) for r in rows),
    "failures": sum(bool(r.failure_code) for r in rows),
    "neither": [str(r) for r in rows if not r.summary and not r.failure_code],
    "both": [str(r) for r in rows if r.summary and r.failure_code],
    "failure_codes": sorted({r.failure_code for r in rows if r.failure_code}),
    "cost": str(sum((r.analysis_cost_usd or Decimal(0) for r in rows), Decimal(0))),
    "receipts": [[w.webhook_id, w.batch_id, w.event_type] for w in WebhookReceipt.objects.order_by("pk")],
}))
"""


class Monolith:
    """The example project run with the clean venv's Python, configured by environment as in production."""

    def __init__(self, venv: CleanVenv, service: LiveService, database: Path, port: int) -> None:
        self.venv = venv
        self.port = port
        self.webhook_url = f"http://127.0.0.1:{port}/hooks/llm-batch/webhook/"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "DJANGO_SETTINGS_MODULE": "monolith.settings",
            "EXAMPLE_DATABASE": str(database),
            "LLM_BATCH_URL": service.url,
            "LLM_BATCH_TOKEN": TOKEN,
            "LLM_BATCH_WEBHOOK_SECRET": SECRET,
            "LLM_BATCH_CALLBACK_URL": self.webhook_url,
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def manage(self, *args: str, timeout: float = COMMAND_SECONDS, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv.python), "manage.py", *args],
            cwd=EXAMPLE, env={**self.env, **env}, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def state(self) -> dict[str, Any]:
        done = self.manage("shell", "-c", ROW_STATE)
        assert done.returncode == 0, done.stderr
        state: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])  # after what `shell` says it imported
        return state

    def serve(self, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as output:
            server = subprocess.Popen(
                [str(self.venv.python), "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
                cwd=EXAMPLE, env=self.env, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return server
            time.sleep(0.1)
        server.kill()
        raise AssertionError(f"the Django dev server did not start within {STARTUP_SECONDS}s: {log.read_text()}")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LiveService]:
    behaviours = {
        **default_behaviours(),
        "openai/gpt-oss-120b": dataclasses.replace(GPT_OSS_120B, json_validate_failed=0.3),
    }
    live = start_service(tmp_path, emulator_config=fast_emulator_config(behaviours=behaviours))
    yield live
    live.server.stop()


def webhook_delivered(client: LlmBatchClient, batch_id: str, attempts: int, within: float = 30.0) -> Batch:
    """The batch once its webhook has been answered `attempts` times, the last with a 2xx."""
    deadline = time.monotonic() + within
    while True:
        batch = client.get(batch_id)
        webhook = batch.webhook
        if webhook is not None and webhook.attempts >= attempts and webhook.state == "delivered":
            return batch
        assert time.monotonic() < deadline, f"webhook of {batch_id} not delivered: {webhook}"
        time.sleep(0.1)


def signed(body: bytes, webhook_id: str, at: datetime, secret: str = SECRET) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body.decode()),
        "content-type": "application/json",
    }


def test_the_django_monolith_runs_300_rows_through_the_service(
    client_venv: CleanVenv, service: LiveService, tmp_path: Path
) -> None:
    monolith = Monolith(client_venv, service, tmp_path / "monolith.sqlite3", free_port())
    assert monolith.manage("migrate", "--verbosity", "0").returncode == 0
    assert monolith.manage("seed_prs", str(ROWS)).stdout.strip() == f"Created {ROWS} pull requests."
    server = monolith.serve(tmp_path / "runserver.log")
    try:
        with LlmBatchClient(service.url, token=TOKEN) as client:
            run_and_retry(monolith, client, service)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def run_and_retry(monolith: Monolith, client: LlmBatchClient, service: LiveService) -> None:
    run = monolith.manage("run_llm_batch", "--with-fallback", "--poll", "--no-strict")
    assert run.returncode == 0, run.stdout + run.stderr
    batch_id = re.search(
        r"Submitted batch (lb_\w+): 300 rows, cascade openai/gpt-oss-20b -> openai/gpt-oss-120b", run.stdout
    )
    assert batch_id, run.stdout
    batch = webhook_delivered(client, batch_id.group(1), attempts=1)
    assert batch.status == "completed" and batch.counts.total == ROWS and batch.counts.failed > 0
    assert batch.metadata == {
        "source": "reviews",
        "django_command": "run_llm_batch",
        "django_model": "reviews.pullrequest",
    }

    state = monolith.state()
    assert state["rows"] == ROWS and state["neither"] == [] and state["both"] == []
    assert (state["summaries"], state["failures"]) == (batch.counts.succeeded, batch.counts.failed)
    assert Decimal(state["cost"]) == batch.cost.usd, "each row's exact cost; together the batch's"
    stored = f"stored {batch.counts.succeeded} results and {batch.counts.failed} failures"
    assert f"Batch {batch.id}: {stored}." in run.stdout
    assert re.search(r"^pass +kind +tier +model +why sent +items", run.stdout, re.MULTILINE), "the cost table"
    assert f"Total: ${batch.cost.usd}" in run.stdout
    assert f"send them again with --retry-batch {batch.id}" in run.stdout
    assert state["receipts"] == [[batch.webhook.webhook_id, batch.id, "batch.completed"]]  # type: ignore[union-attr]
    assert batch.webhook is not None and batch.webhook.last_status == 204, "the webhook verified and was handled"
    assert client.item(batch.id, "acme/payments#26000").metadata == {"pk": 1}

    body = json.dumps({"type": "batch.completed", "timestamp": datetime.now(UTC).isoformat(), "data": {}}).encode()
    now = datetime.now(UTC)
    forged = signed(body, "msg_forged", now, secret="whsec_" + "A" * 43 + "=")
    expired = signed(body, "msg_expired", now - timedelta(minutes=10))
    for headers in (forged, expired, {"content-type": "application/json"}):
        refused = httpx.post(monolith.webhook_url, content=body, headers=headers, timeout=10)
        assert refused.status_code == 400, refused.text
    client.redeliver_webhook(batch.id)  # the same event again: the same webhook-id, dropped
    again = webhook_delivered(client, batch.id, attempts=2)
    assert again.webhook is not None and again.webhook.last_status == 200
    assert monolith.state()["receipts"] == state["receipts"]

    service.emulator.config.behaviours["openai/gpt-oss-120b"] = GPT_OSS_120B  # the bad spell is over
    retry = monolith.manage("run_llm_batch", "--retry-batch", batch.id, "--poll")
    assert retry.returncode == 0, retry.stdout + retry.stderr
    retried = client.get(batch.id)
    retry_pass = retried.passes[-1]
    assert f"Retrying {batch.counts.failed} failed items of {batch.id} as pass {retry_pass.number}" in retry.stdout
    assert retry_pass.kind == "retry" and retry_pass.items == batch.counts.failed
    assert retried.counts.succeeded > batch.counts.succeeded and retried.counts.failed < batch.counts.failed
    assert f"stored {retry_pass.succeeded} results and {retry_pass.failed} failures" in retry.stdout, "only the retried"
    assert retry_pass.succeeded + retry_pass.failed == batch.counts.failed and re.search(
        rf"^{retry_pass.number} +retry ", retry.stdout, re.MULTILINE
    )

    after = monolith.state()
    assert after["neither"] == [] and after["both"] == []
    assert (after["summaries"], after["failures"]) == (retried.counts.succeeded, retried.counts.failed)
    assert Decimal(after["cost"]) == retried.cost.usd
    assert len(after["receipts"]) == 2 and after["receipts"][1][1] == batch.id, "the retry's own webhook came too"

    misconfigured = monolith.manage("check", LLM_BATCH_WEBHOOK_SECRET="not-a-whsec-secret", timeout=30)
    assert misconfigured.returncode != 0 and "llm_batch.E002" in misconfigured.stderr
    assert "whsec_" in misconfigured.stderr and "not-a-whsec-secret" not in misconfigured.stderr
