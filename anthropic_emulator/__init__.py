"""A local stand-in for Anthropic's Message Batches and Models API, for tests and demos; true to Anthropic as of
2026-12 (``shared/PROVIDERS_BATCH_API.md`` part B and D, and the installed ``anthropic`` SDK).

Point the official SDK at it: ``AsyncAnthropic(base_url="http://127.0.0.1:8092", api_key="x")``
(``ANTHROPIC_BASE_URL`` has no ``/v1``), or in process: ``AsyncAnthropic(base_url="http://emulator",
api_key="x", http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_emulator_app(cfg))))``:
the anthropic SDK 2.x refuses an ``httpx`` client and takes only ``httpx2`` (the app serves either transport).

What it does: ``x-api-key`` or ``Authorization: Bearer``, ``anthropic-version`` 2023-06-01 or 2026-10-21;
batches of inline ``requests[]`` whose custom_ids (``^[a-zA-Z0-9_-]{1,64}$``, unique) are checked at once (400)
and whose size is limited (100,000 requests, 256 MB: 413); ``params`` checked only when the batch runs, each
violation an ``errored`` result once the batch has ended (max_tokens, stream, a ``system`` role, unknown or
retired models as not_found_error, schemas over the structured-output limits, a prompt over the window);
retrieve, list (newest first, ``after_id``/``before_id``), cancel (canceling, then ended with the rest
``canceled``), delete (only once ended), results (JSONL, ``results_url`` once ended, archived after 29 days);
messages with ``stop_reason`` end_turn, max_tokens or refusal (``stop_details``), conforming structured output,
and usage with cache writes and reads for ``cache_control`` prefixes.

Tokens: no Anthropic vocabulary exists offline, so a prompt is ``ceil(characters / 3.5)`` of each part plus 4
a message (``EmulatorConfig.chars_per_token``; ``tokens.py``), and an answer ``ceil(characters / 3.5)``.

Choices where the facts are uncertain (each configurable):

- a retired model errors per request with ``not_found_error`` ``model: <name>`` (inferred, not observed), and
  ``GET /v1/models`` lists it only when ``lifecycle=retired`` is asked for (the installed SDK's contract);
- cancelling an ended batch is a 400 (``EmulatorConfig.cancel_ended_is_error``);
- cache hits always happen once a prefix is warm (``cache_hit_rate=1.0``; batches see 30-98% in practice);
- a refusal has no content blocks and 3 output tokens; a structured answer puts required properties first.
"""

from anthropic_emulator.app import create_emulator_app
from anthropic_emulator.config import EmulatorConfig, Faults, ModelSpec, default_models
from anthropic_emulator.state import Emulator
from groq_emulator.clock import Clock, ManualClock, ScaledClock
from groq_emulator.state import RequestRecord

__all__ = [
    "Clock",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "ManualClock",
    "ModelSpec",
    "RequestRecord",
    "ScaledClock",
    "create_emulator_app",
    "default_models",
]
