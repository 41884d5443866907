"""Schemathesis against the ASGI app, operation by operation from openapi.yaml: generated requests, valid
(positive) and not (negative), must never get a 5xx, and every answer must match the document. Bounded:
MAX_EXAMPLES per operation and mode, no workers, in-process; DNS is answered by the test, so no callback_url
host is ever looked up or contacted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from starlette.types import Receive, Scope, Send

from service.app import create_app
from tests.conftest import test_settings as make_settings
from tests.webhooks.helpers import SECRET

TOKEN = "fuzz-token-0123456789"
MAX_EXAMPLES = 30
OPENAPI_FILE = Path(__file__).resolve().parents[2] / "openapi.yaml"
DOCUMENT = yaml.safe_load(OPENAPI_FILE.read_text(encoding="utf-8"))
CASES = [
    pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} {mode}")
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # An operation without any input has no invalid request to make.
    if mode == GenerationMode.POSITIVE or operation.get("parameters") or operation.get("requestBody")
]
# Left out, on purpose: "schema-valid must be accepted" (the API also refuses what a JSON Schema cannot say: an
# empty "messages" list inside a free-form body, a model without a price, a duplicate custom_id; those answers
# are 422 problem+json, which the other checks hold to the document), and "schema-violating must be refused"
# (unknown query parameters are ignored, as HTTP APIs do, and the token this test sends on every request undoes
# the negative cases that drop it; tests/api/test_auth.py covers those).
EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]


async def public_dns(host: str, port: int) -> Sequence[str]:
    return ["93.184.216.34"]


class FakeDnsApp:
    """The app, with its SSRF guard's resolver replaced before each request (the lifespan makes the guard)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.app.state.llm_batch.callback_guard.resolver = public_dns
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp_path = tmp_path_factory.mktemp("fuzz")
    app_settings = make_settings(
        f"sqlite:///{tmp_path}/fuzz.db",
        tmp_path,
        api_tokens=[TOKEN],
        workers_enabled=False,
        webhook_secret=SECRET,
        max_request_bytes=2 * 1024 * 1024,
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", FakeDnsApp(create_app(app_settings)))
    shutdown_lifespans()


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(
    api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=EXCLUDED_CHECKS)

    call()
