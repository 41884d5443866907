"""Items of a submission held aside while the request is read: checked one by one as they arrive, written to a
spool (memory up to a few MB, then a temporary file), and inserted once the whole request is known to be good.

Memory stays flat whatever the size of the submission, and nothing reaches the database before every item has
passed; then the insert is one transaction, so a refused submission leaves nothing behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from service.kit.spooling import SPOOL_BUFFER_BYTES

IN_MEMORY_BYTES = 8 * 1024 * 1024
SEPARATOR = b"\t"


@dataclass(frozen=True)
class LargestOutput:
    """The item asking for the most output tokens (checked against each tier's cap once the tiers are known)."""

    position: int
    name: str  # max_completion_tokens or max_tokens
    tokens: int


@dataclass(frozen=True)
class StagedItem:
    position: int
    custom_id: str
    body_json: bytes
    metadata_json: bytes | None
    own_format: bool


class StagedItems:
    """Append-only, then read back in order. JSON text never holds a raw tab or newline, so a line is
    `custom_id TAB own_format TAB metadata TAB body`."""

    def __init__(self, spool_dir: str | Path | None = None) -> None:
        directory = str(spool_dir) if spool_dir is not None else None
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed by close())
            max_size=IN_MEMORY_BYTES,
            buffering=SPOOL_BUFFER_BYTES,
            dir=directory,
            prefix="submission-",
            suffix=".staged",
        )
        self.count = 0
        self.body_bytes = 0
        self.largest_output: LargestOutput | None = None

    def add(
        self,
        custom_id: str,
        body_json: bytes,
        metadata_json: bytes | None,
        own_format: bool,
        output_limit: tuple[str, int] | None = None,
    ) -> None:
        """`output_limit`: the body's (name, tokens) of the output limit it sets, if it sets one."""
        if output_limit is not None and (self.largest_output is None or output_limit[1] > self.largest_output.tokens):
            self.largest_output = LargestOutput(self.count, *output_limit)
        self._file.write(
            custom_id.encode("ascii")
            + SEPARATOR
            + (b"1" if own_format else b"0")
            + SEPARATOR
            + (metadata_json or b"")
            + SEPARATOR
            + body_json
            + b"\n"
        )
        self.count += 1
        self.body_bytes += len(body_json)

    def __iter__(self) -> Iterator[StagedItem]:
        self._file.seek(0)
        for position, line in enumerate(self._file):
            custom_id, own_format, metadata, body = line.rstrip(b"\n").split(SEPARATOR, 3)
            yield StagedItem(position, custom_id.decode("ascii"), body, metadata or None, own_format == b"1")
        self._file.seek(0, 2)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> StagedItems:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
