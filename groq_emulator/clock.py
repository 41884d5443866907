"""Clocks for the emulator.

Every lifecycle timing (``EmulatorConfig.validating_seconds`` and so on) and every timestamp
in a Batch object is in *emulated* seconds, read from ``clock.now()`` (Unix seconds).

``ScaledClock(time_scale)``: emulated time starts equal to real time and then runs
``1 / time_scale`` times faster, i.e. ``emulated elapsed = real elapsed / time_scale``.
``time_scale=0.01`` makes a 100 s schedule take 1 real second; ``1.0`` is real time.

``ManualClock``: stands still until ``advance(seconds)`` or ``set(timestamp)`` is called.
Only request handling reads the clock, so a test fully controls the lifecycle.
Real-time waits (``Faults.slow_seconds``, ``retry-after``) are never scaled.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Current emulated time in Unix seconds."""
        ...


class ScaledClock:
    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = time_scale
        self._origin = time.time()
        self._origin_mono = time.monotonic()

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._origin_mono) / self.time_scale


class ManualClock:
    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("a ManualClock only moves forward")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, timestamp: float) -> None:
        with self._lock:
            if timestamp < self._now:
                raise ValueError("a ManualClock only moves forward")
            self._now = float(timestamp)
