"""Structured logs: one JSON object per line (or readable text on a terminal), carrying the batch, pass and
provider batch a worker step is about, with secrets scrubbed.

Workers wrap each step in ``log_context(batch_id=..., pass_number=...)`` and add what they learn on the way
with ``bind_log_context(provider_batch_id=...)``; every record logged inside, by any library, carries them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from service.observability.redaction import REDACTOR, RedactingFilter, register_secrets
from service.settings import Settings

HANDLER_NAME = "llm-batch"
# Field names in log lines; `pass` is a keyword in Python, so the context takes it as pass_number.
CONTEXT_FIELDS = {"batch_id": "batch_id", "pass_number": "pass", "provider_batch_id": "provider_batch_id"}
# uvicorn's loggers come with their own handlers; ours replace them so their lines are structured too.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# One line per HTTP request at INFO: too chatty for a worker polling hundreds of provider batches.
CHATTY_AT_INFO = ("httpx", "httpcore")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: ContextVar[Mapping[str, Any]] = ContextVar("llm_batch_log_context", default=_EMPTY)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Fields every record logged inside carries (None values are left out); undone on exit, including
    whatever ``bind_log_context`` added inside."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: Any) -> None:
    """Add fields to the current ``log_context`` (they end with it)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def current_log_context() -> dict[str, Any]:
    return {CONTEXT_FIELDS.get(key, key): value for key, value in _context.get().items()}


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record, as attributes the formatters emit."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_log_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonLogFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            reserved_attrs=[*RESERVED_ATTRS, "taskName", "color_message"],
        )

    def format(self, record: logging.LogRecord) -> str:
        return REDACTOR.redact(super().format(record))


class TextLogFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS.values() if hasattr(record, key))
        return REDACTOR.redact(f"{line} [{context}]" if context else line)


def settings_secrets(settings: Settings) -> list[str]:
    secrets = [grant.token for grant in settings.token_grants()]
    for secret in (settings.groq_api_key, settings.webhook_secret):
        if secret is not None:
            secrets.append(secret.get_secret_value())
    return secrets


def configure_logging(
    *,
    log_format: Literal["json", "text"] | None = None,
    level: str | int = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Install the service's handler on the root logger (replacing one installed before; other handlers,
    such as a test runner's, are left alone) and route uvicorn's loggers through it."""
    stream = stream or sys.stderr
    fmt = log_format or ("text" if stream.isatty() else "json")
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else TextLogFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    register_secrets(secrets)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in UVICORN_LOGGERS:  # LOG_LEVEL governs them too, whatever uvicorn's own --log-level set
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
        uvicorn_logger.disabled = False
    for name in CHATTY_AT_INFO:
        logging.getLogger(name).setLevel(logging.WARNING if root.level > logging.DEBUG else logging.NOTSET)
    return handler


def configure_from_settings(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    return configure_logging(
        log_format=settings.log_format, level=settings.log_level, secrets=settings_secrets(settings), stream=stream
    )
