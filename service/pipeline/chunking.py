"""Splitting a pass's JSONL lines into provider batches that respect Groq's file limits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from service.pipeline.errors import LineTooLarge


@dataclass
class ChunkPlanner:
    """Places lines one by one, in order, filling chunks greedily: every chunk holds at most `max_lines` lines
    and `max_bytes` bytes."""

    max_lines: int
    max_bytes: int
    chunk: int = -1
    lines: int = 0
    size: int = 0
    placed: int = 0

    def __post_init__(self) -> None:
        if self.max_lines < 1 or self.max_bytes < 1:
            raise ValueError(f"max_lines and max_bytes must be positive (got {self.max_lines}, {self.max_bytes})")

    def place(self, size: int, custom_id: str | None = None) -> tuple[int, bool]:
        """(the chunk index of a line of `size` bytes, whether it opens that chunk)."""
        if size > self.max_bytes:
            raise LineTooLarge(line_index=self.placed, size=size, max_bytes=self.max_bytes, custom_id=custom_id)
        opens = self.chunk < 0 or self.lines == self.max_lines or self.size + size > self.max_bytes
        if opens:
            self.chunk, self.lines, self.size = self.chunk + 1, 0, 0
        self.lines += 1
        self.size += size
        self.placed += 1
        return self.chunk, opens


def plan_chunks(
    line_sizes: Iterable[int],
    *,
    max_lines: int,
    max_bytes: int,
    custom_ids: Sequence[str] | None = None,
) -> list[int]:
    """The chunk index (0, 1, 2, ...) of each line, in order. `custom_ids`, when given, only serve to name the
    offending item if a single line exceeds `max_bytes`."""
    planner = ChunkPlanner(max_lines, max_bytes)
    return [
        planner.place(size, custom_ids[index] if custom_ids is not None else None)[0]
        for index, size in enumerate(line_sizes)
    ]
