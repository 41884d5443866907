"""The signals of the llm-batch Django app.

`batch_finished`: a run of a batch (its submission, or a retry) finished and its results are stored: sent once
per run, whichever path stored them (the webhook, `--poll`, a later run of the command, `--import-batch`), with
`sender` the command's class, `batch` (the finished llm_batch_client.Batch), `tally` (what was stored:
`.stored`, `.failed`, `.unmatched`), `via` ("webhook", "poll" or "import") and `event` (the WebhookEvent when
the webhook brought it, else None). Receivers run in the transaction that records the results as stored: if
one raises, that transaction rolls back and the next path to come (the service delivers the webhook again;
`--poll`; the next run) sends it again.

`webhook_received`: every verified webhook event, once per webhook-id, with `event` (a WebhookEvent), whether
or not a command owns its batch; sent after the batch's results are stored, in the transaction that records
the webhook-id.

    @receiver(batch_finished)
    def on_batch_finished(sender, batch, tally, via, **kwargs):
        ...
"""

from __future__ import annotations

from django.dispatch import Signal

batch_finished = Signal()
webhook_received = Signal()
