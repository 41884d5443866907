"""Structured logs: one JSON object per line with the worker step's batch, pass and provider batch; and no
secret in any line, whoever logs it, even at DEBUG."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from groq_emulator import Emulator, create_emulator_app
from service.observability.logging import (
    HANDLER_NAME,
    bind_log_context,
    configure_logging,
    log_context,
)
from service.observability.redaction import REDACTED, RedactingFilter, Redactor
from service.webhooks.signing import new_webhook_secret
from tests.cli.live_server import LiveServer, start_live_service
from tests.conftest import Service, fast_emulator_config
from tests.payloads import pr_batch

WATCHED_LOGGERS = ("httpx", "httpcore", "groq", "uvicorn", "uvicorn.error", "uvicorn.access")


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def capture_logs() -> Iterator[Any]:
    """capture_logs(level=..., log_format=..., stream=...) installs the service's handler on a buffer; the
    handler and levels in place before are put back afterwards."""
    root = logging.getLogger()
    saved_handlers = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    saved_levels = {name: logging.getLogger(name).level for name in ("", *WATCHED_LOGGERS)}

    def install(level: str = "INFO", log_format: str | None = "json", stream: io.StringIO | None = None, **kw: Any):
        buffer = stream if stream is not None else io.StringIO()
        configure_logging(log_format=log_format, level=level, stream=buffer, **kw)  # type: ignore[arg-type]
        return buffer

    yield install
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = buffer.getvalue().splitlines()
    return [json.loads(line) for line in lines]  # every line is one JSON object, or this raises


async def test_worker_lines_carry_batch_pass_and_provider_batch(
    start_service: Any, sqlite_url: str, capture_logs: Any
) -> None:
    buffer = capture_logs(level="INFO")
    service: Service = await start_service(sqlite_url)
    created = await service.submit(pr_batch(60), fallback=True)
    summary = await service.wait(created["id"])
    provider_ids = {p["number"]: p["provider_batches"][0]["id"] for p in summary["passes"]}

    records = json_lines(buffer)
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    created_lines = [r for r in records if r["message"].startswith("created provider batch")]
    ingested_lines = [r for r in records if r["message"].startswith("ingested provider batch")]
    assert len(created_lines) == len(ingested_lines) == 2
    for record in created_lines + ingested_lines:
        assert record["batch_id"] == created["id"]
        assert record["provider_batch_id"] == provider_ids[record["pass"]]
    assert {r["pass"] for r in ingested_lines} == {1, 2}
    finished = next(r for r in records if r["message"].startswith(f"batch {created['id']} finished"))
    assert finished["batch_id"] == created["id"] and "pass" not in finished, "a batch step is about no one pass"


def test_context_ends_with_its_block_and_reaches_every_logger(capture_logs: Any) -> None:
    buffer = capture_logs(level="INFO")
    with log_context(batch_id="lb_1", pass_number=2):
        bind_log_context(provider_batch_id="batch_9")
        logging.getLogger("some.library").info("inside")
    logging.getLogger("service").info("outside")
    inside, outside = json_lines(buffer)
    assert (inside["batch_id"], inside["pass"], inside["provider_batch_id"]) == ("lb_1", 2, "batch_9")
    assert inside["logger"] == "some.library"
    assert not {"batch_id", "pass", "provider_batch_id"} & outside.keys()


def test_text_format_on_a_terminal_and_json_otherwise(capture_logs: Any) -> None:
    terminal = capture_logs(log_format=None, stream=TtyStringIO())
    with log_context(batch_id="lb_1"):
        logging.getLogger("service").warning("hello %s", "there")
    line = terminal.getvalue().strip()
    assert " WARNING service hello there [batch_id=lb_1]" in line and not line.startswith("{")

    piped = capture_logs(log_format=None, stream=io.StringIO())
    logging.getLogger("service").warning("hello")
    assert json.loads(piped.getvalue())["message"] == "hello"


def test_redaction_scrubs_bearer_tokens_webhook_keys_groq_keys_and_known_secrets() -> None:
    redactor = Redactor()
    redactor.add(["plain-known-secret-value", "tok_a", None])
    text = (
        "Authorization: Bearer eyJhbGci.OiJIUzI1NiJ9-x_y; secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, "
        "key gsk_0123456789abcdefABCDEF, {'authorization': 'bearer tok-123'} and plain-known-secret-value; "
        "GET /ui?access_token=never-seen-before&next=/ui; tok_a"
    )
    redacted = redactor.redact(text)
    for secret in (
        "eyJhbGci",
        "MfKQ9r8GKYqrTwjUPD8IL",
        "0123456789abcdef",
        "tok-123",
        "plain-known-secret-value",
        "never-seen-before",
        "tok_a",
    ):
        assert secret not in redacted
    assert redacted.count(REDACTED) == 7, "a configured secret is redacted however short it is"
    assert "&next=/ui" in redacted

    record = logging.LogRecord("httpx", logging.DEBUG, __file__, 1, "headers %s", ({"x": "Bearer t0ken-t0ken"},), None)
    assert RedactingFilter(redactor).filter(record)
    assert "t0ken" not in record.getMessage()


def test_no_secret_reaches_any_log_line_of_a_real_run_at_debug(tmp_path: Path, capture_logs: Any) -> None:
    groq_key = f"groq-test-key-{uuid.uuid4().hex}"
    api_token = f"api-token-{uuid.uuid4().hex}"
    admin_token = f"admin-token-{uuid.uuid4().hex}"
    webhook_secret = new_webhook_secret()
    secrets = (groq_key, api_token, admin_token, webhook_secret, webhook_secret.removeprefix("whsec_"))
    buffer = capture_logs(level="DEBUG")  # the service's own secrets are registered by create_app, not here

    received: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        received.append(dict(request.headers))
        await request.body()
        return Response(status_code=204)

    emulator = Emulator(fast_emulator_config())
    emulator_server = LiveServer(create_emulator_app(emulator=emulator)).start()
    receiver = LiveServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    service = start_live_service(
        f"sqlite:///{tmp_path}/llm_batch.db",
        tmp_path,
        groq_api_key=SecretStr(groq_key),
        groq_base_url=emulator_server.url,
        api_tokens=[f"monolith:{api_token}"],
        admin_tokens=[admin_token],
        webhook_secret=SecretStr(webhook_secret),
        callback_allowed_hosts=["127.0.0.1"],
    )
    try:
        headers = {"Authorization": f"Bearer {api_token}"}
        with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
            payload = pr_batch(30, callback_url=f"{receiver.url}/hook")
            created = client.post("/batches?fallback=true", json=payload)
            assert created.status_code == 202, created.text
            batch_id = created.json()["id"]
            deadline = time.monotonic() + 60
            while client.get(f"/batches/{batch_id}").json()["status"] not in ("completed", "failed"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            while not received:
                assert time.monotonic() < deadline, "the webhook was not delivered"
                time.sleep(0.05)
            assert client.get("/batches", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
            assert client.get("/batches", headers={"Authorization": f"Bearer {admin_token}"}).status_code == 200
            client.get(f"/ui?access_token={admin_token}")  # a token in a URL reaches the access log
        with httpx.Client(base_url=service.url, cookies={"llm_batch_token": api_token}, timeout=30) as browser:
            assert browser.get("/ui").status_code == 200
    finally:
        service.server.stop()
        receiver.stop()
        emulator_server.stop()

    assert emulator.request_headers and all(
        h.get("authorization") == f"Bearer {groq_key}" for h in emulator.request_headers
    )
    assert received[0].get("webhook-signature"), "the webhook was signed with the secret"
    # The safety net: create_app registered the configured secrets, so even a careless line is scrubbed.
    logging.getLogger("some.library").warning("careless: %s %s %s %s", groq_key, api_token, admin_token, webhook_secret)
    assert buffer.getvalue().splitlines()[-1].count(REDACTED) == 4
    text = buffer.getvalue()
    loggers = {record["logger"] for record in json_lines(buffer)}
    assert {"httpx", "httpcore.http11", "uvicorn.access", "service.batches.chunks.sending"} <= loggers, loggers
    assert any(record["level"] == "DEBUG" for record in json_lines(buffer))
    for secret in secrets:
        assert secret not in text
