"""The cost report of a real batch: every table in it adds up to the batch's total, a retry on a model outside
the cascade included."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from llm_batch_client import BatchOptions, LlmBatchClient, cost_report

from tests.client.conftest import PARAMS, items

FAST: dict[str, Any] = {"timeout": 60, "poll_interval": 0.05, "max_poll_interval": 0.2}


def tables(report: str) -> list[list[list[str]]]:
    """Each table of the report (a header, a rule of dashes, rows, a rule, the total) as its rows of cells, the
    total last; the cells split on runs of two spaces or more."""
    lines = report.splitlines()
    found = []
    for number in range(len(lines) - 1):
        starts = number == 0 or not lines[number - 1].strip()  # a table follows a blank line
        if starts and lines[number + 1].startswith("-----"):
            body = []
            for row in lines[number + 2 :]:
                if not row.strip():
                    break
                if not row.startswith("-----"):
                    body.append([cell.strip() for cell in row.split("  ") if cell.strip()])
            found.append(body)
    return found


def money(cell: str) -> Decimal:
    return Decimal(cell.lstrip("$").replace(",", ""))


def count(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_each_table_sums_to_the_total_with_a_retry_outside_the_cascade(client: LlmBatchClient) -> None:
    options = BatchOptions(model="openai/gpt-oss-20b", params=PARAMS, strict=False)  # one tier
    done = client.wait(client.submit(items(60), options).id, **FAST)
    assert done.counts.failed > 0 and len(done.tiers) == 1
    client.retry(done.id, model="openai/gpt-oss-120b")  # not a tier of this batch's cascade
    batch = client.wait(done.id, **FAST)
    outside = [p for p in batch.passes if p.tier is None]
    assert outside and outside[0].cost.usd > 0, "the retry ran outside the cascade, and cost something"

    report = cost_report(batch)
    passes, tiers, providers = tables(report)
    assert f"Total: ${batch.cost.usd}" in report
    for table in (passes, tiers, providers):
        *rows, total = table
        assert total[0] == "total" and money(total[-1]) == batch.cost.usd
        assert sum(money(row[-1]) for row in rows) == batch.cost.usd, table
        assert sum(count(row[-3]) for row in rows) == count(total[-3]) == batch.cost.input_tokens
        assert sum(count(row[-2]) for row in rows) == count(total[-2]) == batch.cost.output_tokens
    assert ["- (retry)", "groq:openai/gpt-oss-120b", "1", str(outside[0].items)] == tiers[-2][:4]
    assert [row[0] for row in providers] == ["groq", "total"]
