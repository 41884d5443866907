"""The client's wheel, installed into a clean venv on each Python the client supports (client_venv), pulls in none
of the server's dependencies, and its Django app loads on the Django of that Python."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

from tests.client.clean_venv import REPO, CleanVenv

# The distributions only the server needs: its own pins, less what the client needs too, and what they pull in.
CLIENT_NEEDS = {"httpx", "standardwebhooks"}
PULLED_IN_BY_THE_SERVER = {"starlette", "pydantic", "pydantic-core", "greenlet", "mako", "markupsafe", "llm-batch"}

DISTRIBUTIONS = """
import importlib.metadata as metadata, json, sys
print(json.dumps({
    "python": list(sys.version_info[:2]),
    "installed": sorted(d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions()),
    "requires": metadata.requires("llm-batch-client"),
    "requires_python": metadata.metadata("llm-batch-client")["Requires-Python"],
    "django": metadata.version("django"),
    "scripts": sorted(
        e.name for e in metadata.entry_points(group="console_scripts") if e.dist.name == "llm-batch-client"
    ),
}))
"""


def server_dependencies() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]}
    return (names - CLIENT_NEEDS) | PULLED_IN_BY_THE_SERVER


def test_the_client_wheel_installs_without_any_server_dependency(client_venv: CleanVenv, tmp_path: Path) -> None:
    """Run outside the repository: from its root, `import service` and its egg-info would be found."""
    assert re.fullmatch(r"llm_batch_client-\d+\.\d+\.\d+-py3-none-any\.whl", client_venv.wheel.name)
    done = subprocess.run(
        [str(client_venv.python), "-c", DISTRIBUTIONS], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    installed = set(found["installed"])

    server_only = server_dependencies()
    assert {"fastapi", "uvicorn", "sqlalchemy", "sqlmodel", "alembic", "asyncpg", "groq", "jinja2"} <= server_only
    assert installed & server_only == set(), f"the client pulled in server dependencies: {installed & server_only}"
    assert {"llm-batch-client", "httpx", "standardwebhooks", "django"} <= installed
    assert found["requires_python"] == ">=3.10"
    assert found["python"] == [int(part) for part in client_venv.target.python.split(".")], "the Python asked for"
    wanted = client_venv.target.django.split("~=")[1].rsplit(".", 1)[0]
    assert found["django"].startswith(wanted + "."), f"Django {found['django']}, not {wanted}"
    versions = [requirement.split(";")[0] for requirement in found["requires"]]  # not the markers' `extra == ...`
    assert versions and all("<" in version and ">=" in version and "==" not in version for version in versions)
    assert found["scripts"] == ["llm-batch"]
    for server_script in ("uvicorn", "fastapi", "alembic"):
        assert not client_venv.script(server_script).exists()

    listed = client_venv.pip("list", "--format=json")
    assert {entry["name"].lower().replace("_", "-") for entry in json.loads(listed.stdout)} == installed

    helped = subprocess.run(
        [str(client_venv.script("llm-batch")), "--help"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0 and "submit" in helped.stdout and "estimate" in helped.stdout
    imported = subprocess.run(
        [str(client_venv.python), "-c", "import llm_batch_client.async_client, llm_batch_client.cli; import service"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "No module named 'service'" in imported.stderr, "the client imports alone; the server is not there"


APP_LOADS = """
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["llm_batch_client.django"], LLM_BATCH_URL="http://127.0.0.1:1",
                   DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
                   USE_TZ=True)
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("makemigrations", "llm_batch", check=True, dry_run=True, verbosity=0)
from llm_batch_client.django import command, owners, views, running
print("ok", django.get_version())
"""


def test_the_django_app_migrates_and_has_no_missing_migration(client_venv: CleanVenv, tmp_path: Path) -> None:
    """On this Python's Django: the app's migrations apply, and its models need none that is not shipped."""
    done = subprocess.run(
        [str(client_venv.python), "-c", APP_LOADS], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
