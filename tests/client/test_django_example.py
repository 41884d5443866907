"""examples/django, the monolith, end to end, as a team built it the documented way: in a venv holding only the
client's wheel and Django (the oldest Python with Django 5.2, the newest with Django 6), its `run_llm_batch`
command sends PullRequest rows to the real service (on the built-in emulator), the service's webhook reaches
the Django dev server, `--poll` waits, `--retry-batch` sends the failures again. Every row must be stored once
per run whatever path brought its result, no row sent while in flight, an empty run must say so and succeed,
and a service that does not answer must be named with its setting.

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

from groq_emulator.clock import Clock
from groq_emulator.config import (
    GPT_OSS_120B,
    default_behaviours,
)
from tests.cli.live_server import LiveService
from tests.client.clean_venv import REPO, CleanVenv
from tests.client.conftest import (
    LARGE,
    LARGE_BARE,
    SMALL,
    SMALL_BARE,
    TOKEN,
    serving_provider_names,
    start_service,
)
from tests.loopback import free_port
from tests.webhooks.helpers import SECRET

EXAMPLE = REPO / "examples" / "django"
ROWS = 300
COMMAND_SECONDS = 120
STARTUP_SECONDS = 30
ROW_STATE = """
import json
from decimal import Decimal
from reviews.models import BatchNotice, PullRequest
from llm_batch_client.django.models import RowInFlight, TrackedBatch, WebhookReceipt
rows = list(PullRequest.objects.order_by("pk"))
print(json.dumps({
    "rows": [[r.pk, bool(r.summary), r.failure_code, r.times_stored, r.sent_in_batch, r.analysed_in_batch,
              str(r.analysis_cost_usd or 0)] for r in rows],
    "receipts": [[w.webhook_id, w.batch_id, w.event_type] for w in WebhookReceipt.objects.order_by("pk")],
    "notices": [[n.batch_id, n.via, n.stored, n.failed] for n in BatchNotice.objects.order_by("pk")],
    "tracked": [t.batch_id for t in TrackedBatch.objects.order_by("pk")],
    "in_flight": RowInFlight.objects.count(),
}))
"""


class Monolith:
    """The example project run with the clean venv's Python, configured by environment as in production."""

    def __init__(self, venv: CleanVenv, service: LiveService, database: Path | str, port: int) -> None:
        self.venv = venv
        self.port = port
        self.webhook_url = f"http://127.0.0.1:{port}/hooks/llm-batch/webhook/"
        self.legacy_webhook_url = f"http://127.0.0.1:{port}/hooks/llm-batch"  # the first version's address
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "DJANGO_SETTINGS_MODULE": "monolith.settings",
            **(
                {"EXAMPLE_DATABASE": str(database)}
                if isinstance(database, Path)
                else {"EXAMPLE_DATABASE_URL": database}
            ),
            "LLM_BATCH_URL": service.url,
            "LLM_BATCH_TOKEN": TOKEN,
            "LLM_BATCH_WEBHOOK_SECRET": SECRET,
            "LLM_BATCH_CALLBACK_URL": self.webhook_url,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.server: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str, timeout: float = COMMAND_SECONDS, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv.python), "manage.py", *args],
            cwd=EXAMPLE, env={**self.env, **env}, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """run_llm_batch that must succeed."""
        done = self.manage("run_llm_batch", *args, **env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def state(self) -> dict[str, Any]:
        done = self.manage("shell", "-c", ROW_STATE)
        assert done.returncode == 0, done.stderr
        state: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])  # after what `shell` says it imported
        return state

    def serve(self, log: Path) -> None:
        with log.open("ab") as output:
            self.server = subprocess.Popen(
                [str(self.venv.python), "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
                cwd=EXAMPLE, env=self.env, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.server.poll() is None, log.read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the Django dev server did not start within {STARTUP_SECONDS}s: {log.read_text()}")

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.terminate()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait(timeout=10)
        self.server = None


class HeldClock:
    """The emulator's clock, which the test can stop: while held, no provider batch moves on, so the batches
    sent meanwhile stay in flight as long as the test needs."""

    def __init__(self, inner: Clock) -> None:
        self.inner = inner
        self.offset = 0.0
        self.held_at: float | None = None

    def now(self) -> float:
        return self.held_at if self.held_at is not None else self.inner.now() - self.offset

    def hold(self) -> None:
        self.held_at = self.now()

    def release(self) -> None:
        assert self.held_at is not None
        self.offset = self.inner.now() - self.held_at
        self.held_at = None


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LiveService]:
    behaviours = {
        **default_behaviours(),
        "openai/gpt-oss-120b": dataclasses.replace(GPT_OSS_120B, json_validate_failed=0.3),
    }
    live = start_service(tmp_path, **serving_provider_names(behaviours))
    yield live
    live.server.stop()


@pytest.fixture
def monolith(example_venv: CleanVenv, service: LiveService, tmp_path: Path) -> Iterator[Monolith]:
    """The monolith on SQLite."""
    built = Monolith(example_venv, service, tmp_path / "monolith.sqlite3", free_port())
    assert built.manage("migrate", "--verbosity", "0").returncode == 0
    yield built
    built.stop()


@pytest.fixture
def postgres_monolith(postgres_example_venv: CleanVenv, service: LiveService, postgres_url: str) -> Iterator[Monolith]:
    """The monolith on a fresh PostgreSQL database (skipped without a server, unless CI=true)."""
    built = Monolith(postgres_example_venv, service, postgres_url, free_port())
    migrated = built.manage("migrate", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    yield built
    built.stop()


def webhook_delivered(client: LlmBatchClient, batch_id: str, attempts: int = 1, within: float = 60.0) -> Batch:
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


def submitted(run: subprocess.CompletedProcess[str], rows: int) -> str:
    found = re.search(rf"Submitted batch (lb_\w+): {rows} rows, cascade ", run.stdout)
    assert found, run.stdout + run.stderr
    return found.group(1)


def by_pk(state: dict[str, Any]) -> dict[int, list[Any]]:
    return {row[0]: row for row in state["rows"]}


def test_the_django_monolith_stores_each_result_once_whatever_brings_it(
    monolith: Monolith, service: LiveService, tmp_path: Path
) -> None:
    the_whole_story(monolith, service, tmp_path)


@pytest.mark.postgres
def test_on_postgresql_the_monolith_stores_each_result_once_whatever_brings_it(
    postgres_monolith: Monolith, service: LiveService, tmp_path: Path
) -> None:
    the_whole_story(postgres_monolith, service, tmp_path)


def the_whole_story(monolith: Monolith, service: LiveService, tmp_path: Path) -> None:
    empty = monolith.run()
    assert empty.stdout.strip() == "Nothing to send.", "a scheduled run with nothing new succeeds"
    assert monolith.manage("seed_prs", str(ROWS)).stdout.strip() == f"Created {ROWS} pull requests."

    service_down(monolith)
    monolith.serve(tmp_path / "runserver.log")
    with LlmBatchClient(service.url, token=TOKEN) as client:
        batch = poll_and_webhook_race(monolith, client)
        redeliveries_store_nothing(monolith, client, batch)
        lost_webhook_retry_by_poll(monolith, client, service, batch, tmp_path / "runserver.log")
        in_flight_rows_are_not_sent_again(monolith, client, service)
        polling_without_a_webhook(monolith, client)

    misconfigured = monolith.manage("check", LLM_BATCH_WEBHOOK_SECRET="not-a-whsec-secret", timeout=30)
    assert misconfigured.returncode != 0 and "llm_batch.E002" in misconfigured.stderr
    assert "whsec_" in misconfigured.stderr and "not-a-whsec-secret" not in misconfigured.stderr


def service_down(monolith: Monolith) -> None:
    """No service at LLM_BATCH_URL: one message naming the URL and the setting, advice the user can follow,
    nothing recorded."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = monolith.manage("run_llm_batch", "--limit", "5", LLM_BATCH_URL=nowhere)
    assert down.returncode == 1 and down.stdout == ""
    message = down.stderr.strip()
    assert message.count(nowhere) == 1 and "(LLM_BATCH_URL)" in message, message
    assert message.count("no answer") == 1 and len(message.splitlines()) == 1, message
    assert "connection refused" in message and "Nothing was sent" in message, message
    assert "Idempotency-Key" not in message and "idempotency_key" not in message, message
    state = monolith.state()
    assert state["tracked"] == [] and state["in_flight"] == 0 and {row[4] for row in state["rows"]} == {""}


def poll_and_webhook_race(monolith: Monolith, client: LlmBatchClient) -> Batch:
    """--poll with a webhook: the webhook view and the waiting command both go for the results; each row is
    stored once, batch_finished is sent once."""
    run = monolith.run("--with-fallback", "--poll", "--no-strict", LLM_BATCH_WEBHOOK_POLL_SECONDS="0.5")
    batch_id = submitted(run, ROWS)
    assert "cascade openai/gpt-oss-20b -> openai/gpt-oss-120b" in run.stdout
    batch = webhook_delivered(client, batch_id)
    assert batch.status == "completed" and batch.counts.total == ROWS and batch.counts.failed > 0
    assert batch.metadata == {
        "source": "reviews",
        "django_command": "run_llm_batch",
        "django_model": "reviews.pullrequest",
    }

    state = monolith.state()
    rows = state["rows"]
    assert [row[3] for row in rows] == [1] * ROWS, "every row stored exactly once"
    assert all(row[1] != bool(row[2]) for row in rows), "a summary or a recorded failure, never both nor neither"
    assert (sum(row[1] for row in rows), sum(bool(row[2]) for row in rows)) == (
        batch.counts.succeeded,
        batch.counts.failed,
    )
    assert sum(Decimal(row[6]) for row in rows) == batch.cost.usd, "each row's exact cost; together the batch's"
    assert {row[4] for row in rows} == {batch_id} == {row[5] for row in rows}, "rows_sent and result.batch_id"
    assert state["notices"] == [[batch_id, state["notices"][0][1], batch.counts.succeeded, batch.counts.failed]]
    assert state["notices"][0][1] in ("webhook", "poll") and state["in_flight"] == 0
    stored = f"stored {batch.counts.succeeded} results and {batch.counts.failed} failures"
    assert run.stdout.count(stored) == 1, run.stdout
    assert re.search(r"^pass +kind +tier +model +why sent +items", run.stdout, re.MULTILINE), "the cost table"
    assert f"Total: ${batch.cost.usd}" in run.stdout
    assert f"send them again with --retry-batch {batch_id}" in run.stdout
    assert state["receipts"] == [[batch.webhook.webhook_id, batch_id, "batch.completed"]]  # type: ignore[union-attr]
    assert batch.webhook is not None and batch.webhook.last_status == 204, "the webhook verified and was handled"
    assert client.item(batch_id, "acme/payments#26000").metadata == {"pk": 1}
    return batch


def redeliveries_store_nothing(monolith: Monolith, client: LlmBatchClient, batch: Batch) -> None:
    """The same event again (dropped by its webhook-id), a new event for the same run (the results are stored
    already), and forged or expired ones (refused)."""
    before = monolith.state()
    client.redeliver_webhook(batch.id)
    again = webhook_delivered(client, batch.id, attempts=2)
    assert again.webhook is not None and again.webhook.last_status == 200

    event = {"type": "batch.completed", "timestamp": datetime.now(UTC).isoformat(), "data": dict(batch.raw)}
    body = json.dumps(event).encode()
    fresh = httpx.post(monolith.webhook_url, content=body, headers=signed(body, "msg_another", datetime.now(UTC)))
    assert fresh.status_code == 204, fresh.text

    empty = json.dumps({"type": "batch.completed", "timestamp": datetime.now(UTC).isoformat(), "data": {}}).encode()
    now = datetime.now(UTC)
    forged = signed(empty, "msg_forged", now, secret="whsec_" + "A" * 43 + "=")
    expired = signed(empty, "msg_expired", now - timedelta(minutes=10))
    for headers in (forged, expired, {"content-type": "application/json"}):
        refused = httpx.post(monolith.webhook_url, content=empty, headers=headers, timeout=10)
        assert refused.status_code == 400, refused.text

    after = monolith.state()
    assert after["rows"] == before["rows"] and after["notices"] == before["notices"], "nothing stored twice"
    assert [receipt[0] for receipt in after["receipts"]] == [*(r[0] for r in before["receipts"]), "msg_another"]


def lost_webhook_retry_by_poll(
    monolith: Monolith, client: LlmBatchClient, service: LiveService, batch: Batch, log: Path
) -> None:
    """The retry's webhook is lost (the monolith's server is down): --poll stores the results and sends
    batch_finished; the webhook that comes later stores nothing more. `--model` (now --retry-model) still
    works, with a warning."""
    failed_before = {row[0] for row in monolith.state()["rows"] if row[2]}
    service.emulator.config.behaviours["openai/gpt-oss-120b"] = GPT_OSS_120B  # the bad spell is over
    monolith.stop()
    numbered = monolith.manage("run_llm_batch", "--retry-batch", "7")
    assert numbered.returncode == 1 and "lb_..." in numbered.stderr and batch.id in numbered.stderr

    retry = monolith.run(
        "--retry-batch", batch.id, "--model", "openai/gpt-oss-120b", "--poll", LLM_BATCH_WEBHOOK_POLL_SECONDS="0.5"
    )
    assert "--model is deprecated, use --retry-model" in retry.stderr
    retried = client.get(batch.id)
    retry_pass = retried.passes[-1]
    assert retry_pass.kind == "retry" and retry_pass.items == batch.counts.failed
    assert retry_pass.model == "openai/gpt-oss-120b" and retry_pass.tier == 1
    assert f"Retrying {batch.counts.failed} failed items of {batch.id} as pass {retry_pass.number}" in retry.stdout
    assert f"Batch {batch.id}: stored {retry_pass.succeeded} results and {retry_pass.failed} failures." in retry.stdout
    assert re.search(rf"^{retry_pass.number} +retry ", retry.stdout, re.MULTILINE)

    state = monolith.state()
    assert len(failed_before) == batch.counts.failed
    assert [row[3] for row in state["rows"]] == [2 if row[0] in failed_before else 1 for row in state["rows"]], (
        "the retried rows stored once more, the others not again"
    )
    assert state["notices"][-1] == [batch.id, "poll", retry_pass.succeeded, retry_pass.failed]
    assert len(state["notices"]) == 2 and state["in_flight"] == 0
    assert sum(row[1] for row in state["rows"]) == retried.counts.succeeded
    assert sum(Decimal(row[6]) for row in state["rows"]) == retried.cost.usd

    monolith.serve(log)
    client.redeliver_webhook(batch.id)  # the retry's event, which the stopped server never took
    webhook_delivered(client, batch.id)
    later = monolith.state()
    assert later["rows"] == state["rows"] and later["notices"] == state["notices"], "the late webhook stored nothing"
    assert len(later["receipts"]) == len(state["receipts"]) + 1


def in_flight_rows_are_not_sent_again(monolith: Monolith, client: LlmBatchClient, service: LiveService) -> None:
    """While batches are in flight, the next runs send other rows, then nothing; a batch sent with the first
    version's callback address is still delivered there."""
    assert monolith.manage("seed_prs", "60").returncode == 0
    clock = HeldClock(service.emulator.clock)
    service.emulator.clock = clock
    clock.hold()
    try:
        first = submitted(monolith.run("--limit", "30", LLM_BATCH_CALLBACK_URL=monolith.legacy_webhook_url), 30)
        second = submitted(monolith.run("--limit", "30"), 30)
        nothing = monolith.run()
        assert nothing.stdout.strip() == "Nothing to send (60 rows are in flight, their results not stored yet).", (
            nothing.stdout
        )
        state = by_pk(monolith.state())
        assert [state[pk][4] for pk in range(ROWS + 1, ROWS + 31)] == [first] * 30
        assert [state[pk][4] for pk in range(ROWS + 31, ROWS + 61)] == [second] * 30
    finally:
        clock.release()
    for batch_id in (first, second):
        done = webhook_delivered(client, batch_id)
        assert done.callback_url == (monolith.legacy_webhook_url if batch_id == first else monolith.webhook_url)
        assert done.webhook is not None and done.webhook.last_status == 204
    state = monolith.state()
    new_rows = [row for row in state["rows"] if row[0] > ROWS]
    assert [row[3] for row in new_rows] == [1] * 60 and all(row[1] or row[2] for row in new_rows)
    assert [notice[:2] for notice in state["notices"][-2:]] == [[first, "webhook"], [second, "webhook"]]
    assert state["in_flight"] == 0 and monolith.run().stdout.strip() == "Nothing to send."

    assert monolith.manage("seed_prs", "3").returncode == 0
    lost = monolith.manage("shell", "-c", LOST_BATCH)  # sent in a batch the service no longer has
    assert lost.returncode == 0, lost.stderr
    again = monolith.run()
    assert "Batch lb_01gone is unknown to the service: its 3 rows are in flight no more." in again.stderr
    webhook_delivered(client, submitted(again, 3))  # sent again, and stored by the webhook


LOST_BATCH = """
from llm_batch_client.django.models import RowInFlight, TrackedBatch
from reviews.models import PullRequest
gone = TrackedBatch.objects.create(batch_id="lb_01gone", command="run_llm_batch", model_label="reviews.pullrequest")
for pr in PullRequest.objects.order_by("-pk")[:3]:
    RowInFlight.objects.create(batch=gone, model_label="reviews.pullrequest", object_pk=str(pr.pk))
"""


def polling_without_a_webhook(monolith: Monolith, client: LlmBatchClient) -> None:
    """No callback URL: a run that does not wait leaves its batch to the next run, which stores it; --poll polls
    every LLM_BATCH_POLL_SECONDS; batch_finished comes by poll. --import-batch stores nothing twice, unless
    told to store again."""
    assert monolith.manage("seed_prs", "40").returncode == 0
    unattended = submitted(monolith.run("--limit", "20", LLM_BATCH_CALLBACK_URL=""), 20)
    done = client.wait(unattended, timeout=60, poll_interval=0.1)
    assert done.callback_url is None and done.webhook is None
    assert monolith.state()["notices"][-1][0] != unattended, "nobody stored it yet"
    later = monolith.run("--poll", LLM_BATCH_CALLBACK_URL="", LLM_BATCH_POLL_SECONDS="0.3")
    stored = f"stored {done.counts.succeeded} results and {done.counts.failed} failures"
    assert f"Batch {unattended} had finished: {stored}." in later.stdout
    polled = submitted(later, 20)
    assert "polling every 0.3 s (LLM_BATCH_POLL_SECONDS)" in later.stderr
    finished = client.get(polled)
    state = monolith.state()
    assert state["notices"][-2:] == [
        [unattended, "poll", done.counts.succeeded, done.counts.failed],
        [polled, "poll", finished.counts.succeeded, finished.counts.failed],
    ]
    assert [row[3] for row in state["rows"] if row[0] > ROWS + 63] == [1] * 40

    already = monolith.run("--import-batch", polled)
    assert f"Batch {polled}: its results were stored already (by poll): stored " in already.stdout
    assert monolith.state()["rows"] == state["rows"]
    again = monolith.run("--import-batch", polled, "--again")
    assert f"Batch {polled}: stored {finished.counts.succeeded} results" in again.stdout
    after = monolith.state()
    assert [row[3] for row in after["rows"] if row[0] > ROWS + 83] == [2] * 20, "stored again, as asked"
    assert after["notices"][-1][:2] == [polled, "import"]


def test_a_receiver_of_the_first_version_stores_nothing_twice(monolith: Monolith, service: LiveService) -> None:
    """The first README's receiver called Command().handle_webhook(event) from batch_finished: still harmless
    (a deprecation warning, the tally of what is stored, nothing stored again)."""
    assert monolith.manage("seed_prs", "5").returncode == 0
    batch_id = submitted(monolith.run("--poll", LLM_BATCH_CALLBACK_URL="", LLM_BATCH_POLL_SECONDS="0.2"), 5)
    with LlmBatchClient(service.url, token=TOKEN) as client:
        raw = json.dumps(dict(client.get(batch_id).raw))
    script = OLD_RECEIVER.replace("RAW", repr(raw))
    done = monolith.manage("shell", "-c", script)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert sum(found["tally"]) == 5 and found["warned"] and found["times_stored"] == [1] * 5


OLD_RECEIVER = """
import json, warnings
from llm_batch_client import Batch, WebhookEvent
from reviews.management.commands.run_llm_batch import Command
from reviews.models import PullRequest
batch = Batch.from_json(json.loads(RAW))
event = WebhookEvent(webhook_id="msg_old", type="batch.completed", timestamp=batch.updated_at, batch=batch, raw={})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    tally = Command().handle_webhook(event)
print(json.dumps({
    "tally": [tally.stored, tally.failed],
    "warned": any(issubclass(w.category, DeprecationWarning) for w in caught),
    "times_stored": [pr.times_stored for pr in PullRequest.objects.order_by("pk")],
}))
"""


def test_the_command_hands_provider_model_tiers_on(monolith: Monolith, service: LiveService) -> None:
    assert monolith.manage("seed_prs", "6").returncode == 0
    run = monolith.run("--cascade", f"{SMALL},{LARGE}", "--with-fallback", "--no-strict", "--poll",
                       LLM_BATCH_CALLBACK_URL="", LLM_BATCH_POLL_SECONDS="0.2")  # fmt: skip
    batch_id = submitted(run, 6)
    assert f"cascade {SMALL_BARE} -> {LARGE_BARE}." in run.stdout, "the service names Groq models bare"
    assert re.search(rf"^1 +primary +0 +{re.escape(SMALL)} ", run.stdout, re.MULTILINE), run.stdout
    with LlmBatchClient(service.url, token=TOKEN) as client:
        batch = client.get(batch_id)
        assert [tier["model"] for tier in batch.cascade] == [SMALL_BARE, LARGE_BARE]
        assert {tier.provider for tier in batch.tiers} == {"groq"}
    assert {row[3] for row in monolith.state()["rows"]} == {1}


RACE = """
import json, os
from llm_batch_client.django.conf import client
from reviews.management.commands.run_llm_batch import Command
Command.results_per_transaction = 2
with client() as llm_batch:
    stored = Command().import_stored(llm_batch, os.environ["RACE_BATCH"])
print(json.dumps({"here": stored.here, "tally": [stored.tally.stored, stored.tally.failed]}))
"""
FORGET = """
import os
from llm_batch_client.django.models import TrackedBatch
TrackedBatch.objects.filter(batch_id=os.environ["RACE_BATCH"]).update(stored_through_pass=0, stored_at=None)
"""


def test_two_imports_at_once_store_each_row_once(monolith: Monolith, service: LiveService) -> None:
    two_imports_at_once(monolith, service)


@pytest.mark.postgres
def test_on_postgresql_two_imports_at_once_store_each_row_once(
    postgres_monolith: Monolith, service: LiveService
) -> None:
    two_imports_at_once(postgres_monolith, service)


def two_imports_at_once(monolith: Monolith, service: LiveService) -> None:
    """Two processes store the same batch at the same moment, two rows per transaction: they take turns page by
    page, and each row is stored once, batch_finished sent once."""
    assert monolith.manage("seed_prs", "40").returncode == 0
    batch_id = submitted(monolith.run("--poll", LLM_BATCH_CALLBACK_URL="", LLM_BATCH_POLL_SECONDS="0.2"), 40)
    assert monolith.manage("shell", "-c", FORGET, RACE_BATCH=batch_id).returncode == 0  # as if never stored
    racers = [
        subprocess.Popen(
            [str(monolith.venv.python), "manage.py", "shell", "-c", RACE],
            cwd=EXAMPLE,
            env={**monolith.env, "RACE_BATCH": batch_id},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = []
    for racer in racers:
        out, err = racer.communicate(timeout=COMMAND_SECONDS)
        assert racer.returncode == 0, err
        outcomes.append(json.loads(out.splitlines()[-1]))
    with LlmBatchClient(service.url, token=TOKEN) as client:
        done = client.get(batch_id)
    state = monolith.state()
    assert [row[3] for row in state["rows"]] == [2] * 40, "stored by --poll, then once more by the two together"
    assert [notice[:2] for notice in state["notices"]] == [[batch_id, "poll"], [batch_id, "import"]]
    assert all(outcome["tally"] == [done.counts.succeeded, done.counts.failed] for outcome in outcomes)
    assert any(outcome["here"] for outcome in outcomes)


def test_the_command_deletes_a_batch_and_releases_its_rows(monolith: Monolith, service: LiveService) -> None:
    assert monolith.manage("seed_prs", "4").returncode == 0
    batch_id = submitted(monolith.run("--no-strict", LLM_BATCH_CALLBACK_URL=""), 4)
    assert monolith.state()["in_flight"] == 4

    deleted = monolith.run("--delete-batch", batch_id)
    assert f"Batch {batch_id} is deleted" in deleted.stdout
    assert monolith.state()["in_flight"] == 0, "the deleted batch's rows can be sent again"
    with LlmBatchClient(service.url, token=TOKEN) as client:
        deadline = time.monotonic() + 60
        while not (batch := client.get(batch_id)).purged:
            assert time.monotonic() < deadline, batch
            time.sleep(0.1)
        assert batch.counts.total == 4
    again = monolith.run("--no-strict", "--poll", LLM_BATCH_CALLBACK_URL="", LLM_BATCH_POLL_SECONDS="0.2")
    submitted(again, 4)
