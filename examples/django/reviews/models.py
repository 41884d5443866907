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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repo", "number"], name="one_row_per_pull_request")]

    def __str__(self) -> str:
        return f"{self.repo}#{self.number}"
