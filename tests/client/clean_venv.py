"""A virtual environment with nothing but the client's wheel (with its `django` extra) and what that pulls in:
what a monolith gets from `pip install "llm-batch-client[django]"`. Built on the oldest Python the client
supports when this machine has it (3.10), else on the tests' own.

Kept under .venv-examples/<key>/, the key a hash of client/ and the interpreter, so a run with an unchanged
client reuses it; CI's fresh clone builds it once (about 15 s)."""

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
# The LTS the example is tested on; CLIENT_VENV_DJANGO="Django~=4.2.0" tries another by hand.
DJANGO = os.environ.get("CLIENT_VENV_DJANGO", "Django~=5.2.0")
STEP_SECONDS = 300


@dataclass(frozen=True)
class CleanVenv:
    root: Path
    wheel: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def script(self, name: str) -> Path:
        return self.root / "bin" / name

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pip", "--python", str(self.python), "--disable-pip-version-check", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=STEP_SECONDS, check=True)


def _works(python: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import sys, venv; print(sys.version_info[:2])"], capture_output=True,
                              text=True, timeout=30, check=False)  # fmt: skip
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == "(3, 10)"


def oldest_python() -> str:
    """Python 3.10 if this machine has one that runs (a pyenv shim may exist and refuse), else this one;
    CLIENT_VENV_PYTHON=/path/to/python chooses another by hand."""
    if os.environ.get("CLIENT_VENV_PYTHON"):
        return os.environ["CLIENT_VENV_PYTHON"]
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [shutil.which("python3.10"), *sorted(glob.glob(f"{pyenv_root}/versions/3.10*/bin/python3.10"))]
    return next((python for python in candidates if python and _works(python)), sys.executable)


def _sources() -> list[Path]:
    """What the distribution is built from (not the build/ and egg-info/ an in-tree build leaves)."""
    package = [p for p in (CLIENT / "llm_batch_client").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted([CLIENT / "pyproject.toml", CLIENT / "README.md", *package])


def _key(python: str) -> str:
    digest = hashlib.sha256(f"{python}\0{DJANGO}".encode())
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


def clean_venv() -> CleanVenv:
    python = oldest_python()
    target = CACHE / _key(python)
    if (target / "ready").exists():
        return CleanVenv(target, next(target.glob("llm_batch_client-*.whl")))
    for stale in CACHE.glob("*"):  # venvs of earlier clients, or a build that did not finish
        shutil.rmtree(stale, ignore_errors=True)
    target.mkdir(parents=True)  # venv scripts hold absolute paths: built where it stays, marked ready last
    wheel = _build_wheel(target)
    _run(python, "-m", "venv", "--without-pip", str(target))
    _run(sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install", "--quiet",
         "--disable-pip-version-check", f"{wheel}[django]", DJANGO)  # fmt: skip
    (target / "ready").write_text(python + "\n")
    return CleanVenv(target, wheel)
