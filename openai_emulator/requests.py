"""Checks of a batch create request's fields (before the input file is read)."""

from __future__ import annotations

from typing import Any

from openai_emulator.config import ENDPOINTS
from openai_emulator.errors import ApiError, invalid_value, missing
from openai_emulator.files import bounded_seconds

MAX_METADATA_PAIRS = 16
MAX_KEY = 64
MAX_VALUE = 512
WINDOWS = ("24h",)


def _too_long(param: str, limit: int, length: int) -> ApiError:
    message = (
        f"Invalid '{param}': string too long. Expected a string with maximum length {limit}, "
        f"but got a string with length {length} instead."
    )
    return ApiError(400, message, param=param, code="string_above_max_length")


def check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ApiError(400, "Invalid type for 'metadata': expected an object.", param="metadata", code="invalid_type")
    if len(metadata) > MAX_METADATA_PAIRS:
        message = (
            f"Invalid 'metadata': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
            f"properties, but got an object with {len(metadata)} properties instead."
        )
        raise ApiError(400, message, param="metadata", code="object_above_max_properties")
    for key, value in metadata.items():
        if len(key) > MAX_KEY:
            raise _too_long("metadata", MAX_KEY, len(key))
        if not isinstance(value, str):
            message = f"Invalid type for 'metadata.{key}': expected a string, but got {type(value).__name__} instead."
            raise ApiError(400, message, param=f"metadata.{key}", code="invalid_type")
        if len(value) > MAX_VALUE:
            raise _too_long(f"metadata.{key}", MAX_VALUE, len(value))
    return dict(metadata)


def check_output_expiry(value: Any, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, dict):
        raise ApiError(
            400, "Invalid type for 'output_expires_after': expected an object.", param="output_expires_after"
        )
    if value.get("anchor") != "created_at":
        raise invalid_value("output_expires_after.anchor", value.get("anchor"), ("created_at",))
    return bounded_seconds(value.get("seconds"), "output_expires_after.seconds")


def check_create(payload: Any, default_expiry: int) -> tuple[str, str, dict[str, str] | None, int]:
    """``(input_file_id, endpoint, metadata, output expiry seconds)`` of a valid create body; ApiError otherwise."""
    if not isinstance(payload, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    file_id = payload.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise missing("input_file_id")
    endpoint = payload.get("endpoint")
    if endpoint is None:
        raise missing("endpoint")
    if endpoint not in ENDPOINTS:
        raise invalid_value("endpoint", endpoint, ENDPOINTS)
    window = payload.get("completion_window")
    if window is None:
        raise missing("completion_window")
    if window not in WINDOWS:
        raise invalid_value("completion_window", window, WINDOWS)
    metadata = check_metadata(payload.get("metadata"))
    expiry = check_output_expiry(payload.get("output_expires_after"), default_expiry)
    return file_id, endpoint, metadata, expiry
