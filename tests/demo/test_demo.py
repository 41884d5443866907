"""The demo's synthetic payload, and the arithmetic and layout of its report (no service needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from demo.data import (
    CATEGORIES,
    MAX_COMPLETION_TOKENS,
    demo_items,
    demo_payload,
    pr_analysis_schema,
)
from demo.run import apply_env_defaults, main
from service.api.request_bodies import BatchCreate
from service.pipeline.validation import validate_items, validate_output_schema, validate_params

VALID_ANALYSIS: dict[str, Any] = {
    "summary": "Takes a row lock before retrying a charge, so a retry can no longer double-charge.",
    "risk_level": "medium",
    "categories": ["bugfix", "security"],
    "breaking_change": False,
    "files_of_concern": [{"path": "payments/tasks.py", "reason": "new locking around the charge"}],
    "test_coverage": "partial",
    "score": 7,
}


# -- the payload --------------------------------------------------------------------------------------


def test_payload_has_about_200_items_with_unique_pr_ids() -> None:
    items = demo_payload()["items"]
    assert len(items) == 200
    ids = [item["custom_id"] for item in items]
    assert len(set(ids)) == len(ids)
    assert all(custom_id.startswith("pr-") and custom_id[3:].isdigit() for custom_id in ids)


def test_every_body_is_a_chat_request_without_model() -> None:
    for item in demo_items(50):
        body = item["body"]
        assert "model" not in body
        assert body["max_completion_tokens"] == MAX_COMPLETION_TOKENS
        system, user = body["messages"]
        assert system["role"] == "system" and "JSON" in system["content"]
        assert user["role"] == "user"
        assert user["content"].startswith(f"PR #{item['custom_id'][3:]}: ")
        assert "diff --git a/" in user["content"] and "\n+" in user["content"]


def test_payload_is_accepted_by_the_service_validation() -> None:
    payload = demo_payload()
    BatchCreate.model_validate(payload)
    validate_items(payload["items"])
    validate_params(payload["params"], "params")
    validate_output_schema(payload["params"]["response_format"]["json_schema"]["schema"])


def test_params_ask_for_the_schema_and_leave_strict_mode_to_the_batch() -> None:
    payload = demo_payload(3)
    assert payload["metadata"] == {"source": "demo"}
    assert payload["params"]["temperature"] == 0
    response_format = payload["params"]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "pr_analysis"
    assert "strict" not in response_format["json_schema"]
    assert response_format["json_schema"]["schema"] == pr_analysis_schema()


def test_same_seed_same_payload_other_seed_other_payload() -> None:
    assert demo_payload(200) == demo_payload(200)
    assert demo_items(20, seed=1) == demo_items(20, seed=1)
    assert demo_items(20, seed=1) != demo_items(20, seed=2)


def test_prs_vary_in_size() -> None:
    sizes = sorted(len(item["body"]["messages"][1]["content"]) for item in demo_items())
    assert sizes[-1] > 3 * sizes[0]
    files = {item["body"]["messages"][1]["content"].count("diff --git") for item in demo_items()}
    assert min(files) == 1 and max(files) >= 4


# -- the schema -------------------------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_closed() -> None:
    schema = pr_analysis_schema()
    jsonschema_rs.meta.validate(schema)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])
    concern = schema["properties"]["files_of_concern"]
    assert concern["maxItems"] == 5
    assert concern["items"]["additionalProperties"] is False
    assert set(concern["items"]["required"]) == {"path", "reason"}
    assert schema["properties"]["categories"]["items"]["enum"] == CATEGORIES


def test_schema_accepts_a_realistic_analysis() -> None:
    jsonschema_rs.Draft202012Validator(pr_analysis_schema()).validate(VALID_ANALYSIS)


@pytest.mark.parametrize(
    "change",
    [
        {"score": 11},
        {"score": 6.5},
        {"risk_level": "critical"},
        {"categories": []},
        {"categories": ["bugfix", "tests", "docs", "chore"]},
        {"categories": ["bugfix", "bugfix"]},
        {"categories": ["style"]},
        {"breaking_change": "no"},
        {"test_coverage": "full"},
        {"files_of_concern": [{"path": f"a{n}.py", "reason": "x"} for n in range(6)]},
        {"files_of_concern": [{"path": "a.py"}]},
        {"files_of_concern": [{"path": "a.py", "reason": "x", "line": 3}]},
        {"extra": 1},
    ],
)
def test_schema_rejects_what_the_monolith_cannot_store(change: dict[str, Any]) -> None:
    assert not jsonschema_rs.Draft202012Validator(pr_analysis_schema()).is_valid({**VALID_ANALYSIS, **change})


def test_schema_rejects_a_missing_field() -> None:
    for field in VALID_ANALYSIS:
        incomplete = {k: v for k, v in VALID_ANALYSIS.items() if k != field}
        assert not jsonschema_rs.Draft202012Validator(pr_analysis_schema()).is_valid(incomplete), field


# -- the run --------------------------------------------------------------------------------------------


def test_env_defaults_never_override_the_user() -> None:
    env = {"POLL_INTERVAL_SECONDS": "7"}
    applied = apply_env_defaults(env)
    assert env["POLL_INTERVAL_SECONDS"] == "7"
    assert env["EMULATOR_TIME_SCALE"] == "0.05"
    assert applied == {"EMULATOR_TIME_SCALE": "0.05"}


def test_the_demo_estimates_runs_compares_and_reuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo` end to end on a few items: the real service, the emulator, the client."""
    for name in ("GROQ_API_KEY", "API_TOKENS", "ADMIN_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/demo.db")
    monkeypatch.setenv("SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("EMULATOR_TIME_SCALE", "0.02")
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "0.2")
    assert main(["--count", "40", "--timeout", "120"]) == 0
    out = capsys.readouterr().out
    assert "1. What it will cost, before anything is sent" in out and "Expected: $" in out
    assert "Batch lb_" in out and "40 of 40 items succeeded" in out
    comparison = re.search(r"The cascade costs ([0-9.]+)x the floor and ([0-9.]+)% less than", out)
    assert comparison, out
    assert float(comparison.group(1)) <= 1.10 and float(comparison.group(2)) > 30
    assert re.search(r"Estimated before sending: \$[0-9.]+; billed \$[0-9.]+ \([+-][0-9.]+%\)", out)
    assert "40 of 40 answered by reuse; billed $0.000000" in out and "provider batches created: 0" in out
