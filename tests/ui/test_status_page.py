"""The /ui status page over HTTP: what it shows for a batch, its result links, and its auth."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from groq_emulator import ManualClock
from service.ui.auth import TOKEN_COOKIE
from service.webhooks.signing import new_webhook_secret
from tests.cli.live_server import LiveServer
from tests.conftest import Service, fast_emulator_config
from tests.payloads import pr_batch
from tests.retention.helpers import wait_purged

TOKEN = "ui-test-token-0123456789"
SEGMENT = re.compile(r'data-kind="(\w+)" data-label="([\w-]+)" data-count="(\d+)"')


def pass_cards(html: str) -> dict[int, str]:
    parts = re.split(r'<div class="card pass" data-pass="(\d+)">', html)
    return {int(number): body for number, body in zip(parts[1::2], parts[2::2], strict=True)}


def bar_segments(html: str) -> dict[str, int]:
    """The segments of the first bar in ``html``: label -> count."""
    bar = html.split('<div class="bar', 1)[1].split("</div>\n", 1)[0]
    return {label: int(count) for _, label, count in SEGMENT.findall(bar)}


async def test_a_finished_batch_shows_each_pass_as_a_bar_with_its_cost_and_provider_batches(
    start_service: Any, sqlite_url: str
) -> None:
    service: Service = await start_service(sqlite_url)
    created = await service.submit(pr_batch(120), fallback=True)
    summary = await service.wait(created["id"])

    page = await service.client.get(f"/ui/batches/{created['id']}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'http-equiv="refresh"' not in html, "a finished batch does not refresh"
    assert '<span class="badge completed" id="batch-status">completed</span>' in html
    assert f"${summary['cost']['usd']:,.6f}" in html

    cards = pass_cards(html)
    assert sorted(cards) == [1, 2]
    for p in summary["passes"]:
        card = cards[p["number"]]
        expected = {"succeeded": p["succeeded"], **p["failure_reasons"]}
        assert bar_segments(card) == {label: count for label, count in expected.items() if count}
        assert f"${p['cost']['usd']:,.6f}" in card
        assert p["model"] in card
        for chunk in p["provider_batches"]:
            assert chunk["id"] in card and f"badge {chunk['status']}" in card
    overall = {"succeeded": summary["counts"]["succeeded"], **summary["failure_reasons"]}
    assert bar_segments(html) == {label: count for label, count in overall.items() if count}
    assert f'href="/ui/batches/{created["id"]}/results.json"' in html
    assert f'href="/ui/batches/{created["id"]}/results.ndjson"' in html
    assert 'id="webhook"' in html and "No callback_url" in html


async def test_result_links_serve_the_same_rows_as_the_api(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    created = await service.submit(pr_batch(30))
    await service.wait(created["id"])
    api_rows = await service.results(created["id"])

    page = (await service.client.get(f"/ui/batches/{created['id']}/results.json?limit=20")).json()
    rest = (await service.client.get(f"/ui/batches/{created['id']}/results.json?after={page['next_cursor']}")).json()
    assert page["has_more"] and not rest["has_more"]
    assert page["data"] + rest["data"] == api_rows
    streamed = await service.client.get(f"/ui/batches/{created['id']}/results.ndjson")
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in streamed.text.splitlines()] == api_rows
    failed = (await service.client.get(f"/ui/batches/{created['id']}/results.json?status=failed")).json()["data"]
    assert failed == [row for row in api_rows if row["status"] == "failed"]
    assert (await service.client.get("/ui/batches/lb_nope/results.json")).status_code == 404


async def test_a_running_batch_refreshes_and_shows_pending_work(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url, emulator_config=fast_emulator_config(clock=ManualClock()))
    created = await service.submit(pr_batch(10), fallback=True)
    html = (await service.client.get(f"/ui/batches/{created['id']}")).text
    assert '<meta http-equiv="refresh" content="2">' in html
    listing = (await service.client.get("/ui")).text
    assert '<meta http-equiv="refresh" content="5">' in listing
    assert f'<tr data-batch-id="{created["id"]}">' in listing
    assert (await service.client.get("/ui/batches/lb_nope")).status_code == 404


async def test_with_api_tokens_the_page_wants_a_token_from_the_header_or_the_login_cookie(
    start_service: Any, sqlite_url: str
) -> None:
    service: Service = await start_service(sqlite_url, api_tokens=[TOKEN])
    client = service.client
    response = await client.post("/batches", json=pr_batch(3), headers={"Authorization": f"Bearer {TOKEN}"})
    batch_id = response.json()["id"]
    detail = f"/ui/batches/{batch_id}"

    anonymous = await client.get(detail)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/ui/login?next={quote(detail, safe='')}"
    assert (await client.get(f"{detail}/results.json")).status_code == 401
    assert (await client.get(f"{detail}/results.ndjson")).status_code == 401
    assert (await client.get(detail, headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200

    form = await client.get(f"/ui/login?next={quote(detail, safe='')}")
    assert form.status_code == 200 and 'name="token"' in form.text and f'value="{detail}"' in form.text
    wrong = await client.post("/ui/login", data={"token": "not-it", "next": detail})
    assert wrong.status_code == 401 and "Unknown token." in wrong.text
    assert TOKEN_COOKIE not in wrong.headers.get("set-cookie", "")

    login = await client.post("/ui/login", data={"token": TOKEN, "next": detail})
    assert login.status_code == 303 and login.headers["location"] == detail
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    browser = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.app), base_url=str(client.base_url), cookies={TOKEN_COOKIE: TOKEN}
    )
    async with browser:
        assert (await browser.get(detail)).status_code == 200
        assert (await browser.get("/ui")).status_code == 200
        assert (await browser.get(f"{detail}/results.json")).status_code == 200
        assert (await browser.post("/ui/logout")).headers["location"] == "/ui/login"


async def test_login_never_redirects_off_the_status_page(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url, api_tokens=[TOKEN])
    for target in ("https://evil.example/", "//evil.example/ui", "/batches", "/ui\\@evil"):
        login = await service.client.post("/ui/login", data={"token": TOKEN, "next": target})
        assert login.headers["location"] == "/ui", target


async def test_without_api_tokens_the_page_is_open_and_says_so(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    page = await service.client.get("/ui")
    assert page.status_code == 200
    assert "API_TOKENS is empty: authentication is off" in page.text
    assert "No batches yet" in page.text
    login = await service.client.get("/ui/login")
    assert "Authentication is off" in login.text


async def test_the_webhook_card_shows_the_delivery(start_service: Any, sqlite_url: str) -> None:
    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=204)

    receiver = LiveServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])])).start()
    try:
        service: Service = await start_service(
            sqlite_url, callback_allowed_hosts=["127.0.0.1"], webhook_secret=SecretStr(new_webhook_secret())
        )
        created = await service.submit(pr_batch(5, callback_url=f"{receiver.url}/hook"))
        await service.wait(created["id"])
        deadline = asyncio.get_running_loop().time() + 30
        while (await service.client.get(f"/batches/{created['id']}")).json()["webhook"]["state"] != "delivered":
            assert asyncio.get_running_loop().time() < deadline, "the webhook was not delivered"
            await asyncio.sleep(0.05)
        html = (await service.client.get(f"/ui/batches/{created['id']}")).text
    finally:
        receiver.stop()
    card = html.split('id="webhook"', 1)[1]
    assert 'id="webhook-state">delivered<' in card
    assert f"{receiver.url}/hook" in card and "batch.completed" in card
    assert "<td>1</td><td>204</td>" in card, "the attempt log: attempt 1 answered 204"
    assert received


async def test_a_purged_batch_shows_as_such_without_result_links(start_service: Any, sqlite_url: str) -> None:
    service: Service = await start_service(sqlite_url)
    created = await service.submit(pr_batch(3, strict=False))
    await service.wait(created["id"])
    assert (await service.client.delete(f"/batches/{created['id']}")).status_code == 202
    await wait_purged(service, created["id"])

    html = (await service.client.get(f"/ui/batches/{created['id']}")).text
    assert 'id="batch-purged">purged ' in html and "only this summary remains" in html
    assert "results.json" not in html and "results.ndjson" not in html
    for link in ("results.json", "results.ndjson"):
        gone = await service.client.get(f"/ui/batches/{created['id']}/{link}")
        assert gone.status_code == 410, gone.text
