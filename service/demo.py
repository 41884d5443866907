"""``make demo``: run the real service on ~200 synthetic PR analyses and show what two passes cost.

Starts the app (workers included) with uvicorn on a free local port, submits the batch with
``?fallback=true`` over HTTP, draws each pass's progress, then prints a table per pass and what the
same run would have cost on the primary model only or on the fallback model only.

Without ``GROQ_API_KEY`` the app runs against its built-in Groq emulator, with emulated time 20×
faster than real time, so the demo takes a few seconds. With a key it sends real batches to Groq
(which may take minutes to hours; Ctrl-C leaves the batch in the database for the next start).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import httpx

from service.demo_data import DEFAULT_COUNT, DEFAULT_SEED, demo_payload

# Environment defaults for the demo only; anything the user set wins.
DEMO_ENV_DEFAULTS = {
    "POLL_INTERVAL_SECONDS": "1",
    "EMULATOR_TIME_SCALE": "0.05",  # emulated time runs 20x faster than real time
}
POLL_EVERY_SECONDS = 0.5
STARTUP_TIMEOUT_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 300.0
SHUTDOWN_TIMEOUT_SECONDS = 40.0
TERMINAL = ("completed", "failed", "cancelled")
TOKENS_PER_PRICE_UNIT = 1_000_000


# -- what-if arithmetic (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class WhatIf:
    """What the same items would have cost with a single model, next to what the run cost."""

    actual_usd: float
    primary_model: str
    primary_only_usd: float  # pass 1 as it ran: its failures stay failed
    primary_only_failed: int
    fallback_model: str
    fallback_only_usd: float | None  # None when no item reached the fallback model (nothing to go on)
    fallback_measured_items: int  # items whose fallback-model tokens were measured in this run
    fallback_estimated_items: int  # items whose fallback-model tokens are estimated
    fallback_avg_output_tokens: float | None

    @property
    def saving_vs_fallback_pct(self) -> float | None:
        if not self.fallback_only_usd:
            return None
        return (self.fallback_only_usd - self.actual_usd) / self.fallback_only_usd * 100.0


def _usd(prices: Mapping[str, tuple[float, float]], model: str, input_tokens: float, output: float) -> float:
    price_in, price_out = prices[model]
    return (input_tokens * price_in + output * price_out) / TOKENS_PER_PRICE_UNIT


def _usage(row: Mapping[str, Any]) -> tuple[int, int]:
    usage = row.get("usage") or {}
    return int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)


def whatif_costs(
    summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], prices: Mapping[str, tuple[float, float]]
) -> WhatIf:
    """Primary-only and fallback-only costs of the run in ``summary`` (GET /batches/{id}), whose merged
    result rows (GET /batches/{id}/results) are ``rows``; ``prices`` are batch USD per 1M tokens.

    Primary only: pass 1 exactly as it ran, its failures left unrecovered.
    Fallback only (an estimate): an item that was sent to the fallback model counts with the tokens
    measured there; any other item with its pass-1 input tokens (the pass-1 average when its line had
    no usage) and the average output tokens of the fallback model's answers in this run.
    """
    passes = sorted(summary["passes"], key=lambda p: p["number"])
    first = passes[0]
    primary_model: str = first["model"]
    fallback_model: str = summary.get("fallback_model") or (
        passes[1]["model"] if len(passes) > 1 else primary_model
    )
    primary_only = _usd(
        prices, primary_model, first["cost"]["input_tokens"], first["cost"]["output_tokens"]
    )

    measured = [row for row in rows if row.get("model") == fallback_model and row.get("usage")]
    others = [row for row in measured if False] + [row for row in rows if row not in measured]
    outputs = [out for _, out in map(_usage, measured) if out > 0]
    pass1_inputs = [inp for inp, _ in map(_usage, others) if inp > 0 and others and True]
    pass1_inputs = [_usage(row)[0] for row in rows if row.get("pass") == 1 and _usage(row)[0] > 0]
    avg_input = sum(pass1_inputs) / len(pass1_inputs) if pass1_inputs else 0.0
    avg_output = sum(outputs) / len(outputs) if outputs else None

    fallback_only: float | None = None
    if avg_output is not None or not others:
        input_tokens = float(sum(_usage(row)[0] for row in measured))
        output_tokens = float(sum(_usage(row)[1] for row in measured))
        for row in others:
            inp = _usage(row)[0] if row.get("pass") == 1 else 0
            input_tokens += inp if inp > 0 else avg_input
            output_tokens += avg_output or 0.0
        fallback_only = _usd(prices, fallback_model, input_tokens, output_tokens)

    return WhatIf(
        actual_usd=float(summary["cost"]["usd"]),
        primary_model=primary_model,
        primary_only_usd=primary_only,
        primary_only_failed=int(first["failed"]),
        fallback_model=fallback_model,
        fallback_only_usd=fallback_only,
        fallback_measured_items=len(measured),
        fallback_estimated_items=len(others),
        fallback_avg_output_tokens=avg_output,
    )
