"""GET /metrics: open like /healthz, so Prometheus scrapes it without a token (it shows counts, never data)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from service.api.deps import StateDep
from service.views.metrics import CONTENT_TYPE, database_snapshot, render

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get(
    "/metrics",
    summary="Prometheus metrics: this process's counters, and the database's state read at scrape time",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(state: StateDep) -> Response:
    try:
        async with state.sessions() as session:
            snapshot = await database_snapshot(session)
    except Exception as error:  # the scrape still answers, with llm_batch_database_up 0
        logger.warning("metrics: the database did not answer: %s", error)
        snapshot = None
    return Response(render(snapshot), media_type=CONTENT_TYPE)
