"""Stable failure codes for items that did not succeed.

Codes reported by the provider itself (for example Groq's ``json_validate_failed``, OpenAI's ``model_not_found``
or Anthropic's ``invalid_request_error``) are passed through unchanged; the constants below are the ones this
service assigns, and the provider codes classification and routing look at.
"""

from __future__ import annotations

from typing import Final

MAX_TOKENS: Final = "max_tokens"
INVALID_JSON: Final = "invalid_json"
SCHEMA_MISMATCH: Final = "schema_mismatch"
BATCH_EXPIRED: Final = "batch_expired"
BATCH_FAILED: Final = "batch_failed"
CANCELLED: Final = "cancelled"
MISSING_RESULT: Final = "missing_result"
PROVIDER_ERROR: Final = "provider_error"
MALFORMED_RESULT: Final = "malformed_result"
PROVIDER_SERVER_ERROR: Final = "provider_server_error"
BUDGET_EXCEEDED: Final = "budget_exceeded"
REFUSED: Final = "refused"

# Provider codes that classification and routing look at.
JSON_VALIDATE_FAILED: Final = "json_validate_failed"
PROVIDER_BATCH_CANCELLED: Final = "batch_cancelled"
MODEL_DECOMMISSIONED: Final = "model_decommissioned"
MODEL_NOT_FOUND: Final = "model_not_found"
CONTEXT_LENGTH_EXCEEDED: Final = "context_length_exceeded"
INVALID_REQUEST_ERROR: Final = "invalid_request_error"  # Anthropic's error type for a request to fix

CODE_DESCRIPTIONS: Final[dict[str, str]] = {
    MAX_TOKENS: (
        "The model ran out of output tokens (finish_reason `length`, a response `incomplete` for "
        "`max_output_tokens`, Anthropic's `stop_reason: max_tokens`, or Groq's `json_validate_failed` "
        "with 'max completion tokens reached')."
    ),
    INVALID_JSON: "JSON was asked for, but the content is not valid JSON.",
    SCHEMA_MISMATCH: "The content is JSON but does not validate against the output schema.",
    BATCH_EXPIRED: "The provider batch expired before this request was processed.",
    BATCH_FAILED: "The provider batch failed as a whole (for example, its input file was rejected).",
    CANCELLED: "The batch was cancelled before this request was processed.",
    MISSING_RESULT: "The provider batch finished without an output or error line for this item.",
    PROVIDER_ERROR: "The provider returned an error without a code; the message has the details.",
    MALFORMED_RESULT: "The provider's result line could not be parsed or lacks the expected shape.",
    PROVIDER_SERVER_ERROR: (
        "The provider answered this request with a 5xx error, or with another error saying it did not run "
        "(Anthropic's api_error, overloaded_error, rate_limit_error, timeout_error); it is sent again."
    ),
    BUDGET_EXCEEDED: "Sending it would have let the batch's bill exceed its budget_usd.",
    REFUSED: (
        "The model refused to answer (OpenAI's `refusal` or `content_filter`, Anthropic's `stop_reason: refusal`); "
        "the cascade's next tier takes it."
    ),
    MODEL_DECOMMISSIONED: "Groq no longer serves the model (decommissioned); the cascade's next tier takes it.",
    MODEL_NOT_FOUND: (
        "The model does not exist or the account cannot use it (OpenAI's `model_not_found`, Anthropic's "
        "`not_found_error`); the cascade's next tier takes it."
    ),
    JSON_VALIDATE_FAILED: "Groq could not produce JSON (or JSON matching the schema) for this request.",
    CONTEXT_LENGTH_EXCEEDED: "The prompt is longer than the model's context window (or filled it while answering).",
    INVALID_REQUEST_ERROR: "Anthropic refused the request as invalid (HTTP 400); the message names the parameter.",
}
