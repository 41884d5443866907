"""manage.py seed_prs N: N made-up pull requests to analyse (a demo's data, not the monolith's)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from reviews.models import PullRequest

REPOS = ["acme/payments", "acme/web", "acme/infra"]
CHANGES = [
    ("Fix race in payment retry worker", "+with lock(order_id):\n+    charge(order)\n-charge(order)"),
    ("Add CSV export of invoices", "+def export_csv(invoices):\n+    ..."),
    ("Refactor settings loading", "-SETTINGS = load()\n+SETTINGS = Settings.from_env()"),
    ("Document the deploy steps", "+## Deploy\n+Run make release."),
]


class Command(BaseCommand):
    help = "Create N made-up pull requests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("count", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        rows = []
        first = PullRequest.objects.count()  # numbered after those made before
        for n in range(first, first + options["count"]):
            title, diff = CHANGES[n % len(CHANGES)]
            rows.append(
                PullRequest(
                    repo=REPOS[n % len(REPOS)],
                    number=26000 + n,
                    title=title,
                    body=f"{title}. Part {n} of the backlog.",
                    diff=diff,
                )
            )
        PullRequest.objects.bulk_create(rows)
        self.stdout.write(f"Created {len(rows)} pull requests.")
