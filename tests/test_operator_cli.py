"""`python -m service migrate` logs as the service does: under LOG_FORMAT=json every line it prints is a JSON
object (the image runs it before uvicorn, into the same log stream)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path


def test_migrate_prints_only_json_lines_under_log_format_json(tmp_path: Path) -> None:
    database = tmp_path / "llm_batch.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "DATABASE_URL"))}
    env.update(LOG_FORMAT="json", DATABASE_URL=f"sqlite:///{database}")
    result = subprocess.run(
        [sys.executable, "-m", "service", "migrate"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    records = [json.loads(line) for line in lines]  # a plain-text line fails here
    assert any(record["message"] == "database is at the newest migration" for record in records), lines
    assert all(record["level"] and record["logger"] for record in records)
    with sqlite3.connect(database) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version
