"""The emulator's store: message batches, models, faults and the request log. Thread-safe, transport-free."""

from __future__ import annotations

import dataclasses
import random
import threading
from typing import Any

from anthropic_emulator import behaviour
from anthropic_emulator.batches import MessageBatchRecord, Phase, phase_at, render, rfc3339
from anthropic_emulator.config import EmulatorConfig, Faults, ModelSpec
from anthropic_emulator.errors import ApiError, invalid, not_found, overloaded, rate_limited, server_error
from anthropic_emulator.ids import new_id
from anthropic_emulator.requests import check_batch
from anthropic_emulator.tokens import PromptCache
from groq_emulator.behaviour import request_rng
from groq_emulator.clock import Clock, ScaledClock
from groq_emulator.state import RequestRecord

LIFECYCLES = ("active", "deprecated", "retired")


def _page(items: list[Any], ids: list[str], after: str | None, before: str | None, limit: int) -> dict[str, Any]:
    """Anthropic's cursor page over ``items`` (newest first): ``after_id`` older, ``before_id`` newer."""
    if after is not None and before is not None:
        raise invalid("after_id and before_id cannot both be set")
    if after is not None or before is not None:
        cursor = after if after is not None else before
        if cursor not in ids:
            raise invalid(f"{'after_id' if after is not None else 'before_id'}: unknown id '{cursor}'")
        at = ids.index(str(cursor))
        start, end = (at + 1, at + 1 + limit) if after is not None else (max(0, at - limit), at)
    else:
        start, end = 0, limit
    page = items[start:end]
    more = start > 0 if before is not None else end < len(items)
    return {
        "data": page,
        "has_more": more,
        "first_id": ids[start] if page else None,
        "last_id": ids[start + len(page) - 1] if page else None,
    }


class Emulator:
    """A faithful in-memory stand-in for Anthropic's Message Batches and Models API.

    State advances lazily from ``clock.now()`` whenever something is read.
    """

    def __init__(self, config: EmulatorConfig | None = None, faults: Faults | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock: Clock = self.config.clock or ScaledClock(self.config.time_scale)
        self.faults = faults or Faults()
        self.batch_records: dict[str, MessageBatchRecord] = {}
        self.deleted: set[str] = set()
        self.request_log: list[RequestRecord] = []
        self.request_headers: list[dict[str, str]] = []  # same index as request_log; lowercase names
        self.cache = PromptCache()
        self._models_at_start = dict(self.config.models)
        self._lock = threading.RLock()
        self._fault_rng = random.Random(f"{self.config.seed}|faults")
        self._id_rng = random.Random(f"{self.config.seed}|ids")

    # -- inspection ----------------------------------------------------------------------
    @property
    def batches(self) -> dict[str, dict[str, Any]]:
        """Every batch (deleted ones too) as its current MessageBatch object, by id."""
        with self._lock:
            records = list(self.batch_records.values())
        return {rec.id: self._refresh(rec, "") for rec in records}

    def custom_ids(self, batch_id: str) -> list[str]:
        """The custom_ids a batch was sent, in order."""
        return [item.custom_id for item in self.batch_records[batch_id].items]

    def retire(self, model: str) -> None:
        """Anthropic retires ``model`` now (alias or id): new requests naming it error with not_found_error."""
        with self._lock:
            for alias, spec in list(self.config.models.items()):
                if model in (alias, spec.id):
                    self.config.models[alias] = dataclasses.replace(spec, lifecycle="retired")

    def reset(self) -> None:
        """Forget all batches, cached prompts and logged requests; clear the faults and retirements."""
        with self._lock:
            self.batch_records.clear()
            self.deleted.clear()
            self.request_log.clear()
            self.request_headers.clear()
            self.cache.clear()
            self.faults.clear()
            self.config.models = dict(self._models_at_start)
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
                return rate_limited(faults.rate_limit_retry_after)
            if faults.overloaded_next > 0:
                faults.overloaded_next -= 1
                return overloaded(faults.overloaded_retry_after)
            if faults.server_error_next > 0:
                faults.server_error_next -= 1
                return server_error(faults.server_error_status)
            if faults.error_rate > 0 and self._fault_rng.random() < faults.error_rate:
                pick = self._fault_rng.random()
                if pick < 1 / 3:
                    return rate_limited(faults.rate_limit_retry_after)
                if pick < 2 / 3:
                    return overloaded(faults.overloaded_retry_after)
                return server_error(faults.server_error_status)
        return None

    def request_id(self) -> str:
        with self._lock:
            return new_id("req_", self._id_rng)

    # -- batches ---------------------------------------------------------------------------
    def create_batch(self, payload: Any, base_url: str) -> dict[str, Any]:
        cfg = self.config
        items = check_batch(payload, cfg.max_requests)
        with self._lock:
            now = self.clock.now()
            rec = MessageBatchRecord(
                id=new_id("msgbatch_", self._id_rng),
                created_at=now,
                expires_at=now + cfg.window_seconds,
                archives_at=now + cfg.results_seconds,
                processing_seconds=cfg.processing_seconds + cfg.per_request_seconds * len(items),
                cancel_seconds=cfg.cancel_seconds,
                items=items,
            )
            if self.faults.expire_next_batches > 0:
                self.faults.expire_next_batches -= 1
                rec.expire_fraction = self.faults.expire_after_fraction
            self.batch_records[rec.id] = rec
        return self._refresh(rec, base_url)

    def _record(self, batch_id: str) -> MessageBatchRecord:
        with self._lock:
            rec = self.batch_records.get(batch_id)
            if rec is None or batch_id in self.deleted:
                raise not_found("Message Batch", batch_id)
            return rec

    def retrieve_batch(self, batch_id: str, base_url: str) -> dict[str, Any]:
        return self._refresh(self._record(batch_id), base_url)

    def _limit(self, limit: int | None) -> int:
        size = self.config.list_default_limit if limit is None else limit
        if not 1 <= size <= self.config.list_max_limit:
            raise invalid(f"limit: Input should be between 1 and {self.config.list_max_limit}")
        return size

    def list_batches(self, after: str | None, before: str | None, limit: int | None, base_url: str) -> dict[str, Any]:
        size = self._limit(limit)
        with self._lock:
            records = [r for r in reversed(self.batch_records.values()) if r.id not in self.deleted]
        page = _page(records, [r.id for r in records], after, before, size)
        page["data"] = [self._refresh(r, base_url) for r in page["data"]]
        return page

    def cancel_batch(self, batch_id: str, base_url: str) -> dict[str, Any]:
        rec = self._record(batch_id)
        with rec.lock:
            now = self.clock.now()
            status = phase_at(rec, now).status
            if status == "in_progress":
                rec.cancel_requested_at = now
            elif status == "ended" and self.config.cancel_ended_is_error:
                raise invalid(f"Message Batch {batch_id} has already ended and cannot be canceled.")
            return self._refresh(rec, base_url)

    def delete_batch(self, batch_id: str) -> dict[str, Any]:
        rec = self._record(batch_id)
        with rec.lock:
            if phase_at(rec, self.clock.now()).status != "ended":
                raise invalid(
                    f"Message Batch {batch_id} cannot be deleted while it is in progress; cancel it first and wait "
                    "for it to end."
                )
        with self._lock:
            self.deleted.add(batch_id)
        return {"id": batch_id, "type": "message_batch_deleted"}

    def results(self, batch_id: str) -> bytes:
        rec = self._record(batch_id)
        self._refresh(rec, "")
        now = self.clock.now()
        if not rec.finished:
            raise invalid(f"Message Batch {batch_id} has not finished processing; results are not available yet.")
        if now >= rec.archives_at:
            raise not_found("Results for Message Batch", f"{batch_id} (archived)")
        return rec.results

    # -- models ----------------------------------------------------------------------------
    def _model_info(self, spec: ModelSpec) -> dict[str, Any]:
        yes, no = {"supported": True}, {"supported": False}
        capabilities = {
            "batch": yes,
            "citations": yes,
            "code_execution": yes,
            "context_management": {"supported": True, "clear_tool_uses_20250919": yes},
            "effort": {"supported": False, "low": no, "medium": no, "high": no, "max": no},
            "image_input": yes,
            "pdf_input": yes,
            "server_tools": {"supported": True, "code_execution": yes, "web_search": yes},
            "structured_outputs": yes if spec.structured_outputs else no,
            "thinking": {
                "supported": True,
                "types": {"adaptive": no, "between_tools": no, "disabled": yes, "enabled": yes},
            },
        }
        return {
            "id": spec.id,
            "type": "model",
            "display_name": spec.display_name,
            "created_at": spec.created_at,
            "max_input_tokens": spec.max_input_tokens,
            "max_tokens": spec.max_tokens,
            "capabilities": capabilities,
            "lifecycle": spec.lifecycle,
            "deprecated_at": spec.deprecated_at,
            "retires_at": spec.retires_at,
            "line": spec.line,
        }

    def list_models(
        self, after: str | None, before: str | None, limit: int | None, lifecycle: list[str]
    ) -> dict[str, Any]:
        size = self._limit(limit)
        for stage in lifecycle:
            if stage not in LIFECYCLES:
                raise invalid(f"lifecycle: Input should be 'active', 'deprecated' or 'retired', got '{stage}'")
        wanted = set(lifecycle) or {"active", "deprecated"}
        specs = sorted(self.config.models.values(), key=lambda s: (s.created_at, s.id), reverse=True)
        specs = [spec for spec in specs if spec.lifecycle in wanted]
        page = _page([self._model_info(s) for s in specs], [s.id for s in specs], after, before, size)
        return page

    def retrieve_model(self, model: str) -> dict[str, Any]:
        spec = self.config.lookup(model)
        if spec is None:
            raise ApiError(404, f"model: {model}")
        return self._model_info(spec)

    # -- lazy progress -----------------------------------------------------------------------
    def _refresh(self, rec: MessageBatchRecord, base_url: str) -> dict[str, Any]:
        """Bring ``rec`` up to the clock (running newly due requests) and render it."""
        with rec.lock:
            now = self.clock.now()
            phase = phase_at(rec, now)
            for index in range(len(rec.outcomes), phase.ran):
                rec.outcomes.append(self._run(rec, index))
            if phase.status == "ended" and not rec.finished:
                self._finish(rec, phase)
            return render(rec, phase, base_url, now)

    def _run(self, rec: MessageBatchRecord, index: int) -> behaviour.Outcome:
        item = rec.items[index]
        faults = self.faults
        with self._lock:
            kind = None
            if faults.errored_results_next > 0:
                faults.errored_results_next, kind = faults.errored_results_next - 1, "api_error"
            elif faults.overloaded_results_next > 0:
                faults.overloaded_results_next, kind = faults.overloaded_results_next - 1, "overloaded_error"
        if kind is not None:
            rng = request_rng(self.config.seed, item.custom_id, "fault")
            message = "Internal server error" if kind == "api_error" else "Overloaded"
            return behaviour.errored(item.custom_id, kind, message, rng)
        return behaviour.simulate(self.config, item, rec.run_time(index), self.cache)

    def _finish(self, rec: MessageBatchRecord, phase: Phase) -> None:
        """Write the results file once the batch has ended."""
        outcomes = rec.outcomes[: phase.ran]
        for item in rec.items[phase.ran :]:
            outcomes.append(behaviour.result_line(item.custom_id, {"type": phase.unrun}))
        rec.tally = {}
        for outcome in outcomes:
            rec.tally[outcome.kind] = rec.tally.get(outcome.kind, 0) + 1
        order = request_rng(self.config.seed, "order", rec.id)
        lines = [outcome.data for outcome in outcomes]
        order.shuffle(lines)  # "not guaranteed to be in the same order as requests"
        with self._lock:
            corrupt, self.faults.malformed_result_lines = self.faults.malformed_result_lines, 0
            dropped, self.faults.missing_result_lines = self.faults.missing_result_lines, 0
        for index in order.sample(range(len(lines)), min(len(lines), corrupt)):
            lines[index] = lines[index][: len(lines[index]) // 2]  # cut mid-object: not JSON
        for _ in range(min(dropped, len(lines))):
            lines.pop(order.randrange(len(lines)))
        rec.results = b"".join(line + b"\n" for line in lines)
        rec.outcomes = []
        rec.finished = True


__all__ = ["Emulator", "RequestRecord", "rfc3339"]
