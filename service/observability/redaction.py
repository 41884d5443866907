"""A safety net against secrets in logs: the configured secrets, bearer tokens, Standard Webhooks keys and
Groq keys are replaced before a record is written, whoever logged it (our code, httpx, uvicorn, the SDK)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

REDACTED = "[REDACTED]"

_PATTERNS = (
    (re.compile(r"(?i)(\bbearer\s+)[^\s\"',;}\]]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(\b(?:access_)?token=)[^\s&\"',;}\]]+"), r"\1" + REDACTED),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"), "whsec_" + REDACTED),
    (re.compile(r"\bgsk_[A-Za-z0-9]+"), "gsk_" + REDACTED),
)


class Redactor:
    """Knows the secrets of this process and scrubs them, and anything shaped like a credential, from text."""

    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, values: Iterable[str | None]) -> None:
        fresh = {value for value in values if value}  # configured secrets, whatever their length
        with self._lock:
            self._secrets = self._secrets | fresh

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


REDACTOR = Redactor()


def register_secrets(values: Iterable[str | None]) -> None:
    """Values that must never reach a log line (API tokens, the Groq key, the webhook secret)."""
    REDACTOR.add(values)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with its arguments merged and scrubbed, so every handler after this one
    sees the redacted text. Formatters redact their whole output again (exceptions, extra fields)."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the formatter to report
            return True
        redacted = self.redactor.redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
