"""Synthetic pull-request analysis requests for ``make demo``: what the Django monolith sends, made up.

Everything is drawn from ``random.Random(seed)``, so a seed always gives the same payload.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

DEFAULT_COUNT = 200
DEFAULT_SEED = 26313
MAX_COMPLETION_TOKENS = 2048
FIRST_PR_NUMBER = 26313
SCHEMA_NAME = "pr_analysis"

CATEGORIES = ["bugfix", "feature", "refactor", "docs", "tests", "chore", "security", "performance"]
RISK_LEVELS = ["low", "medium", "high"]
TEST_COVERAGE = ["none", "partial", "good"]

SYSTEM_PROMPT = (
    "You review pull requests for a large Django codebase (payments, orders, accounts, notifications "
    "and a public REST API). For each pull request you get its title, description and unified diff. "
    "Answer with a single JSON object and nothing else, with these fields:\n"
    "- summary: two or three sentences on what the change does and why;\n"
    "- risk_level: low, medium or high, the chance that merging it breaks production;\n"
    "- categories: one to three of bugfix, feature, refactor, docs, tests, chore, security, performance;\n"
    "- breaking_change: true when callers, the API or stored data must change with it;\n"
    "- files_of_concern: up to five {path, reason} objects for the files a reviewer should read first;\n"
    "- test_coverage: none, partial or good, judged from the tests the diff adds or changes;\n"
    "- score: an integer from 0 (do not merge) to 10 (exemplary).\n"
    "Judge only what the diff shows; do not invent files."
)


def pr_analysis_schema() -> dict[str, Any]:
    """The JSON Schema of one PR analysis, as the monolith stores it (a fresh copy on every call)."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "summary",
            "risk_level",
            "categories",
            "breaking_change",
            "files_of_concern",
            "test_coverage",
            "score",
        ],
        "properties": {
            "summary": {"type": "string", "minLength": 1, "maxLength": 600},
            "risk_level": {"type": "string", "enum": list(RISK_LEVELS)},
            "categories": {
                "type": "array",
                "items": {"type": "string", "enum": list(CATEGORIES)},
                "minItems": 1,
                "maxItems": 3,
                "uniqueItems": True,
            },
            "breaking_change": {"type": "boolean"},
            "files_of_concern": {
                "type": "array",
                "maxItems": 5,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["path", "reason"],
                    "properties": {
                        "path": {"type": "string", "minLength": 1},
                        "reason": {"type": "string", "minLength": 1, "maxLength": 300},
                    },
                },
            },
            "test_coverage": {"type": "string", "enum": list(TEST_COVERAGE)},
            "score": {"type": "integer", "minimum": 0, "maximum": 10},
        },
    }


# -- the made-up codebase --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Area:
    app: str  # Django app (package) name
    nouns: tuple[str, ...]  # things the area deals with, for titles
    modules: tuple[str, ...]  # modules inside the app
    functions: tuple[str, ...]  # function names that appear in diffs


AREAS: tuple[_Area, ...] = (
    _Area(
        "payments",
        ("payment retry worker", "refund flow", "Stripe webhook handler", "invoice PDF export", "ledger"),
        ("tasks.py", "services.py", "webhooks.py", "models.py", "gateways/stripe.py", "ledger.py"),
        (
            "retry_failed_charge",
            "capture_payment",
            "issue_refund",
            "handle_stripe_event",
            "post_ledger_entry",
        ),
    ),
    _Area(
        "orders",
        ("checkout view", "order state machine", "cart totals", "shipping quote cache", "order export"),
        ("views.py", "state.py", "pricing.py", "serializers.py", "models.py", "exports.py"),
        ("transition_to", "compute_totals", "apply_discount", "quote_shipping", "export_orders_csv"),
    ),
    _Area(
        "accounts",
        ("password reset", "SSO login", "session middleware", "user deletion job", "permissions check"),
        ("views.py", "backends.py", "middleware.py", "models.py", "tasks.py", "permissions.py"),
        ("authenticate", "reset_password", "delete_user_data", "has_object_permission", "rotate_session"),
    ),
    _Area(
        "notifications",
        ("email digest", "push notification sender", "SMS rate limiter", "template rendering"),
        ("senders.py", "tasks.py", "templates.py", "throttling.py", "models.py"),
        ("send_digest", "render_template", "enqueue_push", "allow_request", "mark_delivered"),
    ),
    _Area(
        "api",
        ("v2 orders endpoint", "pagination", "API token auth", "OpenAPI schema", "rate limiting"),
        ("v2/views.py", "v2/serializers.py", "authentication.py", "pagination.py", "throttles.py"),
        (
            "get_queryset",
            "paginate_queryset",
            "authenticate_credentials",
            "to_representation",
            "get_cache_key",
        ),
    ),
    _Area(
        "search",
        ("product search indexer", "autocomplete", "search ranking", "reindex command"),
        ("indexer.py", "documents.py", "queries.py", "management/commands/reindex.py"),
        ("index_product", "build_query", "rank_results", "bulk_reindex", "suggest"),
    ),
    _Area(
        "core",
        ("settings loading", "structured logging", "health check", "feature flags", "Celery config"),
        ("settings/base.py", "logging.py", "health.py", "flags.py", "celery.py", "db/routers.py"),
        ("get_flag", "configure_logging", "db_for_read", "check_database", "setup_periodic_tasks"),
    ),
)

_TITLES: dict[str, tuple[str, ...]] = {
    "bugfix": (
        "Fix race in {noun}",
        "Fix off-by-one in {noun}",
        "Handle missing currency in {noun}",
        "Fix timezone bug in {noun}",
        "Stop {noun} from double-processing events",
    ),
    "feature": (
        "Add partial refunds to {noun}",
        "Support bulk actions in {noun}",
        "Add CSV export to {noun}",
        "Add audit trail for {noun}",
    ),
    "refactor": (
        "Extract service layer from {noun}",
        "Split {noun} into smaller functions",
        "Replace signals with explicit calls in {noun}",
    ),
    "docs": ("Document {noun} configuration", "Update README for {noun}", "Add docstrings to {noun}"),
    "tests": ("Add regression tests for {noun}", "Speed up {noun} tests with factories"),
    "chore": ("Bump Django to 5.1 in {noun}", "Remove dead code from {noun}", "Upgrade Celery for {noun}"),
    "security": (
        "Escape user input in {noun}",
        "Check object permissions in {noun}",
        "Rotate secrets used by {noun}",
    ),
    "performance": (
        "Avoid N+1 queries in {noun}",
        "Cache results of {noun}",
        "Add database index for {noun}",
    ),
}

_WHY: dict[str, tuple[str, ...]] = {
    "bugfix": (
        "Customers were charged twice when the lock expired while the retry was still running.",
        "Sentry shows a steady trickle of KeyError from this path since the last release.",
        "Orders created just before midnight UTC ended up on the wrong day in reports.",
    ),
    "feature": (
        "Support asked for this so they stop running manual scripts.",
        "Needed for the Q3 marketplace launch; behind the `{flag}` feature flag.",
    ),
    "refactor": (
        "The function had grown to 300 lines and nobody wanted to touch it.",
        "Preparation for moving this logic into its own service.",
    ),
    "docs": ("New joiners kept asking how this is configured.", "The old docs described the v1 behaviour."),
    "tests": ("This path had no coverage and broke twice this quarter.", "The suite took 9 minutes."),
    "chore": ("Keeps us on a supported version.", "Nothing calls this since the v1 API was removed."),
    "security": (
        "Found in the last pentest; see the internal ticket SEC-{ticket}.",
        "A staff user could read orders of another tenant.",
    ),
    "performance": (
        "The endpoint takes 2.4 s at p95 and runs {queries} queries per request.",
        "The nightly job no longer finishes before the morning batch starts.",
    ),
}

_NOTES = (
    "Tested locally against a copy of staging data.",
    "No migration needed.",
    "Includes a data migration; it is safe to run online.",
    "Reviewers: please look at the locking carefully.",
    "Follow-up PR will remove the old code path.",
    "",
    "",
)

_AUTHORS = ("amelie", "bjorn", "chidi", "dana", "eitan", "farah", "goran", "hiro", "ines", "jonas")


_MODELS = {
    "payments": ("Payment", "payment"),
    "orders": ("Order", "order"),
    "accounts": ("Account", "account"),
    "notifications": ("Notification", "notification"),
    "api": ("Order", "order"),
    "search": ("Product", "product"),
    "core": ("Flag", "flag"),
}

# Recipes of coherent changes: (context, removed, added), with {Model} {var} {fn} {app} filled in.
_Recipe = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
_RECIPES: dict[str, tuple[_Recipe, ...]] = {
    "bugfix": (
        (
            ("def {fn}({var}_id):",),
            ("    {var} = {Model}.objects.get(pk={var}_id)", "    _{fn}({var})"),
            (
                "    with transaction.atomic():",
                "        {var} = {Model}.objects.select_for_update().get(pk={var}_id)",
                "        if {var}.status == {Model}.Status.DONE:",
                "            return",
                "        _{fn}({var})",
            ),
        ),
        (
            ("    cutoff = start_of_day()",),
            ("    today = datetime.now().date()",),
            ("    today = timezone.localdate()",),
        ),
        (
            ("    amount = {var}.amount",),
            ("    currency = {var}.metadata['currency']",),
            ("    currency = {var}.metadata.get('currency', settings.DEFAULT_CURRENCY)",),
        ),
        (
            ("    pages = paginator.num_pages",),
            ("    for page in range(1, pages):",),
            ("    for page in range(1, pages + 1):",),
        ),
    ),
    "feature": (
        (
            ("class {Model}ViewSet(viewsets.ModelViewSet):",),
            (),
            (
                "    @action(detail=False, methods=['post'])",
                "    def bulk_update(self, request):",
                "        serializer = Bulk{Model}Serializer(data=request.data, many=True)",
                "        serializer.is_valid(raise_exception=True)",
                "        serializer.save()",
                "        return Response(serializer.data)",
            ),
        ),
        (
            ("def {fn}(request, {var}_id):",),
            (),
            ("    if not flags.is_enabled('{app}_v2', request.user):", "        raise Http404"),
        ),
        (
            ("    {var}.save()",),
            (),
            ("    AuditLog.objects.create(actor=user, target={var}, action='{fn}')",),
        ),
    ),
    "refactor": (
        (
            ("def {fn}({var}):",),
            (
                "    total = 0",
                "    for line in {var}.lines.all():",
                "        total += line.quantity * line.unit_price",
            ),
            ("    total = sum_lines({var}.lines.all())",),
        ),
        (
            ("@receiver(post_save, sender={Model})",),
            ("def on_{var}_saved(sender, instance, **kwargs):", "    {fn}(instance)"),
            (),
        ),
    ),
    "docs": (
        (
            ("def {fn}({var}):",),
            (),
            ('    """Process one {var}; safe to call twice (the worker may retry it)."""',),
        ),
        (
            ("class {Model}Serializer(serializers.ModelSerializer):",),
            (),
            ('    """The public shape of a {var}; field names are part of the v2 API."""',),
        ),
    ),
    "markdown": (
        (
            ("## Configuration",),
            ("Set `{APP}_TIMEOUT` in settings.",),
            (
                "Set `{APP}_TIMEOUT_SECONDS` (default 30) in settings.",
                "The value is read once at start-up.",
            ),
        ),
        (
            ("## Operations",),
            (),
            (
                "Run `manage.py {fn}` after deploying; it is idempotent.",
                "Watch the `{app}_errors_total` metric while it runs.",
            ),
        ),
    ),
    "tests": (
        (
            ("@pytest.mark.django_db",),
            (),
            (
                "def test_{fn}_is_idempotent({var}_factory):",
                "    {var} = {var}_factory(status='pending')",
                "    {fn}({var}.pk)",
                "    {fn}({var}.pk)",
                "    assert {Model}.objects.get(pk={var}.pk).attempts == 1",
            ),
        ),
        (
            ("class {Model}Tests(TestCase):",),
            ("    fixtures = ['{app}.json']",),
            ("    @classmethod", "    def setUpTestData(cls):", "        cls.{var} = {Model}Factory()"),
        ),
    ),
    "chore": (
        (
            ("from django.conf import settings",),
            ("from django.utils.encoding import force_text",),
            ("from django.utils.encoding import force_str",),
        ),
        (
            ("from django.utils import timezone",),
            ("from {app}.legacy import v1_adapter  # noqa: F401",),
            (),
        ),
    ),
    "security": (
        (
            ("def render_{var}_label({var}):",),
            ("    return mark_safe('<b>%s</b>' % {var}.name)",),
            ("    return format_html('<b>{{}}</b>', {var}.name)",),
        ),
        (
            ("    {var} = get_object_or_404({Model}, pk=pk)",),
            (),
            (
                "    if {var}.tenant_id != request.user.tenant_id:",
                "        raise PermissionDenied",
            ),
        ),
        (
            ("    cursor = connection.cursor()",),
            ("    cursor.execute(f\"SELECT * FROM {app}_{var} WHERE name = '{{name}}'\")",),
            ("    cursor.execute('SELECT * FROM {app}_{var} WHERE name = %s', [name])",),
        ),
    ),
    "performance": (
        (
            ("def {fn}(user):",),
            ("    {var}s = {Model}.objects.filter(owner=user)",),
            (
                "    {var}s = {Model}.objects.filter(owner=user).select_related('owner')",
                "    {var}s = {var}s.prefetch_related('lines')",
            ),
        ),
        (
            ("def {fn}({var}_id):",),
            (),
            (
                "    key = f'{fn}:{{{var}_id}}'",
                "    if (cached := cache.get(key)) is not None:",
                "        return cached",
            ),
        ),
        (
            ("    class Meta:",),
            (),
            ("        indexes = [models.Index(fields=['status', 'created_at'])]",),
        ),
    ),
}


def _hunk(rng: random.Random, area: _Area, recipe: _Recipe, start: int) -> list[str]:
    context, removed, added = recipe
    model, var = _MODELS[area.app]
    names = {"Model": model, "var": var, "fn": rng.choice(area.functions), "app": area.app}
    names["APP"] = area.app.upper()

    def fill(lines: tuple[str, ...]) -> list[str]:
        return [line.format(**names) for line in lines]

    old_len = len(context) + len(removed)
    new_len = len(context) + len(added)
    lines = [f"@@ -{start},{old_len} +{start},{new_len} @@"]
    lines += [f" {line}" for line in fill(context)]
    lines += [f"-{line}" for line in fill(removed)]
    lines += [f"+{line}" for line in fill(added)]
    return lines


def _file_diff(rng: random.Random, path: str, area: _Area, category: str, hunks: int) -> list[str]:
    if path.endswith(".md"):
        kind = "markdown"
    elif "/tests/" in path:
        kind = "tests"
    else:  # mostly changes of the PR's own kind, sometimes an unrelated one, as in real PRs
        kind = category if rng.random() < 0.8 else rng.choice(CATEGORIES)
    recipes = rng.sample(_RECIPES[kind], min(hunks, len(_RECIPES[kind])))
    starts = sorted(rng.sample(range(8, 400, 12), len(recipes)))
    lines = [f"diff --git a/{path} b/{path}", f"--- a/{path}", f"+++ b/{path}"]
    for recipe, start in zip(recipes, starts, strict=True):
        lines += _hunk(rng, area, recipe, start)
    return lines


def _paths(rng: random.Random, area: _Area, category: str, count: int) -> list[str]:
    candidates = [f"{area.app}/{module}" for module in area.modules]
    rng.shuffle(candidates)
    paths = candidates[: max(1, count - 1)]
    if category == "tests" or rng.random() < 0.55:
        paths.append(f"{area.app}/tests/test_{rng.choice(area.modules).split('/')[-1]}")
    elif category == "docs":
        paths.append(f"docs/{area.app}.md")
    elif rng.random() < 0.15:
        paths.append(f"{area.app}/migrations/{rng.randint(12, 87):04d}_auto.py")
    return paths[:count] if count > 1 else paths[:1]


def _size(rng: random.Random) -> tuple[int, int]:
    """(files, hunks per file): mostly small PRs, some medium, a few large."""
    roll = rng.random()
    if roll < 0.55:
        return rng.randint(1, 2), 1
    if roll < 0.9:
        return rng.randint(2, 4), rng.randint(1, 2)
    return rng.randint(4, 6), rng.randint(2, 4)


def _pull_request(rng: random.Random, number: int) -> str:
    area = rng.choice(AREAS)
    category = rng.choice(CATEGORIES)
    title = rng.choice(_TITLES[category]).format(noun=rng.choice(area.nouns))
    why = rng.choice(_WHY[category]).format(
        flag=f"{area.app}_{rng.choice(('v2', 'bulk', 'beta'))}",
        ticket=rng.randint(100, 999),
        queries=rng.randint(40, 400),
    )
    note = rng.choice(_NOTES)
    files, hunks = _size(rng)
    diff: list[str] = []
    for path in _paths(rng, area, category, files):
        diff += _file_diff(rng, path, area, category, hunks)
    description = " ".join(part for part in (why, note) if part)
    return (
        f"PR #{number}: {title}\n"
        f"Author: {rng.choice(_AUTHORS)}  Base: main  Labels: {area.app}, {category}\n\n"
        f"Description:\n{description}\n\n"
        f"Diff:\n" + "\n".join(diff)
    )


def demo_items(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[dict[str, Any]]:
    """``count`` PR-analysis items with custom_ids ``pr-<number>``; the same for the same seed."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    number = FIRST_PR_NUMBER
    for _ in range(count):
        number += rng.randint(1, 9)  # PR numbers with gaps, as in a real repository
        items.append(
            {
                "custom_id": f"pr-{number}",
                "body": {
                    "messages": [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": _pull_request(rng, number)},
                    ],
                    "max_completion_tokens": MAX_COMPLETION_TOKENS,
                },
            }
        )
    return items


def demo_payload(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """The body of ``POST /batches`` for the demo."""
    return {
        "items": demo_items(count, seed),
        "params": {
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                # No "strict" here: the batch's strict mode (on by default) decides, per model.
                "json_schema": {"name": SCHEMA_NAME, "schema": pr_analysis_schema()},
            },
        },
        "metadata": {"source": "demo"},
    }
