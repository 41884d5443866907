"""callback_url at submit (signing key present, SSRF guard) and POST /batches/{id}/webhook/redeliver."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.auth import PrincipalDep
from service.api.deps import SessionDep, StateDep
from service.batches.finishing import redeliver
from service.kit.problems import invalid
from service.views.response_bodies import WebhookOut
from service.views.webhooks import webhook_out
from service.webhooks.ssrf import CallbackRefused, parse_callback_url

router = APIRouter(prefix="/batches", tags=["batches"])


async def check_callback_url(state: StateDep, callback_url: str) -> None:
    """422 unless the URL is well formed, webhooks can be signed, and the URL passes the SSRF guard (which
    checks it again at every delivery)."""
    try:
        parse_callback_url(callback_url)
        if state.settings.webhook_secret is None:
            raise CallbackRefused(
                "callback_url needs WEBHOOK_SECRET to be set on the service (webhooks are always signed); "
                "leave callback_url out and poll GET /batches/{id}, or ask for WEBHOOK_SECRET to be configured"
            )
        await state.callback_guard.vet(callback_url)
    except CallbackRefused as refusal:
        raise invalid(str(refusal), field="callback_url") from None


@router.post(
    "/{batch_id}/webhook/redeliver",
    status_code=202,
    response_model=WebhookOut,
    summary="Send the batch's last webhook event again (same webhook-id, new signature)",
    responses={409: {"description": "The batch has not finished yet"}},
)
async def redeliver_webhook(batch_id: str, session: SessionDep, state: StateDep, principal: PrincipalDep) -> WebhookOut:
    await redeliver(session, state.config, batch_id, principal.scope)
    await session.commit()
    view = await webhook_out(session, batch_id)
    assert view is not None
    return view
