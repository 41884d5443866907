"""What a provider bills as prompt tokens is held by a budget: tool definitions and tool calls are counted
(a large tool description no longer slips under the budget), and a part that cannot be counted offline (an
image, audio) is refused at submit when the batch has a budget."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_bad_input import assert_nothing_stored, assert_problem
from tests.conftest import Service
from tests.payloads import pr_batch

WORDS = "the reviewer reads each changed function and writes down what it does and why "
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/diagram.png"}}


def with_tool(payload: dict[str, Any], kilobytes: int) -> dict[str, Any]:
    text = (WORDS * (kilobytes * 1024 // len(WORDS) + 1))[: kilobytes * 1024]
    tool = {"type": "function", "function": {"name": "review", "description": text, "parameters": {}}}
    for item in payload["items"]:
        item["body"]["tools"] = [tool]
    return payload


async def test_a_large_tool_description_counts_against_the_budget(sqlite_url: str, start_service: Any) -> None:
    """~19,000 tokens of tool description: $0.0007 of input at the first tier's price, over a $0.0005 budget
    (the line's messages and its output reserved come to $0.0002). It was counted as nothing, so the line was
    sent; now it is not."""
    service: Service = await start_service(sqlite_url)
    payload = with_tool(pr_batch(1, strict=False, max_tokens=1024, budget_usd="0.0005"), 100)
    created = await service.submit(payload)
    finished = await service.wait(created["id"])
    rows = await service.results(created["id"])
    assert [row["error"]["code"] for row in rows] == ["budget_exceeded"], rows
    assert finished["budget"]["spent_usd"] == "0"
    sent = [
        record for record in service.emulator.request_log if record.method == "POST" and record.path.endswith("/files")
    ]
    assert sent == [], "no input file may be uploaded for a line over the budget"


async def test_the_estimate_counts_tool_definitions(sqlite_url: str, start_service: Any) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    plain = await service.client.post("/batches/estimate", json=pr_batch(1))
    tooled = await service.client.post("/batches/estimate", json=with_tool(pr_batch(1), 100))
    assert plain.status_code == tooled.status_code == 200, tooled.text
    ratio = float(tooled.json()["floor"]["usd_exact"]) / float(plain.json()["floor"]["usd_exact"])
    assert ratio > 1.5, ratio


@pytest.mark.parametrize(
    "part",
    [IMAGE, {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}],
    ids=["image", "audio"],
)
async def test_a_part_that_cannot_be_counted_is_refused_when_a_budget_is_set(
    sqlite_url: str, start_service: Any, part: dict[str, Any]
) -> None:
    service: Service = await start_service(sqlite_url, workers_enabled=False)
    payload = pr_batch(3, budget_usd="5")
    payload["items"][2]["body"]["messages"][1]["content"] = [{"type": "text", "text": "see the diagram"}, part]
    response = await service.client.post("/batches", json=payload)
    problem = assert_problem(response, 422, "budget_usd", "not text")
    assert problem["field"] == "items[2].body.messages[1].content[1]"
    await assert_nothing_stored(service)
    del payload["budget_usd"]
    accepted = await service.client.post("/batches", json=payload)
    assert accepted.status_code == 202, "without a budget nothing needs counting: the provider bills it"
