"""GET /metrics: counts, never data, but of every tenant (batches, items, cost, provider calls). Open while
authentication is off; with API_TOKENS or ADMIN_TOKENS set it needs an admin token, as another tenant's activity
is not a tenant's to see (Prometheus sends it: `authorization: {credentials: <token>}` in the scrape config)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from service.api.auth import UNAUTHORIZED_RESPONSE, PrincipalDep
from service.api.deps import StateDep
from service.kit.problems import Problem
from service.views.metrics import CONTENT_TYPE, database_snapshot, render

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get(
    "/metrics",
    summary="Prometheus metrics: this process's counters, and the database's state read at scrape time",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}},
        **UNAUTHORIZED_RESPONSE,
        403: {"description": "A tenant's token: the metrics are every tenant's, for an admin token"},
    },
)
async def metrics(state: StateDep, principal: PrincipalDep) -> Response:
    if not principal.admin:
        raise Problem(
            403,
            "forbidden",
            "Forbidden",
            "/metrics reports every tenant's batches and cost: it needs one of the ADMIN_TOKENS",
        )
    try:
        async with state.sessions() as session:
            snapshot = await database_snapshot(session)
    except Exception as error:  # the scrape still answers, with llm_batch_database_up 0
        logger.warning("metrics: the database did not answer: %s", error)
        snapshot = None
    return Response(render(snapshot), media_type=CONTENT_TYPE)
