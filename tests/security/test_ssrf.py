"""The SSRF guard on callback_url: refused at submit unless public or allow-listed, checked again at every
delivery against the DNS answer of that moment (rebinding), and connected only to the address it checked.

DNS is answered by the tests (the guard's resolver is injectable); no test sends anything to a non-loopback
address: a refused address is refused before any connection is made.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import pytest

from service.webhooks.ssrf import CallbackGuard, CallbackRefused, address_refusal, parse_callback_url
from tests.api.test_bad_input import assert_nothing_stored, assert_problem
from tests.conftest import Service
from tests.payloads import pr_batch
from tests.webhooks.helpers import wait_for_webhook, webhook_settings
from tests.webhooks.receiver import Receiver

PUBLIC = "93.184.216.34"


class FakeDns:
    """Answers for the names the tests use. `rebind(host, later)`: the next question about `host` still gets
    the current answer, every one after it gets `later` (a DNS rebinding attack, deterministically)."""

    def __init__(self, answers: dict[str, Sequence[str]]) -> None:
        self.answers = {host: [list(addresses)] for host, addresses in answers.items()}
        self.asked: list[str] = []

    def rebind(self, host: str, later: Sequence[str]) -> None:
        self.answers[host].append(list(later))

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"no such host {host}")
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def guard_of(service: Service) -> CallbackGuard:
    guard: CallbackGuard = service.app.state.llm_batch.callback_guard
    return guard


async def start_guarded(start_service: Any, url: str, dns: FakeDns, **overrides: Any) -> Service:
    service: Service = await start_service(url, **webhook_settings(**overrides))
    guard_of(service).resolver = dns
    return service


REFUSED_AT_SUBMIT = [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://172.16.5.4/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[::1]:8000/hook", "loopback"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://100.100.100.200/", "metadata"),
    ("http://100.64.0.1/", "not a public address"),
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://[::ffff:127.0.0.1]/", "private"),
    ("http://224.0.0.1/", "multicast"),
    ("http://localhost:8000/hook", "loopback"),
    ("http://hooks.rebind.test/hook", "private"),
    ("http://mixed.rebind.test/hook", "loopback"),
    ("https://user:secret@hooks.public.test/hook", "user name or password"),
    ("ftp://hooks.public.test/hook", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("http://nowhere.test/hook", "does not resolve"),
]


@pytest.mark.parametrize(("callback_url", "reason"), REFUSED_AT_SUBMIT)
async def test_callback_url_to_an_internal_address_is_refused_at_submit(
    sqlite_url: str, start_service: Any, callback_url: str, reason: str
) -> None:
    dns = FakeDns(
        {
            "localhost": ["127.0.0.1", "::1"],
            "hooks.rebind.test": ["10.0.0.7"],
            "mixed.rebind.test": [PUBLIC, "127.0.0.1"],
            "hooks.public.test": [PUBLIC],
        }
    )
    service = await start_guarded(start_service, sqlite_url, dns, callback_allowed_hosts=[], workers_enabled=False)
    response = await service.client.post("/batches", json={**pr_batch(2), "callback_url": callback_url})
    problem = assert_problem(response, 422, "callback_url", reason)
    assert problem["field"] == "callback_url"
    await assert_nothing_stored(service)


async def test_a_public_callback_url_is_accepted_at_submit(sqlite_url: str, start_service: Any) -> None:
    dns = FakeDns({"hooks.public.test": [PUBLIC]})
    service = await start_guarded(start_service, sqlite_url, dns, callback_allowed_hosts=[], workers_enabled=False)
    created = await service.submit({**pr_batch(2), "callback_url": "https://hooks.public.test/llm-batch"})
    assert created["callback_url"] == "https://hooks.public.test/llm-batch"
    assert dns.asked == ["hooks.public.test"]


@pytest.mark.parametrize(
    ("allowed", "callback_url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:8000/hook"),
        (["localhost"], "http://localhost:8000/hook"),
        (["LOCALHOST."], "http://localhost:8000/hook"),
        (["::1"], "http://[::1]:8000/hook"),
        (["django.internal"], "https://django.internal/hooks/llm-batch"),
    ],
)
async def test_an_allow_listed_host_may_be_private(
    sqlite_url: str, start_service: Any, allowed: list[str], callback_url: str
) -> None:
    dns = FakeDns({"localhost": ["127.0.0.1"], "django.internal": ["10.20.0.5"]})
    service = await start_guarded(start_service, sqlite_url, dns, callback_allowed_hosts=allowed, workers_enabled=False)
    await service.submit({**pr_batch(2), "callback_url": callback_url})


async def test_allow_list_is_by_host_not_by_address(sqlite_url: str, start_service: Any) -> None:
    """Allowing 127.0.0.1 does not allow a name that happens to resolve to it."""
    dns = FakeDns({"sneaky.test": ["127.0.0.1"]})
    service = await start_guarded(
        start_service, sqlite_url, dns, callback_allowed_hosts=["127.0.0.1"], workers_enabled=False
    )
    response = await service.client.post("/batches", json={**pr_batch(2), "callback_url": "http://sneaky.test/h"})
    assert_problem(response, 422, "callback_url", "127.0.0.1", "loopback")


async def test_dns_rebinding_after_submit_is_refused_at_delivery(database_url: str, start_service: Any) -> None:
    """Public when the batch is submitted, private when the webhook is sent: the attempt is refused before any
    connection, recorded as failed, and tried again later (when DNS may answer otherwise)."""
    dns = FakeDns({"hooks.rebind.test": [PUBLIC]})
    service = await start_guarded(start_service, database_url, dns, callback_allowed_hosts=[], webhook_max_attempts=2)
    dns.rebind("hooks.rebind.test", ["10.0.0.7"])
    created = await service.submit({**pr_batch(2), "callback_url": "http://hooks.rebind.test/hook"})
    batch = await wait_for_webhook(service, created["id"], "failed")
    webhook = batch["webhook"]
    assert dns.asked == ["hooks.rebind.test"] * 3, "once at submit, then at each of the two attempts"
    assert webhook["attempts"] == 2 and webhook["last_status"] is None
    assert "refused" in webhook["last_error"] and "10.0.0.7" in webhook["last_error"]
    assert all("private address" in attempt["error"] for attempt in webhook["attempt_log"])


async def test_rebinding_to_a_mix_of_public_and_internal_addresses_is_refused(
    sqlite_url: str, start_service: Any
) -> None:
    dns = FakeDns({"hooks.rebind.test": [PUBLIC]})
    service = await start_guarded(start_service, sqlite_url, dns, callback_allowed_hosts=[], webhook_max_attempts=1)
    dns.rebind("hooks.rebind.test", [PUBLIC, "169.254.169.254"])
    created = await service.submit({**pr_batch(2), "callback_url": "http://hooks.rebind.test/hook"})
    batch = await wait_for_webhook(service, created["id"], "failed")
    assert "metadata" in batch["webhook"]["last_error"]


async def test_delivery_connects_to_the_checked_address_and_keeps_the_host_name(
    sqlite_url: str, start_service: Any
) -> None:
    """The URL names a host; the connection goes to the address the guard vetted; the Host header is the name."""
    with Receiver() as receiver:
        dns = FakeDns({"hooks.internal.test": ["127.0.0.1"]})
        service = await start_guarded(start_service, sqlite_url, dns, callback_allowed_hosts=["hooks.internal.test"])
        url = receiver.url(host="hooks.internal.test")
        created = await service.submit({**pr_batch(2), "callback_url": url})
        await wait_for_webhook(service, created["id"], "delivered")
    assert receiver.received[0].headers["host"] == f"hooks.internal.test:{receiver.port}"
    assert dns.asked.count("hooks.internal.test") >= 2, "resolved at submit and again at delivery"


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        (PUBLIC, False),
        ("2606:4700:4700::1111", False),
        ("127.0.0.53", True),
        ("10.255.255.255", True),
        ("172.31.0.1", True),
        ("192.168.1.1", True),
        ("169.254.1.1", True),
        ("169.254.170.2", True),
        ("100.100.100.200", True),
        ("100.64.1.1", True),
        ("0.0.0.0", True),
        ("255.255.255.255", True),
        ("240.0.0.1", True),
        ("192.0.2.1", True),
        ("::", True),
        ("::1", True),
        ("fe80::1", True),
        ("fc00::1", True),
        ("fd00:ec2::254", True),
        ("ff02::1", True),
        ("::ffff:10.0.0.1", True),
        ("2002:a00:1::", True),  # 6to4 of 10.0.0.1
        ("64:ff9b::7f00:1", True),  # NAT64 of 127.0.0.1
    ],
)
def test_address_refusal(address: str, refused: bool) -> None:
    reason = address_refusal(ipaddress.ip_address(address))
    assert (reason is not None) == refused, reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://", "host"),
        ("https:///path", "host"),
        ("javascript:alert(1)", "http"),
        ("//example.com/hook", "http"),
        ("http://a:b@example.com/", "password"),
        ("http://user@example.com/", "user name"),
        ("http://example.com:0/", "port 0"),
        ("http://example.com/" + "a" * 3000, "longer than"),
    ],
)
def test_malformed_callback_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(CallbackRefused, match=reason):
        parse_callback_url(url)


async def test_guard_answers_the_addresses_it_checked() -> None:
    guard = CallbackGuard([], resolver=FakeDns({"hooks.public.test": [PUBLIC, "2606:4700:4700::1111"]}))
    target = await guard.vet("https://hooks.public.test:8443/x")
    assert (target.host, target.port, target.addresses) == (
        "hooks.public.test",
        8443,
        (PUBLIC, "2606:4700:4700::1111"),
    )
