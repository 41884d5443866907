"""The one way workers run, in the API process (WORKERS_ENABLED=true) or alone (`python -m service worker`).

A WorkerRunner supervises the worker loops side by side (the batch loop, and any other loop added to
`default_loops`), plus the heartbeat that tells every replica this worker is alive. A loop that crashes is
logged and restarted after a pause. Stopping: no new claims at once; the steps under way get
WORKER_STOP_GRACE_SECONDS to finish, then they are cancelled; whatever the worker still holds is released,
so another worker can take it over at once rather than when its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from service.providers.protocol import Providers
from service.settings import Settings
from service.store import Database
from service.store import fleet as fleet_store
from service.store import leases as leases_store
from service.webhooks.ssrf import CallbackGuard
from service.workers.batch_loop import run_worker
from service.workers.context import WorkerContext
from service.workers.model_sync import run_model_sync
from service.workers.wakeups import run_wake_listener
from service.workers.webhook_loop import webhook_loop

logger = logging.getLogger(__name__)

RESTART_PAUSE_SECONDS = (1.0, 30.0)  # first and longest pause before a crashed loop is restarted
# A worker row not renewed for this many leases belongs to a dead process: it is deleted.
STALE_WORKER_LEASES = 20

LoopFunction = Callable[[WorkerContext, asyncio.Event], Awaitable[None]]


@dataclass(frozen=True)
class WorkerLoop:
    """A long-running loop: it works until `stop` is set, then returns (between two steps, not in one)."""

    name: str
    run: LoopFunction


def default_loops(callback_guard: CallbackGuard | None = None) -> list[WorkerLoop]:
    """Every loop a worker runs. Another kind of background work is one more entry here."""
    return [
        WorkerLoop("batches", run_worker),
        WorkerLoop("webhooks", webhook_loop(callback_guard)),
        WorkerLoop("models", run_model_sync),
        WorkerLoop("wakeups", run_wake_listener),
    ]


class WorkerRunner:
    def __init__(self, ctx: WorkerContext, loops: Sequence[WorkerLoop], *, grace_seconds: float) -> None:
        self.ctx = ctx
        self.loops = list(loops)
        self.grace_seconds = grace_seconds
        self.stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _announce(self) -> None:
        stale_after = timedelta(seconds=self.ctx.lease_seconds * STALE_WORKER_LEASES)
        await fleet_store.announce_worker(
            self.ctx.sessions, self.ctx.worker_id, [loop.name for loop in self.loops], stale_after=stale_after
        )

    def wake(self) -> None:
        """A submission committed, or a cancel: sweep now rather than at the next idle tick."""
        self.ctx.wake()

    async def start(self) -> None:
        try:
            await self._announce()
        except Exception as error:  # the heartbeat retries; a worker works without being counted
            logger.warning("could not announce worker %s: %s", self.ctx.worker_id, error)
        self._tasks = [asyncio.create_task(self._supervise(loop), name=f"worker-{loop.name}") for loop in self.loops]
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="worker-heartbeat"))
        logger.info(
            "worker %s running %s (lease %gs)",
            self.ctx.worker_id,
            ", ".join(loop.name for loop in self.loops),
            self.ctx.lease_seconds,
        )

    async def stop(self) -> None:
        """Stop claiming, give the current steps the grace period, then cancel them and release every lease."""
        self.stop_event.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=self.grace_seconds)
            if pending:
                logger.warning("steps still running after %gs; cancelling them", self.grace_seconds)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        await self._release_everything()
        logger.info("worker %s stopped", self.ctx.worker_id)

    async def _release_everything(self) -> None:
        try:
            await leases_store.release_everything(self.ctx.sessions, self.ctx.worker_id)
            await fleet_store.retire_worker(self.ctx.sessions, self.ctx.worker_id)
        except Exception as error:  # the leases run out by themselves; say why they were not freed now
            logger.warning("could not release the leases of %s: %s", self.ctx.worker_id, error)

    async def _supervise(self, loop: WorkerLoop) -> None:
        pause = RESTART_PAUSE_SECONDS[0]
        while not self.stop_event.is_set():
            try:
                await loop.run(self.ctx, self.stop_event)
            except Exception:
                logger.exception("worker loop %s crashed; restarting it in %.0fs", loop.name, pause)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), timeout=pause)
                pause = min(pause * 2, RESTART_PAUSE_SECONDS[1])

    async def _heartbeat(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=self.ctx.lease_seconds / 3)
            if self.stop_event.is_set():
                return
            try:
                await self._announce()
            except Exception as error:
                logger.warning("worker heartbeat failed: %s", error)


async def run_worker_process(settings: Settings, providers: Providers, provider_label: str) -> int:
    """`python -m service worker`: migrate, run the loops until SIGTERM or SIGINT, stop cleanly, exit 0."""
    if provider_label == "emulator":
        logger.warning(
            "GROQ_API_KEY is not set: this worker talks to its own in-process emulator, which no other process "
            "sees; point GROQ_BASE_URL at a shared emulator (python -m service.emulator) and set any key instead"
        )
    database = Database.connect(settings.database_url)
    try:
        await database.migrate()
        ctx = WorkerContext.build(settings, database.workers, providers)
        runner = WorkerRunner(ctx, default_loops(), grace_seconds=settings.worker_stop_grace_seconds)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await runner.start()
        await stop.wait()
        logger.info("worker %s: stop requested; no new claims", ctx.worker_id)
        await runner.stop()
    finally:
        await providers.close()
        await database.dispose()
    return 0
