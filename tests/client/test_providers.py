"""Tiers named `provider:model` (`groq:openai/gpt-oss-20b`, `openai:gpt-5-mini`), and the `provider` the service
is about to put beside `model` on result rows, lineage steps, passes and tiers.

The service does not split those names yet: here it has them in its catalogue (MODEL_CATALOGUE) and the emulator
serves them, so a run shows the client, the CLI and their reports handing them on exactly as named. The
`provider` fields are read from the service's own answers with the field added where the service will add it."""

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
from tests.client.conftest import LARGE, PARAMS, SMALL, TOKEN, items, serving_provider_names, start_service

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
        assert [tier["model"] for tier in batch.cascade] == [SMALL, LARGE]
        assert {p.model for p in batch.passes} == {SMALL, LARGE}, "the cheap tier's failures moved on"
        assert [t.model for t in batch.tiers] == [SMALL, LARGE]
        rows = list(client.iter_results(batch.id, ndjson=True))
        assert {row.model for row in rows} <= {SMALL, LARGE}
        assert {step.model for row in rows for step in row.lineage} == {SMALL, LARGE}
        assert all(row.provider is None for row in rows), "the service says no provider yet: none is made up"
        assert re.search(rf"^1 +primary +0 +{re.escape(SMALL)} ", cost_report(batch), re.MULTILINE)

        said = Batch.from_json(with_provider(dict(batch.raw)))  # once the service says groq beside the name
        assert {p.provider for p in said.passes} == {"groq"}
        assert re.search(rf"^1 +primary +0 +{re.escape(SMALL)} ", cost_report(said), re.MULTILINE)
        assert "groq:groq:" not in cost_report(said), "a name that says its provider is shown as it is"


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
    assert code in (0, 1) and f"cascade {SMALL} -> {LARGE}." in out
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
            f"anthropic:claude-haiku-4-5,{SMALL}",
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "model 'anthropic:claude-haiku-4-5' is not in the catalogue" in err, err


def with_provider(document: Any, provider: str = "groq") -> Any:
    """The service's JSON with `provider` beside each `model` of passes, tiers, rows and lineage steps."""
    document = copy.deepcopy(document)

    def mark(node: Any) -> None:
        if isinstance(node, dict):
            if "model" in node and isinstance(node["model"], str) and "provider" not in node:
                node["provider"] = provider
            for value in node.values():
                mark(value)
        elif isinstance(node, list):
            for value in node:
                mark(value)

    mark(document)
    return document


def test_a_provider_is_read_where_the_service_gives_it_and_shown_beside_the_model(
    client: LlmBatchClient, service: LiveService
) -> None:
    batch = client.wait(client.submit(items(30), BatchOptions(params=PARAMS, strict=False), fallback=True).id, **FAST)
    row = next(iter(client.iter_results(batch.id, ndjson=True)))
    assert batch.passes[0].provider is None and batch.tiers[0].provider is None and row.provider is None
    assert row.lineage[0].provider is None, "absent: None, not a guess"

    marked = Batch.from_json(with_provider(dict(batch.raw)))
    assert {p.provider for p in marked.passes} == {"groq"} == {t.provider for t in marked.tiers}
    report = cost_report(marked)
    assert "groq:openai/gpt-oss-20b" in report and "groq:openai/gpt-oss-120b" in report
    assert " openai/gpt-oss-20b " not in report, "every model shown with its provider"
    assert "on groq:openai/gpt-oss-" in progress_line(marked)

    marked_row = ResultRow.from_json(with_provider(dict(row.raw)))
    assert marked_row.provider == "groq"
    assert [step.provider for step in marked_row.lineage] == ["groq"] * len(row.lineage)
    assert marked_row == dataclasses.replace(row, provider="groq", batch_id=None), "everything else as it was"

    written = io.StringIO()
    write_rows(written, [marked_row, row], "csv")
    records = list(csv.DictReader(io.StringIO(written.getvalue())))
    assert [record["provider"] for record in records] == ["groq", ""]
    assert [record["model"] for record in records] == [row.model, row.model], "the model as the service named it"
