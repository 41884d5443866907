"""Errors raised for bad client input (the API maps them to 422 problem+json)."""

from __future__ import annotations


class SubmissionError(ValueError):
    """A submission that cannot be accepted; ``field`` locates the problem, e.g. ``items[3].body``."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class LimitExceeded(SubmissionError):
    """Over one of the configurable limits; ``setting`` names it (e.g. MAX_CUSTOM_ID_LENGTH)."""

    def __init__(self, message: str, *, field: str, setting: str, maximum: int) -> None:
        super().__init__(message, field=field)
        self.setting = setting
        self.maximum = maximum


class DuplicateCustomId(SubmissionError):
    def __init__(self, custom_id: str, *, first_index: int, duplicate_index: int) -> None:
        super().__init__(
            f"custom_id {custom_id!r} appears more than once "
            f"(items[{first_index}] and items[{duplicate_index}]); custom_ids must be unique",
            field=f"items[{duplicate_index}].custom_id",
        )
        self.custom_id = custom_id


class InvalidSchema(SubmissionError):
    """A JSON Schema (output_schema or response_format.json_schema.schema) that is not valid."""


class LineTooLarge(SubmissionError):
    def __init__(self, *, line_index: int, size: int, max_bytes: int, custom_id: str | None = None) -> None:
        who = f"custom_id {custom_id!r}" if custom_id is not None else f"line {line_index}"
        super().__init__(
            f"the request for {who} is {size} bytes as a JSONL line, "
            f"more than the {max_bytes} bytes allowed in one provider batch file",
            field="items",
        )
        self.line_index = line_index
        self.size = size
        self.max_bytes = max_bytes
        self.custom_id = custom_id


class OverContextWindow(SubmissionError):
    """An item whose messages alone are more tokens than the context window of every tier it could run on."""

    def __init__(self, *, position: int, custom_id: str, tokens: int, windows: dict[str, int]) -> None:
        where = ", ".join(f"{model} ({window})" for model, window in windows.items())
        super().__init__(
            f"the prompt (messages and tools) of custom_id {custom_id!r} is at least {tokens} tokens, more than "
            f"the context window of every tier: {where}; shorten it or split the item",
            field=f"items[{position}].body.messages",
        )
        self.custom_id = custom_id
        self.tokens = tokens
