"""The import contracts of docs/architecture.md (pyproject.toml, [tool.importlinter]) hold, and they would catch
a module that breaks them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

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
