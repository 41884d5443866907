"""The emulator's store: files, batches, faults and the request log. Thread-safe, transport-free."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

from groq_emulator import behaviour
from groq_emulator.clock import Clock, ScaledClock
from groq_emulator.config import CHAT_ENDPOINT, EmulatorConfig, Faults
from groq_emulator.errors import ApiError, not_found, rate_limited, server_error
from groq_emulator.ids import new_id
from groq_emulator.lifecycle import CANCELLABLE, BatchRecord, Phase, phase_at, render
from groq_emulator.validation import validate_input

_WINDOW_RE = re.compile(r"^(\d+)([hd])$")


class RequestRecord(NamedTuple):
    method: str
    path: str
    status: int


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    created_at: float
    content: bytes

    def to_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
        }


def count_lines(data: bytes) -> int:
    """Lines as a text editor counts them: newlines, plus a last line without one."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def parse_window(window: Any) -> int:
    """Seconds in a completion window between ``24h`` and ``7d``; ApiError otherwise."""
    match = _WINDOW_RE.match(window) if isinstance(window, str) else None
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1) if match else 0
    if not 24 <= hours <= 168:
        message = f"Invalid value: '{window}'. completion_window must be a duration between 24h and 7d"
        raise ApiError(400, message, param="completion_window")
    return hours * 3600


def _page(data: list[dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    return {"object": "list", "data": data, "paging": {"next_cursor": next_cursor}}


class Emulator:
    """A faithful in-memory stand-in for Groq's Files + Batches API.

    State advances lazily from ``clock.now()`` whenever something is read.
    """

    def __init__(self, config: EmulatorConfig | None = None, faults: Faults | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock: Clock = self.config.clock or ScaledClock(self.config.time_scale)
        self.faults = faults or Faults()
        self.files: dict[str, StoredFile] = {}
        self.batch_records: dict[str, BatchRecord] = {}
        self.request_log: list[RequestRecord] = []
        self.request_headers: list[dict[str, str]] = []  # same index as request_log; lowercase names
        self._lock = threading.RLock()
        self._fault_rng = random.Random(f"{self.config.seed}|faults")

    # -- inspection ----------------------------------------------------------------------
    @property
    def batches(self) -> dict[str, dict[str, Any]]:
        """Every batch as its current Batch object (incl. metadata and status), by id."""
        with self._lock:
            records = list(self.batch_records.values())
        return {rec.id: self._refresh(rec) for rec in records}

    def reset(self) -> None:
        """Forget all files, batches and logged requests, and clear the faults."""
        with self._lock:
            self.files.clear()
            self.batch_records.clear()
            self.request_log.clear()
            self.request_headers.clear()
            self.faults.clear()
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
            if faults.server_error_next > 0:
                faults.server_error_next -= 1
                return server_error(faults.server_error_status)
            if faults.error_rate > 0 and self._fault_rng.random() < faults.error_rate:
                if self._fault_rng.random() < 0.5:
                    return rate_limited(faults.rate_limit_retry_after)
                return server_error(faults.server_error_status)
        return None

    # -- files -----------------------------------------------------------------------------
    def upload_file(self, filename: str, purpose: str, data: bytes) -> dict[str, Any]:
        if purpose != "batch":
            raise ApiError(400, f"Invalid value: '{purpose}'. Supported values are: 'batch'", param="purpose")
        if not filename.lower().endswith(".jsonl"):
            message = f"Invalid file format for '{filename}'. Only .jsonl files are supported for batch."
            raise ApiError(400, message, code="invalid_file_format", param="file")
        if len(data) > self.config.max_bytes:
            message = f"File is too large: {len(data)} bytes; the maximum is {self.config.max_bytes} bytes."
            raise ApiError(400, message, code="file_too_large", param="file")
        lines = count_lines(data)
        if lines > self.config.max_lines:
            message = f"File has {lines} lines; a batch input file may have at most {self.config.max_lines}."
            raise ApiError(400, message, code="too_many_lines", param="file")
        with self._lock:
            stored = StoredFile(new_id("file_", self.clock.now()), filename, "batch", self.clock.now(), data)
            self.files[stored.id] = stored
            return stored.to_object()

    def _file(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            raise not_found("File", file_id)
        return stored

    def list_files(self) -> dict[str, Any]:
        with self._lock:
            return {"object": "list", "data": [f.to_object() for f in self.files.values()]}

    def file_info(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            return self._file(file_id).to_object()

    def file_content(self, file_id: str) -> bytes:
        with self._lock:
            return self._file(file_id).content

    def delete_file(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            self._file(file_id)
            del self.files[file_id]
            return {"id": file_id, "object": "file", "deleted": True}

    # -- batches ---------------------------------------------------------------------------
    def create_batch(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ApiError(400, "Request body must be a JSON object")
        file_id = payload.get("input_file_id")
        if not isinstance(file_id, str) or not file_id:
            raise ApiError(400, "Missing required parameter: 'input_file_id'", param="input_file_id")
        endpoint = payload.get("endpoint")
        if endpoint != CHAT_ENDPOINT:
            message = f"Invalid value: '{endpoint}'. Supported values are: '{CHAT_ENDPOINT}'"
            raise ApiError(400, message, param="endpoint")
        window = payload.get("completion_window")
        window_seconds = parse_window(window)
        metadata = payload.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ApiError(400, "metadata must be an object", param="metadata")
        cfg = self.config
        with self._lock:
            stored = self._file(file_id)
        if stored.purpose != "batch":
            message = f"File '{file_id}' has purpose '{stored.purpose}'; a batch needs purpose 'batch'"
            raise ApiError(400, message, param="input_file_id")
        checked = validate_input(stored.content, cfg.max_reported_errors)
        with self._lock:
            now = self.clock.now()
            rec = BatchRecord(
                id=new_id("batch_", now),
                input_file_id=file_id,
                endpoint=CHAT_ENDPOINT,
                completion_window=str(window),
                metadata=metadata,
                created_at=now,
                expires_at=now + window_seconds,
                validating_seconds=cfg.validating_seconds,
                processing_seconds=cfg.processing_seconds + cfg.per_line_seconds * len(checked.requests),
                finalizing_seconds=cfg.finalizing_seconds,
                cancel_seconds=cfg.cancel_seconds,
                requests=checked.requests,
            )
            if self.faults.fail_next_batches > 0:
                self.faults.fail_next_batches -= 1
                rec.errors = [
                    {
                        "code": "validation_failed",
                        "message": "The input file could not be validated. Please try again.",
                        "param": None,
                        "line": None,
                    }
                ]
            elif not checked.ok:
                rec.errors = checked.errors
            elif cfg.decommissioned_fails_batch and (gone := self._decommissioned_lines(checked.requests)):
                rec.errors = gone
            elif self.faults.expire_next_batches > 0:
                self.faults.expire_next_batches -= 1
                rec.expire_fraction = self.faults.expire_after_fraction
            self.batch_records[rec.id] = rec
        return self._refresh(rec)

    def _decommissioned_lines(self, requests: list[Any]) -> list[dict[str, Any]]:
        """Validation errors for lines naming a decommissioned model (when the batch, not the line, fails)."""
        errors = []
        for request in requests:
            model = request.body.get("model")
            if model in self.config.decommissioned_models:
                message = behaviour.DECOMMISSIONED.format(model=model)
                errors.append(
                    {"code": "model_decommissioned", "message": message, "param": "body.model", "line": request.line}
                )
            if len(errors) >= self.config.max_reported_errors:
                break
        return errors

    def list_models(self) -> dict[str, Any]:
        created = int(self.clock.now())
        data = [
            {
                "id": model,
                "object": "model",
                "created": created,
                "owned_by": model.split("/", 1)[0] if "/" in model else "Meta",
                "active": True,
                "context_window": 131072,
                "public_apps": None,
            }
            for model in self.config.listed_models()
        ]
        return {"object": "list", "data": data}

    def _record(self, batch_id: str) -> BatchRecord:
        with self._lock:
            rec = self.batch_records.get(batch_id)
        if rec is None:
            raise not_found("Batch", batch_id)
        return rec

    def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        return self._refresh(self._record(batch_id))

    def list_batches(self, ids: list[str], cursor: str | None, limit: int | None) -> dict[str, Any]:
        cfg = self.config
        if ids:
            wanted = list(dict.fromkeys(ids))
            if len(wanted) > cfg.max_ids_per_list:
                raise ApiError(400, f"At most {cfg.max_ids_per_list} ids may be requested at once", param="id")
            with self._lock:
                recs = [self.batch_records[i] for i in wanted if i in self.batch_records]
            return _page([self._refresh(r) for r in recs], None)
        size = cfg.list_default_limit if limit is None else limit
        if not 1 <= size <= cfg.list_max_limit:
            raise ApiError(400, f"limit must be between 1 and {cfg.list_max_limit}", param="limit")
        with self._lock:
            ordered = list(reversed(self.batch_records.values()))  # newest first
        start = 0
        if cursor:
            after = cursor.removeprefix("cursor_")
            positions = [i for i, r in enumerate(ordered) if r.id == after]
            if not positions:
                raise ApiError(400, f"Invalid cursor: '{cursor}'", param="cursor")
            start = positions[0] + 1
        page = ordered[start : start + size]
        next_cursor = f"cursor_{page[-1].id}" if page and start + size < len(ordered) else None
        return _page([self._refresh(r) for r in page], next_cursor)

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        rec = self._record(batch_id)
        with rec.lock:
            now = self.clock.now()
            current = phase_at(rec, now)
            if current.status not in CANCELLABLE and current.status != "cancelling":
                message = f"Batch {batch_id} cannot be cancelled because its status is '{current.status}'"
                raise ApiError(400, message)
            if current.status != "cancelling":
                rec.cancel_requested_at = now
            return self._refresh(rec)

    # -- lazy progress -----------------------------------------------------------------------
    def _refresh(self, rec: BatchRecord) -> dict[str, Any]:
        """Bring ``rec`` up to the clock (simulating newly finished lines) and render it.

        Locking: a batch's own lock first, then (briefly) the store lock; never the other way round.
        """
        with rec.lock:
            phase = phase_at(rec, self.clock.now())
            for index in range(len(rec.ok_prefix) - 1, phase.processed):
                result = behaviour.simulate(self.config, rec.requests[index], rec.line_time(index))
                rec.results.append(result)
                rec.ok_prefix.append(rec.ok_prefix[-1] + (1 if result.success else 0))
            if phase.terminal and phase.status != "failed" and not rec.finished:
                self._finish(rec, phase)
            return render(rec, phase)

    def _finish(self, rec: BatchRecord, phase: Phase) -> None:
        """Write the output and error files once the batch reaches a terminal state."""
        ended = phase.ended_at or self.clock.now()
        first = rec.requests[0].custom_id if rec.requests else ""
        order = behaviour.request_rng(self.config.seed, "order", str(rec.total), first)
        ok = [r.data for r in rec.results[: phase.processed] if r.success]
        bad = [r.data for r in rec.results[: phase.processed] if not r.success]
        code = "batch_expired" if phase.status == "expired" else "batch_cancelled"
        for request in rec.requests[phase.processed :]:
            bad.append(behaviour.unprocessed_line(request.custom_id, code, order, ended))
        order.shuffle(ok)
        order.shuffle(bad)
        with self._lock:
            corrupt = self.faults.malformed_output_lines if phase.status == "completed" and ok else 0
            if corrupt:
                self.faults.malformed_output_lines = 0
        for index in order.sample(range(len(ok)), min(len(ok), corrupt)):
            ok[index] = ok[index][: len(ok[index]) // 2]  # cut mid-object: not JSON
        if ok:
            rec.output_file_id = self._store_output(rec, "output", ok, ended)
        if bad:
            rec.error_file_id = self._store_output(rec, "error", bad, ended)
        rec.results = []  # the files hold the lines now; counts stay in ok_prefix
        rec.finished = True

    def _store_output(self, rec: BatchRecord, kind: str, lines: list[bytes], at: float) -> str:
        content = b"\n".join(lines) + b"\n"
        stored = StoredFile(new_id("file_", at), f"{rec.id}_{kind}.jsonl", "batch_output", at, content)
        with self._lock:
            self.files[stored.id] = stored
        return stored.id
