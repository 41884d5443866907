import pytest

from service.pipeline import failure_codes

SERVICE_CODES = {
    "MAX_TOKENS": "max_tokens",
    "INVALID_JSON": "invalid_json",
    "SCHEMA_MISMATCH": "schema_mismatch",
    "BATCH_EXPIRED": "batch_expired",
    "BATCH_FAILED": "batch_failed",
    "CANCELLED": "cancelled",
    "MISSING_RESULT": "missing_result",
    "PROVIDER_ERROR": "provider_error",
    "MALFORMED_RESULT": "malformed_result",
}


@pytest.mark.parametrize(("name", "value"), SERVICE_CODES.items())
def test_codes_keep_their_stable_values(name: str, value: str) -> None:
    assert getattr(failure_codes, name) == value


@pytest.mark.parametrize("code", SERVICE_CODES.values())
def test_every_service_code_is_described(code: str) -> None:
    assert failure_codes.CODE_DESCRIPTIONS[code].strip()


def test_codes_are_distinct() -> None:
    assert len(set(SERVICE_CODES.values())) == len(SERVICE_CODES)
