"""The one clock of the database's timestamps."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no zone, so every timestamp in the database is UTC without tzinfo."""
    return datetime.now(UTC).replace(tzinfo=None)
