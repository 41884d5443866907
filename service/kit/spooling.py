"""Spool files: a staged submission, a pass's JSONL, downloaded result files.

Their lines are a few KB each, and Python gives a file a buffer of the file system's block size (4 KB here):
a line per system call. Spool files are opened with a buffer of this size instead.
"""

from __future__ import annotations

SPOOL_BUFFER_BYTES = 256 * 1024
