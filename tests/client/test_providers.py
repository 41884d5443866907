"""Tiers named `provider:model` (`groq:openai/gpt-oss-20b`, `openai:gpt-5-mini`), and the `provider` the service
puts beside `model` on result rows, lineage steps, passes and tiers: the client, the CLI and their reports hand the
names on as they are and show the provider where they show the model; an answer without `provider` reads None."""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_batch_client import Batch, BatchOptions, LlmBatchClient, ResultRow, TierSpec, cost_report, progress_line
from llm_batch_client.cli import EXIT_USAGE, main
from llm_batch_client.cli.output import write_rows

from tests.cli.conftest import write_items, write_params
from tests.cli.live_server import LiveService
from tests.client.conftest import (
    LARGE,
    LARGE_BARE,
    PARAMS,
    SMALL,
    SMALL_BARE,
    TOKEN,
    items,
    serving_provider_names,
    start_service,
)

FAST: dict[str, Any] = {"timeout": 60, "poll_interval": 0.05, "max_poll_interval": 0.2}


@pytest.fixture
def named_service(tmp_path: Path) -> Iterator[LiveService]:
    live = start_service(tmp_path, **serving_provider_names())
    yield live
    live.server.stop()


def test_provider_model_tiers_reach_the_service_as_they_are_named(named_service: LiveService) -> None:
    with LlmBatchClient(named_service.url, token=TOKEN) as client:
        options = BatchOptions(cascade=[SMALL, TierSpec(LARGE, {"max_completion_tokens": 4096})], params=PARAMS)
        batch = client.wait(client.submit(items(40), dataclasses.replace(options, strict=False)).id, **FAST)
        assert [tier["model"] for tier in batch.cascade] == [SMALL_BARE, LARGE_BARE], "Groq's named bare"
        assert {(p.provider, p.model) for p in batch.passes} == {("groq", SMALL_BARE), ("groq", LARGE_BARE)}
        assert [(t.provider, t.model) for t in batch.tiers] == [("groq", SMALL_BARE), ("groq", LARGE_BARE)]
        rows = list(client.iter_results(batch.id, ndjson=True))
        assert {row.provider for row in rows} == {"groq"} and {row.model for row in rows} <= {SMALL_BARE, LARGE_BARE}
        assert {step.provider for row in rows for step in row.lineage} == {"groq"}
        report = cost_report(batch)
        assert re.search(rf"^1 +primary +0 +{re.escape(SMALL)} ", report, re.MULTILINE), report
        assert "groq:groq:" not in report, "a name that says its provider is shown as it is"
        assert re.search(r"^groq +\d", report, re.MULTILINE), "a row per provider"

        elsewhere = client.wait(
            client.submit(items(5), BatchOptions(cascade=["openai:gpt-5-mini"], params=PARAMS)).id, **FAST
        )
        assert elsewhere.cascade[0]["model"] == "openai:gpt-5-mini"
        assert {(p.provider, p.model) for p in elsewhere.passes} == {("openai", "gpt-5-mini")}
        assert "openai:gpt-5-mini" in cost_report(elsewhere) and "on openai:gpt-5-mini" in progress_line(elsewhere)


def test_the_cli_hands_provider_model_tiers_on(
    named_service: LiveService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_items(tmp_path / "items.jsonl", 5)
    params = write_params(tmp_path / "params.json")
    code = main(
        ["--url", named_service.url, "--token", TOKEN, "submit", str(path), "--params", f"@{params}",
         "--cascade", f"{SMALL},{LARGE}", "--with-fallback", "--wait", "--poll-interval", "0.05"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code in (0, 1) and f"cascade {SMALL_BARE} -> {LARGE_BARE}." in out
    assert re.search(rf"^1 +primary +0 +{re.escape(SMALL)} ", out, re.MULTILINE), out
    code = main(
        [
            "--url",
            named_service.url,
            "--token",
            TOKEN,
            "estimate",
            str(path),
            "--cascade",
            f"anthropic:claude-opus-9,{SMALL}",
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "model 'anthropic:claude-opus-9' is not in the catalogue" in err, err


def without_provider(document: Any) -> Any:
    """The service's JSON without `provider` anywhere (an older service's answer)."""
    document = copy.deepcopy(document)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("provider", None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(document)
    return document


def test_a_provider_is_read_where_the_service_gives_it_and_shown_beside_the_model(
    client: LlmBatchClient, service: LiveService
) -> None:
    batch = client.wait(client.submit(items(30), BatchOptions(params=PARAMS, strict=False), fallback=True).id, **FAST)
    row = next(iter(client.iter_results(batch.id, ndjson=True)))
    assert {p.provider for p in batch.passes} == {"groq"} == {t.provider for t in batch.tiers}
    report = cost_report(batch)
    assert "groq:openai/gpt-oss-20b" in report and "groq:openai/gpt-oss-120b" in report
    assert " openai/gpt-oss-20b " not in report, "every model shown with its provider"
    assert "on groq:openai/gpt-oss-" in progress_line(batch)
    assert row.provider == "groq" and [step.provider for step in row.lineage] == ["groq"] * len(row.lineage)

    older = Batch.from_json(without_provider(dict(batch.raw)))
    old_row = ResultRow.from_json(without_provider(dict(row.raw)))
    assert older.passes[0].provider is None and older.tiers[0].provider is None and old_row.provider is None
    assert old_row.lineage[0].provider is None, "absent: None, not a guess"
    same = ("custom_id", "status", "model", "output", "cost_usd", "attempts")
    assert [getattr(old_row, name) for name in same] == [getattr(row, name) for name in same], "the rest as it was"

    written = io.StringIO()
    write_rows(written, [row, old_row], "csv")
    records = list(csv.DictReader(io.StringIO(written.getvalue())))
    assert [record["provider"] for record in records] == ["groq", ""]
    assert [record["model"] for record in records] == [row.model, row.model], "the model as the service named it"
