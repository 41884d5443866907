"""The OpenAPI document, with every error response described as RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.api.errors import PROBLEM_BASE, PROBLEM_JSON
from service.api.request_bodies import BatchCreate, RetryRequest

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details. `type` is stable; `detail` says what is wrong.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": [PROBLEM_BASE + "invalid-request"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "The request field at fault, when there is one"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

ERROR_DESCRIPTIONS = {
    "400": "Bad request (for example a cursor this endpoint did not issue)",
    "408": "The request body stopped arriving",
    "415": "Unsupported media type",
    "503": "Busy: try again after Retry-After",
    "401": "Missing or wrong bearer token",
    "404": "No such batch or item",
    "409": "Conflicts with the batch's current state",
    "413": "Request too large",
    "422": "Invalid request: the detail names the field and the problem",
}


def _expected_errors(path: str, method: str) -> set[str]:
    statuses = {"422"}
    if "{batch_id}" in path:
        statuses.add("404")
    if method == "post" and (path.endswith("/retry") or path.endswith("/cancel")):
        statuses.add("409")
    if path.endswith("/results") or path == "/batches":
        statuses.add("400")
    if method == "get" and path.endswith("/results"):
        statuses.add("503")
    return statuses


def _problem_responses(document: dict[str, Any]) -> None:
    reference = {"$ref": "#/components/schemas/Problem"}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            has_input = bool(operation.get("parameters") or operation.get("requestBody"))
            wanted = _expected_errors(path, method) if has_input else set()
            wanted |= {status for status in responses if status.startswith(("4", "5"))}
            for status in sorted(wanted):
                description = responses.get(status, {}).get("description") or ERROR_DESCRIPTIONS.get(status, "Error")
                if status == "422" and description == "Validation Error":
                    description = ERROR_DESCRIPTIONS["422"]
                responses[status] = {"description": description, "content": {PROBLEM_JSON: {"schema": reference}}}
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA


def _request_schemas(document: dict[str, Any]) -> None:
    """Bodies a route reads itself (POST /batches streams its body; a retry's is read as strictly) are documented
    from their models."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (BatchCreate, RetryRequest):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            _request_schemas(document)
            _problem_responses(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
