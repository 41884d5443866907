"""The emulator's store: files, batches, models, faults and the request log. Thread-safe, transport-free."""

from __future__ import annotations

import random
import threading
from typing import Any

from groq_emulator.behaviour import request_rng
from groq_emulator.clock import Clock, ScaledClock
from groq_emulator.lifecycle import CANCELLABLE, Phase, phase_at
from groq_emulator.state import RequestRecord
from openai_emulator import behaviour
from openai_emulator.batches import TERMINAL, OpenAIBatch, render
from openai_emulator.cache import PromptCache
from openai_emulator.config import EmulatorConfig, Faults
from openai_emulator.errors import ApiError, no_such, rate_limited, server_error
from openai_emulator.files import FileStore, StoredFile, check_upload, expiry_seconds
from openai_emulator.ids import file_id, timed_hex
from openai_emulator.requests import check_create
from openai_emulator.tokens import prompt_tokens
from openai_emulator.validation import CheckedInput, validate_input

_ACTIVE = frozenset({"validating", "in_progress", "finalizing", "cancelling"})


def _failure(code: str, message: str) -> list[dict[str, Any]]:
    return [{"code": code, "message": message, "param": None, "line": None}]


class Emulator:
    """A faithful in-memory stand-in for OpenAI's Files, Batches and Models API.

    State advances lazily from ``clock.now()`` whenever something is read.
    """

    def __init__(self, config: EmulatorConfig | None = None, faults: Faults | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock: Clock = self.config.clock or ScaledClock(self.config.time_scale)
        self.faults = faults or Faults()
        self.store = FileStore()
        self.batch_records: dict[str, OpenAIBatch] = {}
        self.request_log: list[RequestRecord] = []
        self.request_headers: list[dict[str, str]] = []  # same index as request_log; lowercase names
        self.cache = PromptCache(
            self.config.cache_min_tokens, self.config.cache_increment, self.config.cache_ttl_seconds
        )
        self._retired_at_start = self.config.retired_models
        self._lock = threading.RLock()
        self._fault_rng = random.Random(f"{self.config.seed}|faults")
        self._id_rng = random.Random(f"{self.config.seed}|ids")

    # -- inspection ----------------------------------------------------------------------
    @property
    def files(self) -> dict[str, StoredFile]:
        return self.store.files

    @property
    def batches(self) -> dict[str, dict[str, Any]]:
        """Every batch as its current Batch object, by id."""
        with self._lock:
            records = list(self.batch_records.values())
        return {rec.id: self._refresh(rec) for rec in records}

    def custom_ids(self, batch_id: str) -> list[str]:
        """The custom_ids a batch was sent (its valid lines, in file order), even once its files are gone."""
        return [request.custom_id for request in self.batch_records[batch_id].requests]

    def retire(self, model: str) -> None:
        """OpenAI shuts ``model`` down now: new lines naming it get 404, and the model list leaves it out."""
        with self._lock:
            self.config.retired_models = self.config.retired_models | {model}

    def reset(self) -> None:
        """Forget all files, batches, cached prompts and logged requests; clear the faults and retirements."""
        with self._lock:
            self.store.files.clear()
            self.batch_records.clear()
            self.request_log.clear()
            self.request_headers.clear()
            self.cache.clear()
            self.faults.clear()
            self.config.retired_models = self._retired_at_start
            self._fault_rng = random.Random(f"{self.config.seed}|faults")

    def log_request(self, method: str, path: str, status: int, headers: dict[str, str]) -> None:
        with self._lock:
            self.request_log.append(RequestRecord(method, path, status))
            self.request_headers.append(headers)

    def take_fault(self) -> ApiError | None:
        """The injected failure for the current API request, if any (counters count down)."""
        faults = self.faults
        with self._lock:
            if faults.rate_limit_next > 0:
                faults.rate_limit_next -= 1
                return rate_limited(faults.rate_limit_retry_after, self.config.organization)
            if faults.server_error_next > 0:
                faults.server_error_next -= 1
                return server_error(faults.server_error_status)
            if faults.error_rate > 0 and self._fault_rng.random() < faults.error_rate:
                if self._fault_rng.random() < 0.5:
                    return rate_limited(faults.rate_limit_retry_after, self.config.organization)
                return server_error(faults.server_error_status)
        return None

    def new_id(self, kind: str, at: float) -> str:
        with self._lock:
            return file_id(self._id_rng) if kind == "file" else timed_hex(f"{kind}_", at, self._id_rng)

    # -- files -----------------------------------------------------------------------------
    def upload_file(
        self, filename: str, purpose: str, data: bytes, anchor: str | None = None, seconds: str | None = None
    ) -> dict[str, Any]:
        cfg = self.config
        check_upload(filename, purpose, len(data), cfg.max_batch_file_bytes, cfg.max_file_bytes)
        default = cfg.batch_file_expiry_seconds if purpose == "batch" else None
        lifetime = expiry_seconds(anchor, seconds, default)
        now = self.clock.now()
        expires = None if lifetime is None else now + lifetime
        with self._lock:
            stored = StoredFile(self.new_id("file", now), filename, purpose, now, data, expires)
            return self.store.add(stored).to_object()

    def list_files(self, after: str | None, limit: int, order: str, purpose: str | None) -> dict[str, Any]:
        with self._lock:
            return self.store.page(self.clock.now(), after, limit, order, purpose)

    def file_info(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            return self.store.get(file_id, self.clock.now()).to_object()

    def file_content(self, file_id: str) -> bytes:
        with self._lock:
            return self.store.get(file_id, self.clock.now()).content

    def delete_file(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            return self.store.delete(file_id, self.clock.now())

    # -- batches ---------------------------------------------------------------------------
    def _input(self, file_id: str) -> StoredFile:
        with self._lock:
            stored = self.store.files.get(file_id)
            if stored is not None:
                stored = self.store.get(file_id, self.clock.now())  # an expired file is gone
        if stored is None:
            message = f"Cannot find file {file_id}, or project proj_emulator does not have access to it."
            raise ApiError(400, message, param="file_id")
        if stored.purpose != "batch":
            message = f"The file {file_id} has purpose '{stored.purpose}'; a batch needs a file with purpose 'batch'."
            raise ApiError(400, message, param="input_file_id")
        return stored

    def _counted(self, checked: CheckedInput, endpoint: str) -> list[int]:
        spec = self.config.models.get(checked.model or "")
        o200k = spec.o200k if spec is not None else True
        return [prompt_tokens(request.body, endpoint, o200k) for request in checked.requests]

    def _enqueued(self, model: str, now: float) -> int:
        with self._lock:
            records = [r for r in self.batch_records.values() if r.model == model and r.errors is None]
        return sum(sum(r.prompt_tokens) for r in records if phase_at(r, now).status in _ACTIVE)

    def create_batch(self, payload: Any) -> dict[str, Any]:
        cfg = self.config
        input_id, endpoint, metadata, output_expiry = check_create(payload, cfg.output_expiry_seconds)
        stored = self._input(input_id)
        checked = validate_input(
            stored.content, endpoint, max_lines=cfg.max_lines, max_errors=cfg.max_reported_errors,
            custom_id_pattern=cfg.custom_id_pattern,
        )  # fmt: skip
        if checked.duplicates and cfg.duplicate_custom_ids == "reject_create":
            message = f"The input file has duplicate custom_id values, e.g. '{checked.duplicates[0]}'."
            raise ApiError(400, message, param="input_file_id", code="duplicate_custom_id")
        counted = self._counted(checked, endpoint) if checked.ok else []
        spec = cfg.models.get(checked.model or "")
        with self._lock:
            now = self.clock.now()
            rec = OpenAIBatch(
                id=self.new_id("batch", now),
                input_file_id=input_id,
                endpoint=endpoint,
                completion_window="24h",
                metadata=metadata,
                created_at=now,
                expires_at=now + cfg.window_seconds,
                validating_seconds=cfg.validating_seconds,
                processing_seconds=cfg.processing_seconds + cfg.per_line_seconds * len(checked.requests),
                finalizing_seconds=cfg.finalizing_seconds,
                cancel_seconds=cfg.cancel_seconds,
                requests=checked.requests,
                model=spec.snapshot if spec is not None else checked.model,
                prompt_tokens=counted,
                output_expiry_seconds=output_expiry,
            )
            rec.errors = self._validation_errors(rec, checked, now)
            if rec.errors is None and self.faults.expire_next_batches > 0:
                self.faults.expire_next_batches -= 1
                rec.expire_fraction = self.faults.expire_after_fraction
            self.batch_records[rec.id] = rec
        return self._refresh(rec)

    def _validation_errors(self, rec: OpenAIBatch, checked: CheckedInput, now: float) -> list[dict[str, Any]] | None:
        faults = self.faults
        if faults.fail_next_batches > 0:
            faults.fail_next_batches -= 1
            return _failure("validation_failed", "The input file could not be validated. Please try again.")
        if not checked.ok:
            return checked.errors
        spec = self.config.models.get(checked.model or "")
        limit = spec.enqueued_token_limit if spec is not None else 0
        forced = faults.token_limit_next_batches > 0
        if forced or (spec is not None and self._enqueued(rec.model or "", now) + sum(rec.prompt_tokens) > limit):
            if forced:
                faults.token_limit_next_batches -= 1
            message = (
                f"Enqueued token limit reached for {checked.model} in organization {self.config.organization}. "
                f"Limit: {limit:,} enqueued tokens. Please try again once some in_progress batches have been completed."
            )
            return _failure("token_limit_exceeded", message)
        return None

    def _record(self, batch_id: str) -> OpenAIBatch:
        with self._lock:
            rec = self.batch_records.get(batch_id)
        if rec is None:
            raise no_such("Batch", batch_id, param="batch_id")
        return rec

    def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        return self._refresh(self._record(batch_id))

    def list_batches(self, after: str | None, limit: int | None) -> dict[str, Any]:
        cfg = self.config
        size = cfg.batch_list_default_limit if limit is None else limit
        if not 1 <= size <= cfg.batch_list_max_limit:
            message = f"Invalid 'limit': expected a value between 1 and {cfg.batch_list_max_limit}, got {size}."
            raise ApiError(400, message, param="limit", code="invalid_value")
        with self._lock:
            ordered = list(reversed(self.batch_records.values()))  # newest first
        start = 0
        if after is not None:
            positions = [i for i, r in enumerate(ordered) if r.id == after]
            if not positions:
                raise no_such("Batch", after, param="after")
            start = positions[0] + 1
        data = [self._refresh(r) for r in ordered[start : start + size]]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": start + size < len(ordered),
        }

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        rec = self._record(batch_id)
        cancellable = CANCELLABLE if self.config.cancel_while_finalizing else CANCELLABLE - {"finalizing"}
        with rec.lock:
            now = self.clock.now()
            current = phase_at(rec, now)
            if current.status == "cancelling":
                return self._refresh(rec)
            if current.status not in cancellable:
                message = f"Cannot cancel a batch with status '{current.status}'."
                raise ApiError(self.config.cancel_terminal_status, message)
            rec.cancel_requested_at = now
            return self._refresh(rec)

    # -- models ----------------------------------------------------------------------------
    def _model_object(self, name: str) -> dict[str, Any]:
        spec = self.config.models[name]
        return {
            "id": name,
            "object": "model",
            "created": spec.created,
            "owned_by": "system",
            "shutdown_date": spec.shutdown_date,
        }

    def list_models(self) -> dict[str, Any]:
        names = sorted(name for name in self.config.models if self.config.spec(name) is not None)
        return {"object": "list", "data": [self._model_object(name) for name in names]}

    def retrieve_model(self, name: str) -> dict[str, Any]:
        if self.config.spec(name) is None:
            message = f"The model `{name}` does not exist or you do not have access to it."
            raise ApiError(404, message, code="model_not_found")
        return self._model_object(name)

    # -- lazy progress -----------------------------------------------------------------------
    def _refresh(self, rec: OpenAIBatch) -> dict[str, Any]:
        """Bring ``rec`` up to the clock (simulating newly finished lines) and render it.

        Locking: a batch's own lock first, then (briefly) the store lock; never the other way round.
        """
        with rec.lock:
            phase = phase_at(rec, self.clock.now())
            for index in range(len(rec.ok_prefix) - 1, phase.processed):
                at = rec.line_time(index)
                prompt = rec.prompt_tokens[index] if index < len(rec.prompt_tokens) else None
                result = behaviour.simulate(self.config, rec.requests[index], rec.endpoint, at, self.cache, prompt)
                rec.lines.append(result)
                rec.ok_prefix.append(rec.ok_prefix[-1] + (1 if result.success else 0))
                if result.usage is not None:
                    used = result.usage
                    for slot, value in enumerate((used.input, used.cached, used.output, used.reasoning)):
                        rec.usage[slot] += value
            if phase.terminal and phase.status != "failed" and not rec.finished:
                self._finish(rec, phase)
            return render(rec, phase)

    def _finish(self, rec: OpenAIBatch, phase: Phase) -> None:
        """Write the output and error files once the batch reaches a terminal state."""
        ended = phase.ended_at or self.clock.now()
        first = rec.requests[0].custom_id if rec.requests else ""
        order = request_rng(self.config.seed, "order", rec.id, first)
        done = rec.lines[: phase.processed]
        ok = [r.data for r in done if r.success]
        bad = [r.data for r in done if not r.success]
        code = "batch_expired" if phase.status == "expired" else self.config.cancelled_line_code
        for request in rec.requests[phase.processed :]:
            bad.append(behaviour.unprocessed_line(request.custom_id, code, order, ended))
        order.shuffle(ok)  # "The output line order may not match the input line order"
        order.shuffle(bad)
        with self._lock:
            corrupt, self.faults.malformed_output_lines = (self.faults.malformed_output_lines, 0) if ok else (0, 0)
            dropped, self.faults.missing_output_lines = self.faults.missing_output_lines, 0
        for index in order.sample(range(len(ok)), min(len(ok), corrupt)):
            ok[index] = ok[index][: len(ok[index]) // 2]  # cut mid-object: not JSON
        for _ in range(min(dropped, len(ok) + len(bad))):
            lines = ok if ok and (not bad or order.random() < len(ok) / (len(ok) + len(bad))) else bad
            lines.pop(order.randrange(len(lines)))
        if ok:
            rec.output_file_id = self._store_output(rec, "output", ok, ended)
        if bad:
            rec.error_file_id = self._store_output(rec, "error", bad, ended)
        rec.lines = []  # the files hold the lines now; counts stay in ok_prefix
        rec.finished = True

    def _store_output(self, rec: OpenAIBatch, kind: str, lines: list[bytes], at: float) -> str:
        content = b"\n".join(lines) + b"\n"
        expires = at + rec.output_expiry_seconds
        stored = StoredFile(self.new_id("file", at), f"{rec.id}_{kind}.jsonl", "batch_output", at, content, expires)
        with self._lock:
            self.store.add(stored)
        return stored.id


__all__ = ["TERMINAL", "Emulator", "RequestRecord"]
