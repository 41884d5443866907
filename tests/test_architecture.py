"""The import contracts of docs/architecture.md (pyproject.toml, [tool.importlinter]) hold, and they would catch
a module that breaks them."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_every_import_contract_is_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_a_query_outside_the_store_and_a_cycle_between_packages_are_caught(tmp_path: Path) -> None:
    """The same kinds of contract on a small tree that breaks them: the linter must say BROKEN for each."""
    package = tmp_path / "shop"
    for name, source in {
        "__init__.py": "",
        "store/__init__.py": "import sqlalchemy\n",
        "api/__init__.py": "from sqlalchemy import select\nimport shop.lifecycle\n",
        "lifecycle/__init__.py": "import shop.api\nimport shop.store\n",
    }.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    (tmp_path / ".importlinter").write_text(
        textwrap.dedent(
            """
            [importlinter]
            root_package = shop
            include_external_packages = True

            [importlinter:contract:sql]
            name = SQL lives in shop.store
            type = forbidden
            source_modules = shop.api
            forbidden_modules = sqlalchemy
            allow_indirect_imports = True

            [importlinter:contract:cycles]
            name = No cycles
            type = acyclic_siblings
            ancestors = shop
            """
        )
    )
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", ".importlinter"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": str(LINT_IMPORTS.parent)},
    )
    assert result.returncode != 0
    assert "SQL lives in shop.store BROKEN" in result.stdout, result.stdout
    assert "No cycles BROKEN" in result.stdout, result.stdout


def _import_cycles(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    """Pairs of modules that import each other, directly or through others (imports under TYPE_CHECKING
    included: a circle a reader must untangle is one whether or not it runs)."""
    found: set[tuple[str, str]] = set()
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                found.add((min(module, imported), max(module, imported)))
    return found


def test_no_module_of_the_service_imports_itself_back() -> None:
    assert _import_cycles(grimp.build_graph("service")) == set()


def test_no_module_of_the_client_imports_itself_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """llm_batch_client is its own distribution, under client/ (installed editable in .venv; put on sys.path
    here all the same, so that the graph is of this checkout's client whichever way it was installed)."""
    monkeypatch.syspath_prepend(str(ROOT / "client"))
    spec = importlib.util.find_spec("llm_batch_client")
    assert spec is not None and spec.origin is not None
    assert Path(spec.origin).is_relative_to(ROOT / "client"), spec.origin
    assert _import_cycles(grimp.build_graph("llm_batch_client")) == set()


def test_no_bench_script_imports_itself_back() -> None:
    """The bench scripts are modules of one directory importing each other by name: scanned from their source."""
    scripts = {path.stem: path for path in (ROOT / "bench").glob("*.py")}
    graph = grimp.ImportGraph()
    for name, path in scripts.items():
        graph.add_module(name)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for imported in names:
                if imported.split(".")[0] in scripts:
                    graph.add_import(importer=name, imported=imported.split(".")[0])
    assert _import_cycles(graph) == set()


def test_the_workers_only_claim_and_run_steps() -> None:
    """The lifecycle (service/batches/) owns every state change; the workers are a job runner, and small."""
    lines = sum(len(path.read_text().splitlines()) for path in (ROOT / "service" / "workers").glob("*.py"))
    assert lines <= 1000, f"service/workers/ holds {lines} lines"
