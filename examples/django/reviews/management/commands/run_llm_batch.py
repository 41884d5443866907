"""manage.py run_llm_batch [--limit N] [--with-fallback] [--poll] | --retry-batch ID [--poll]: the pull
requests without an analysis, analysed through llm-batch; the base command does the rest (rows in flight are
not sent again; each result is stored once, by the webhook or by --poll)."""

from typing import Any

from django.db.models import QuerySet
from llm_batch_client import Batch, BatchOptions, ResultRow
from llm_batch_client.django.command import LlmBatchCommand

from reviews.analysis import PARAMS, review_messages
from reviews.models import PullRequest


class Command(LlmBatchCommand[PullRequest]):
    help = "Analyse the pull requests that have no summary yet, as one llm-batch batch."
    batch_options = BatchOptions(params=PARAMS, metadata={"source": "reviews"})

    def get_queryset(self) -> QuerySet[PullRequest]:
        return PullRequest.objects.filter(summary="", failure_code="").order_by("pk")  # failures: --retry-batch

    def to_item(self, pr: PullRequest) -> dict[str, Any]:
        return {
            "custom_id": f"{pr.repo}#{pr.number}",  # such as acme/payments#26313
            "body": {"messages": review_messages(pr.title, pr.body, pr.diff), "max_completion_tokens": 2048},
        }

    def rows_sent(self, batch: Batch, rows: QuerySet[PullRequest]) -> None:
        rows.update(sent_in_batch=batch.id)

    def store_result(self, pr: PullRequest, result: ResultRow) -> None:
        analysis = result.output
        pr.summary = analysis["summary"]
        pr.risk = analysis["risk"]
        pr.categories = analysis["categories"]
        pr.needs_migration = analysis["needs_migration"]
        pr.failure_code = pr.failure_message = ""
        self._store(pr, result)

    def store_failure(self, pr: PullRequest, result: ResultRow) -> None:
        pr.failure_code = result.error.code if result.error else result.status
        pr.failure_message = (result.error.message or "") if result.error else ""
        self._store(pr, result)

    def _store(self, pr: PullRequest, result: ResultRow) -> None:
        pr.analysed_by = result.model or ""
        pr.analysis_cost_usd = result.cost_usd  # exact: the rows add up to the batch's cost
        pr.analysed_in_batch = result.batch_id or ""
        pr.times_stored += 1  # a counter, as a team's `cost +=` or notification would: once per run
        pr.save()
