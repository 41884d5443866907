"""Splitting a pass's JSONL lines into provider batches that respect Groq's file limits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from service.pipeline.errors import LineTooLarge


def plan_chunks(
    line_sizes: Iterable[int],
    *,
    max_lines: int,
    max_bytes: int,
    custom_ids: Sequence[str] | None = None,
) -> list[int]:
    """The chunk index (0, 1, 2, ...) of each line, in order, filling chunks greedily.

    Every chunk holds at most ``max_lines`` lines and ``max_bytes`` bytes. ``custom_ids``, when
    given, only serve to name the offending item if a single line exceeds ``max_bytes``.
    """
    if max_lines < 1 or max_bytes < 1:
        raise ValueError(f"max_lines and max_bytes must be positive (got {max_lines}, {max_bytes})")
    chunk_of_line: list[int] = []
    chunk, lines_in_chunk, bytes_in_chunk = 0, 0, 0
    for index, size in enumerate(line_sizes):
        if size > max_bytes:
            custom_id = custom_ids[index] if custom_ids is not None else None
            raise LineTooLarge(line_index=index, size=size, max_bytes=max_bytes, custom_id=custom_id)
        if lines_in_chunk and (lines_in_chunk == max_lines or bytes_in_chunk + size > max_bytes):
            chunk, lines_in_chunk, bytes_in_chunk = chunk + 1, 0, 0
        chunk_of_line.append(chunk)
        lines_in_chunk += 1
        bytes_in_chunk += size
    return chunk_of_line
