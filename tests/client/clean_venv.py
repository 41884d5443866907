"""Virtual environments with nothing but the client's wheel (with its `django` extra) and what that pulls in:
what a monolith gets from `pip install "llm-batch-client[django]"`, on each Python the client supports (3.10 to
3.13) with the Django it would run there (5.2 LTS up to Python 3.11, 6.x from 3.12, which Django 6 needs).

A Python this machine does not have is reported as such (the tests that need it skip, saying where it was
looked for); CLIENT_VENV_PYTHON_3_10=/path/to/python (and so on) chooses one by hand.

Each is kept under .venv-examples/<target>/<key>, the key a hash of client/, the interpreter and the Django
requirement, so a run with an unchanged client reuses it; CI's fresh clone builds each once (about 15 s)."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "client"
CACHE = REPO / ".venv-examples"
STEP_SECONDS = 300


@dataclass(frozen=True)
class Target:
    python: str  # "3.10"
    django: str  # the requirement installed with it
    extras: tuple[str, ...] = ()  # what a monolith adds (a database driver)

    @property
    def name(self) -> str:
        """py3.10-django5.2, py3.13-django6.1-psycopg"""
        extras = "".join(f"-{extra.split('[')[0]}" for extra in self.extras)
        return f"py{self.python}-django{self.django.split('~=')[1].rsplit('.', 1)[0]}{extras}"


TARGETS = (
    Target("3.10", "Django~=5.2.0"),  # the oldest Python the client supports, with the LTS
    Target("3.11", "Django~=5.2.0"),
    Target("3.12", "Django~=6.0.0"),
    Target("3.13", "Django~=6.1.0"),
)
# examples/django on PostgreSQL, as most monoliths run: the newest Python and Django, with psycopg.
POSTGRES_TARGET = Target("3.13", "Django~=6.1.0", ("psycopg[binary]~=3.2",))


@dataclass(frozen=True)
class CleanVenv:
    root: Path
    wheel: Path
    target: Target

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def script(self, name: str) -> Path:
        return self.root / "bin" / name

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pip", "--python", str(self.python), "--disable-pip-version-check", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=STEP_SECONDS, check=True)


class PythonMissing(Exception):
    """This machine has no interpreter of the version asked for."""


def _reports(python: str, version: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == version


def find_python(version: str) -> str:
    """An interpreter of `version` that runs (a pyenv shim may exist and refuse): CLIENT_VENV_PYTHON_3_10 and
    so on, python3.10 on the PATH, or one of pyenv's versions. PythonMissing says where it looked."""
    chosen = os.environ.get(f"CLIENT_VENV_PYTHON_{version.replace('.', '_')}")
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [chosen] if chosen else []
    candidates += [shutil.which(f"python{version}"), *sorted(glob.glob(f"{pyenv_root}/versions/{version}*/bin/python"))]
    found = next((python for python in candidates if python and _reports(python, version)), None)
    if found is None:
        raise PythonMissing(
            f"no Python {version} on this machine (looked for python{version} on the PATH and in"
            f" {pyenv_root}/versions; CLIENT_VENV_PYTHON_{version.replace('.', '_')}=/path chooses one)"
        )
    return found


def _sources() -> list[Path]:
    """What the distribution is built from (not the build/ and egg-info/ an in-tree build leaves)."""
    package = [p for p in (CLIENT / "llm_batch_client").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted([CLIENT / "pyproject.toml", CLIENT / "README.md", *package])


def _key(python: str, target: Target) -> str:
    digest = hashlib.sha256(f"{python}\0{target.django}\0{target.extras}".encode())
    for path in _sources():
        digest.update(str(path.relative_to(CLIENT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _build_wheel(into: Path) -> Path:
    """The wheel, built from a copy of the sources: nothing stale from an earlier build can slip in."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "client"
        for path in _sources():
            copy = source / path.relative_to(CLIENT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
        _run(sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--quiet", "-w", str(into))
    return next(into.glob("llm_batch_client-*.whl"))


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=STEP_SECONDS, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def clean_venv(target: Target) -> CleanVenv:
    """The target's venv, built if the client changed since; PythonMissing if this machine lacks its Python."""
    python = find_python(target.python)
    home = CACHE / target.name
    built = home / _key(python, target)
    if (built / "ready").exists():
        return CleanVenv(built, next(built.glob("llm_batch_client-*.whl")), target)
    for stale in home.glob("*"):  # venvs of earlier clients, or a build that did not finish
        shutil.rmtree(stale, ignore_errors=True)
    built.mkdir(parents=True)  # venv scripts hold absolute paths: built where it stays, marked ready last
    wheel = _build_wheel(built)
    _run(python, "-m", "venv", "--without-pip", str(built))
    _run(sys.executable, "-m", "pip", "--python", str(built / "bin" / "python"), "install", "--quiet",
         "--disable-pip-version-check", f"{wheel}[django]", target.django, *target.extras)  # fmt: skip
    (built / "ready").write_text(python + "\n")
    return CleanVenv(built, wheel, target)
