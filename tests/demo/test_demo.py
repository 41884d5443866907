"""The demo's synthetic payload, and the arithmetic and layout of its report (no service needed)."""

from __future__ import annotations

import copy
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
from demo.run import (
    apply_env_defaults,
    format_table,
    pass_table,
    price,
    progress_lines,
    reasons_text,
    whatif_costs,
    whatif_lines,
)
from service.api.schemas import BatchCreate
from service.pipeline.validation import validate_items, validate_output_schema, validate_params

PRIMARY = "openai/gpt-oss-20b"
FALLBACK = "llama-3.3-70b-versatile"
PRICES = {PRIMARY: (0.0375, 0.15), FALLBACK: (0.30, 0.40)}

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


def test_params_ask_for_the_schema_without_strict_mode() -> None:
    payload = demo_payload(3)
    assert payload["metadata"] == {"source": "demo"}
    assert payload["params"]["temperature"] == 0
    response_format = payload["params"]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "pr_analysis"
    assert response_format["json_schema"]["strict"] is False
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


# -- what-if costs ----------------------------------------------------------------------------------


def _pass(number: int, model: str, items: int, ok: int, failed: int, tokens: tuple[int, int]) -> dict[str, Any]:
    price_in, price_out = PRICES[model]
    return {
        "number": number,
        "kind": "primary" if number == 1 else "fallback",
        "model": model,
        "status": "completed",
        "items": items,
        "succeeded": ok,
        "failed": failed,
        "pending": 0,
        "request_counts": {"total": items, "completed": items, "failed": 0},
        "failure_reasons": {"json_validate_failed": failed} if failed else {},
        "cost": {
            "usd": (tokens[0] * price_in + tokens[1] * price_out) / 1e6,
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
        },
        "provider_batches": [],
    }


def _row(custom_id: str, status: str, model: str, pass_: int, tokens: tuple[int, int]) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "status": status,
        "model": model,
        "pass": pass_,
        "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
    }


def _summary(passes: list[dict[str, Any]], counts: tuple[int, int, int]) -> dict[str, Any]:
    return {
        "id": "lb_test",
        "status": "completed",
        "model": PRIMARY,
        "fallback_model": FALLBACK,
        "counts": {"total": counts[0], "succeeded": counts[1], "failed": counts[2], "pending": 0},
        "cost": {
            "usd": sum(p["cost"]["usd"] for p in passes),
            "input_tokens": sum(p["cost"]["input_tokens"] for p in passes),
            "output_tokens": sum(p["cost"]["output_tokens"] for p in passes),
        },
        "failure_reasons": {"json_validate_failed": counts[2]} if counts[2] else {},
        "passes": passes,
    }


def _four_item_run() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    # Pass 1: a and b succeed (1000/300 and 3000/500 tokens); c and d fail with no usage.
    # Pass 2: c succeeds with 2000/100 tokens, d fails with 1000/0 (say, a 200 that was not JSON).
    passes = [
        _pass(1, PRIMARY, 4, 2, 2, (4000, 800)),
        _pass(2, FALLBACK, 2, 1, 1, (3000, 100)),
    ]
    rows = [
        _row("a", "succeeded", PRIMARY, 1, (1000, 300)),
        _row("b", "succeeded", PRIMARY, 1, (3000, 500)),
        _row("c", "succeeded", FALLBACK, 2, (2000, 100)),
        _row("d", "failed", FALLBACK, 2, (1000, 0)),
    ]
    return _summary(passes, (4, 3, 1)), rows


def test_primary_only_is_pass_one_with_its_failures_unrecovered() -> None:
    summary, rows = _four_item_run()
    whatif = whatif_costs(summary, rows, PRICES)
    assert whatif.primary_model == PRIMARY
    assert whatif.primary_only_usd == pytest.approx((4000 * 0.0375 + 800 * 0.15) / 1e6)
    assert whatif.primary_only_failed == 2


def test_fallback_only_uses_measured_tokens_and_estimates_the_rest() -> None:
    summary, rows = _four_item_run()
    whatif = whatif_costs(summary, rows, PRICES)
    # Measured on the fallback model: c (2000/100) and d (1000/0).
    # a and b: their own pass-1 input tokens, and the average fallback answer (100 tokens: d had none).
    input_tokens = 2000 + 1000 + 1000 + 3000
    output_tokens = 100 + 0 + 100 + 100
    assert whatif.fallback_only_usd == pytest.approx((input_tokens * 0.30 + output_tokens * 0.40) / 1e6)
    assert (whatif.fallback_measured_items, whatif.fallback_estimated_items) == (2, 2)
    assert whatif.fallback_avg_output_tokens == pytest.approx(100)
    assert whatif.primary_avg_input_tokens == pytest.approx(2000)
    assert whatif.fallback_avg_input_tokens == pytest.approx(1500)


def test_saving_is_measured_against_fallback_only() -> None:
    summary, rows = _four_item_run()
    whatif = whatif_costs(summary, rows, PRICES)
    actual = summary["cost"]["usd"]
    assert whatif.actual_usd == pytest.approx(actual)
    assert whatif.fallback_only_usd is not None
    expected = (whatif.fallback_only_usd - actual) / whatif.fallback_only_usd * 100
    assert whatif.saving_vs_fallback_pct == pytest.approx(expected)
    assert 0 < expected < 100


def test_item_without_pass_one_usage_gets_the_pass_one_average_input() -> None:
    summary, rows = _four_item_run()
    rows.append(_row("e", "failed", PRIMARY, 1, (0, 0)))  # say, a pass-1 failure never sent on
    whatif = whatif_costs(summary, rows, PRICES)
    base = whatif_costs(*_four_item_run(), PRICES)
    assert base.fallback_only_usd is not None and whatif.fallback_only_usd is not None
    extra = whatif.fallback_only_usd - base.fallback_only_usd
    assert extra == pytest.approx((2000 * 0.30 + 100 * 0.40) / 1e6)  # average pass-1 input, average answer


def test_no_fallback_pass_means_no_fallback_estimate() -> None:
    passes = [_pass(1, PRIMARY, 2, 2, 0, (2000, 400))]
    rows = [_row("a", "succeeded", PRIMARY, 1, (1000, 200)), _row("b", "succeeded", PRIMARY, 1, (1000, 200))]
    whatif = whatif_costs(_summary(passes, (2, 2, 0)), rows, PRICES)
    assert whatif.fallback_only_usd is None
    assert whatif.saving_vs_fallback_pct is None
    assert whatif.primary_only_failed == 0


def test_whatif_costs_uses_the_prices_it_is_given() -> None:
    summary, rows = _four_item_run()
    doubled = {model: (pin * 2, pout * 2) for model, (pin, pout) in PRICES.items()}
    base, scaled = whatif_costs(summary, rows, PRICES), whatif_costs(summary, rows, doubled)
    assert scaled.primary_only_usd == pytest.approx(2 * base.primary_only_usd)
    assert base.fallback_only_usd is not None
    assert scaled.fallback_only_usd == pytest.approx(2 * base.fallback_only_usd)


# -- report layout ----------------------------------------------------------------------------------


def test_table_columns_line_up() -> None:
    lines = format_table(["name", "n"], [["a", "1"], ["longer", "100"], ["total", "101"]], [False, True])
    assert lines[0] == "name      n"
    assert lines[2] == "a         1"
    assert lines[-1] == "total   101"
    assert len({len(line) for line in lines}) == 1


def test_pass_table_has_a_row_per_pass_and_a_total() -> None:
    summary, _ = _four_item_run()
    lines = pass_table(summary)
    assert len(lines) == 2 + 2 + 2  # header + rule, two passes, rule + total
    assert lines[2].startswith("1 ") and PRIMARY in lines[2] and "json_validate_failed 2" in lines[2]
    assert lines[-1].startswith("total") and "4,000" not in lines[-1] and "7,000" in lines[-1]


def test_whatif_lines_say_what_is_estimated() -> None:
    summary, rows = _four_item_run()
    text = "\n".join(whatif_lines(summary, whatif_costs(summary, rows, PRICES), PRICES))
    assert "2 items would have failed (50.0%)" in text
    assert f"{FALLBACK} only (estimate)" in text
    assert "estimate" in text and "saves" in text
    assert "$0.0375 in / $0.15 out" in text and "$0.30 in / $0.40 out" in text


def test_progress_lines_keep_their_width_when_the_fallback_pass_appears() -> None:
    summary, _ = _four_item_run()
    first_only = copy.deepcopy(summary)
    first_only["passes"] = first_only["passes"][:1]
    assert progress_lines(first_only)[1] == progress_lines(summary)[1]


def test_reasons_and_prices_read_well() -> None:
    assert reasons_text({"max_tokens": 3, "json_validate_failed": 31}) == "json_validate_failed 31, max_tokens 3"
    assert reasons_text({}) == "-"
    assert (price(0.3), price(0.0375), price(2.0)) == ("$0.30", "$0.0375", "$2.00")


def test_env_defaults_never_override_the_user() -> None:
    env = {"POLL_INTERVAL_SECONDS": "7"}
    applied = apply_env_defaults(env)
    assert env["POLL_INTERVAL_SECONDS"] == "7"
    assert env["EMULATOR_TIME_SCALE"] == "0.05"
    assert applied == {"EMULATOR_TIME_SCALE": "0.05"}
