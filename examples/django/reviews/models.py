from django.db import models


class PullRequest(models.Model):
    repo = models.CharField(max_length=200)  # acme/payments
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    diff = models.TextField(blank=True)

    # What the LLM analysis stored: a summary, or why there is none.
    summary = models.TextField(blank=True)
    risk = models.CharField(max_length=10, blank=True)
    categories = models.JSONField(default=list, blank=True)
    needs_migration = models.BooleanField(null=True, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)
    analysed_by = models.CharField(max_length=200, blank=True)  # the model that answered
    analysis_cost_usd = models.DecimalField(max_digits=20, decimal_places=12, null=True, blank=True)
    sent_in_batch = models.CharField(max_length=64, blank=True)  # rows_sent: the batch it went out in
    analysed_in_batch = models.CharField(max_length=64, blank=True)  # the batch its stored result came from
    times_stored = models.PositiveIntegerField(default=0)  # store_result + store_failure calls: once per run

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repo", "number"], name="one_row_per_pull_request")]

    def __str__(self) -> str:
        return f"{self.repo}#{self.number}"


class BatchNotice(models.Model):
    """What the batch_finished receiver saw: one per finished run of a batch."""

    batch_id = models.CharField(max_length=64)
    via = models.CharField(max_length=16)  # webhook | poll | import
    stored = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.batch_id} by {self.via}"
