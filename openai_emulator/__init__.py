"""A local stand-in for OpenAI's Files, Batches and Models API (``/v1``), for tests and demos; true to OpenAI
as of 2026-12 (``shared/PROVIDERS_BATCH_API.md`` part A, and the installed ``openai`` SDK).

Point the official SDK at it: ``AsyncOpenAI(base_url="http://127.0.0.1:8091/v1", api_key="x")``
(``OPENAI_BASE_URL`` includes ``/v1``), or in process: ``AsyncOpenAI(base_url="http://emulator/v1",
api_key="x", http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=create_emulator_app(cfg))))``.

What it does: multipart uploads (purpose ``batch`` must be ``.jsonl`` and at most 200 MB, any file at most
512 MB; lines are not read at upload), file retrieve/list/content/delete, expiry of files (30 days for
``batch`` files unless ``expires_after``; output files per ``output_expires_after``); batches on
``/v1/chat/completions`` and ``/v1/responses`` with window ``24h``, metadata limits, live ``request_counts`` and
``usage``; validation failures (bad JSON, missing fields, url or model mismatch, duplicate custom_ids, over
50,000 lines, an empty file) and ``token_limit_exceeded`` when the model's enqueued prompt tokens would pass its
limit; expiry and cancel with partial results; per-line answers from ``ModelSpec`` (refusals, truncation,
reasoning tokens, cached prompt tokens, strict structured output that always conforms, best-effort JSON that
may not), and OpenAI's per-line 4xx for ``max_tokens``/``temperature`` on reasoning models, an unknown or
retired model, a strict schema OpenAI refuses, a prompt over the context window.

Choices where the facts are uncertain (each an ``EmulatorConfig`` field):

- duplicate custom_ids fail the batch at validation (``duplicate_custom_ids="fail_batch"``); ``"reject_create"``
  answers 400 to the create instead;
- custom_ids are any non-empty string (``custom_id_pattern=None``);
- a ``finalizing`` batch can be cancelled (``cancel_while_finalizing``); cancelling a terminal batch is a 400
  (``cancel_terminal_status``; 409 is what a gateway answers, and the SDK retries 409);
- lines a cancel left unrun are in the error file with code ``batch_cancelled`` (``cancelled_line_code``);
- strict schemas refuse keywords outside OpenAI's documented list (``strict_unlisted_keywords="refuse"``);
- gpt-5.4-mini/nano fail ``/v1/chat/completions`` lines in batch with 404 model_not_found while
  ``/v1/responses`` works (``ModelSpec.chat_completions_in_batch``);
- the list of batches is newest first; request counts of an expired or cancelled batch count unrun lines
  as failed.
"""

from groq_emulator.clock import Clock, ManualClock, ScaledClock
from groq_emulator.state import RequestRecord
from openai_emulator.app import create_emulator_app
from openai_emulator.config import EmulatorConfig, Faults, ModelSpec, default_models
from openai_emulator.state import Emulator

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
