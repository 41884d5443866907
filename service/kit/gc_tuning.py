"""Tuning Python's cyclic garbage collector for a service that allocates in bulk.

Submissions, lay-outs and ingests allocate tens of thousands of short-lived objects at a time (rows, dicts, result
lines) that reference counting frees; with the default thresholds the collector runs full collections in the
middle of that work and finds almost nothing to free. The objects alive after start-up (modules, the app, the
catalogue) are frozen out of every collection, and the youngest generation is collected far less often.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # allocations between young collections (the default is 700)
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_bulk_work() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
