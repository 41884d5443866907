"""openapi.yaml at the repository root is generated from the app (`make openapi`) and must not drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.operator_cli import openapi_yaml

OPENAPI_FILE = Path(__file__).resolve().parent.parent / "openapi.yaml"
DOCUMENTED_OPERATIONS = [
    ("post", "/batches"),
    ("get", "/batches"),
    ("get", "/batches/{batch_id}"),
    ("get", "/batches/{batch_id}/results"),
    ("post", "/batches/{batch_id}/retry"),
    ("post", "/batches/{batch_id}/cancel"),
    ("get", "/batches/{batch_id}/items/{custom_id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
]


@pytest.fixture(scope="module")
def generated() -> str:
    return openapi_yaml()


@pytest.fixture(scope="module")
def document(generated: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(generated)
    return loaded


def test_openapi_yaml_matches_the_app(generated: str) -> None:
    assert OPENAPI_FILE.exists(), "openapi.yaml is missing: run `make openapi` and commit it"
    committed = OPENAPI_FILE.read_text(encoding="utf-8")
    assert committed == generated, "openapi.yaml is out of date with the app: run `make openapi` and commit the result"


@pytest.mark.parametrize(("method", "path"), DOCUMENTED_OPERATIONS)
def test_documented_operation_is_in_the_schema(document: dict[str, Any], method: str, path: str) -> None:
    assert method in document["paths"].get(path, {}), f"{method.upper()} {path} is missing from the OpenAPI"


def test_submit_documents_its_query_and_answer(document: dict[str, Any]) -> None:
    submit = document["paths"]["/batches"]["post"]
    assert "202" in submit["responses"]
    assert "fallback" in {parameter["name"] for parameter in submit["parameters"]}
    results = document["paths"]["/batches/{batch_id}/results"]["get"]
    assert {"limit", "after", "status"} <= {parameter["name"] for parameter in results["parameters"]}
    assert "application/x-ndjson" in results["responses"]["200"]["content"]


def test_openapi_yaml_is_what_the_command_line_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "service", "openapi"],
        cwd=OPENAPI_FILE.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == openapi_yaml(), "`python -m service openapi` must print only the document"


def test_error_responses_are_documented_as_problem_json(document: dict[str, Any]) -> None:
    """Clients generated from openapi.yaml must expect the problem+json bodies the API really sends."""
    wrong = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if status.startswith("4") and "application/problem+json" not in response.get("content", {}):
                    wrong.append(f"{method.upper()} {path} {status}: {sorted(response.get('content', {}))}")
    assert not wrong, "4xx responses not documented as application/problem+json:\n" + "\n".join(wrong)
