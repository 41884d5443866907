"""tenants, the cascade of tiers, kept counters, exact costs, budgets and reuse

Existing batches become two-tier (or one-tier) cascades of their model and fallback model, costs become
integer picodollars, the counters are computed once from the attempts, and every batch belongs to tenant
`default` (the tenant of a bare token in API_TOKENS).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import orjson
import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PICO = 1_000_000_000_000


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _json_text(column: str) -> str:
    """A JSON column's value as text (PostgreSQL's json type needs the cast; SQLite keeps text)."""
    return f"{column}::text" if _postgres() else column


def _pico(column: str) -> str:
    return f"CAST(ROUND({column} * {PICO}) AS BIGINT)"


@contextmanager
def _rebuilt(table: str) -> Iterator[BatchOperations]:
    """`op.batch_alter_table` for a change SQLite cannot make in place, on a table other tables' rows reference.

    On SQLite batch mode copies the table, drops the original and renames the copy. With the service's
    foreign keys on, dropping a referenced table fails, and `PRAGMA foreign_keys=OFF` does nothing inside the
    migration's transaction. Deferring the checks to the commit is not enough either: SQLite counts every row
    the drop orphans as a violation and takes it back only when a matching row is inserted into the referenced
    table, which the renamed copy never is. So the rows are set aside and deleted (deferred), the empty table
    is rebuilt, and inserting the rows back into it settles each violation the delete counted.
    """
    if _postgres():
        with op.batch_alter_table(table) as batch_op:
            yield batch_op
        return
    bind = op.get_bind()
    kept = f"_kept_{table}"
    before = {column["name"] for column in sa.inspect(bind).get_columns(table)}
    op.execute("PRAGMA defer_foreign_keys=ON")  # until the transaction ends
    op.execute(f"CREATE TEMP TABLE {kept} AS SELECT * FROM {table}")
    op.execute(f"DELETE FROM {table}")
    with op.batch_alter_table(table) as batch_op:
        yield batch_op
    quote = bind.dialect.identifier_preparer.quote
    after = [column["name"] for column in sa.inspect(bind).get_columns(table)]
    columns = ", ".join(quote(name) for name in after if name in before)
    op.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM temp.{kept}")
    op.execute(f"DROP TABLE temp.{kept}")


def upgrade() -> None:
    bind = op.get_bind()
    big_zero = sa.text("0")

    # Columns are added, dropped and indexed in place (SQLite too: ADD COLUMN with a constant default, DROP
    # COLUMN since 3.35); only NOT NULL on an existing column and a type change rebuild a table (`_rebuilt`).

    # -- batches: tenant, cascade, counters, budget ---------------------------------------------------
    op.add_column("batches", sa.Column("tenant", sa.String(80), nullable=False, server_default="default"))
    op.add_column("batches", sa.Column("tiers", sa.JSON(), nullable=True))
    op.add_column("batches", sa.Column("strict_mode", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("batches", sa.Column("warnings", sa.JSON(), nullable=True))
    op.add_column("batches", sa.Column("reuse", sa.Boolean(), nullable=False, server_default=sa.false()))
    for name in ("succeeded", "failed", "pending", "retrying"):
        op.add_column("batches", sa.Column(name, sa.Integer(), nullable=False, server_default=big_zero))
    for name in ("input_tokens", "output_tokens", "cost_pico", "saved_pico", "reserved_pico"):
        op.add_column("batches", sa.Column(name, sa.BigInteger(), nullable=False, server_default=big_zero))
    op.add_column("batches", sa.Column("budget_pico", sa.BigInteger(), nullable=True))
    # Left null for earlier batches: estimates then use their model's history whatever the schema.
    op.add_column("batches", sa.Column("schema_fingerprint", sa.String(64), nullable=True))
    op.create_index("ix_batches_tenant_id", "batches", ["tenant", "id"], unique=False)
    rows = bind.execute(
        sa.text(f"SELECT id, model, fallback_model, fallback_enabled, {_json_text('fallback_params')} FROM batches")
    ).all()
    for batch_id, model, fallback_model, fallback_enabled, fallback_params in rows:
        cascade = [{"model": model, "params": {}}]
        if fallback_enabled:
            cascade.append({"model": fallback_model, "params": orjson.loads(fallback_params or "{}")})
        bind.execute(
            sa.text("UPDATE batches SET tiers = :tiers, warnings = :warnings WHERE id = :id"),
            {"tiers": orjson.dumps(cascade).decode(), "warnings": "[]", "id": batch_id},
        )

    # -- attempts: lineage, exact cost, the output as JSON text --------------------------------------------
    # No table references the attempts: batch mode's copy (for the now nullable column) is safe here.
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.alter_column("provider_batch_row_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("tier", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sent_because", sa.String(80), nullable=False, server_default="first"))
        batch_op.add_column(sa.Column("overrides_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("max_tokens_sent", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reasoning_effort_sent", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("request_hash", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("reused_from_attempt_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("output_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("cost_pico", sa.BigInteger(), nullable=False, server_default=big_zero))
        batch_op.create_index("ix_attempts_request_hash", ["request_hash", "status"], unique=False)
    bind.execute(
        sa.text(
            f"UPDATE attempts SET output_json = CASE WHEN output IS NULL THEN NULL ELSE {_json_text('output')} END, "
            f"cost_pico = {_pico('cost_usd')}"
        )
    )
    bind.execute(sa.text("UPDATE attempts SET output_json = NULL WHERE output_json = 'null'"))
    bind.execute(
        sa.text(
            "UPDATE attempts SET tier = (SELECT CASE passes.kind WHEN 'primary' THEN 0 WHEN 'fallback' THEN 1 END "
            "FROM passes WHERE passes.id = attempts.pass_id), "
            "sent_because = (SELECT CASE passes.kind WHEN 'primary' THEN 'first' ELSE passes.kind END "
            "FROM passes WHERE passes.id = attempts.pass_id)"
        )
    )
    op.drop_column("attempts", "output")
    op.drop_column("attempts", "cost_usd")

    # -- passes: tier, counters ---------------------------------------------------------------------------
    op.add_column("passes", sa.Column("tier", sa.Integer(), nullable=True))
    op.add_column("passes", sa.Column("strict_mode", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("passes", sa.Column("sent_because", sa.JSON(), nullable=True))
    for name in ("planned_items", "items", "succeeded", "failed", "reused"):
        op.add_column("passes", sa.Column(name, sa.Integer(), nullable=False, server_default=big_zero))
    for name in ("input_tokens", "output_tokens", "cost_pico", "saved_pico"):
        op.add_column("passes", sa.Column(name, sa.BigInteger(), nullable=False, server_default=big_zero))
    bind.execute(
        sa.text(
            "UPDATE passes SET tier = CASE kind WHEN 'primary' THEN 0 WHEN 'fallback' THEN 1 END, "
            "items = (SELECT COUNT(*) FROM attempts WHERE attempts.pass_id = passes.id), "
            "succeeded = (SELECT COUNT(*) FROM attempts WHERE attempts.pass_id = passes.id "
            "AND attempts.status = 'succeeded'), "
            "failed = (SELECT COUNT(*) FROM attempts WHERE attempts.pass_id = passes.id "
            "AND attempts.status = 'failed'), "
            "input_tokens = (SELECT COALESCE(SUM(input_tokens), 0) FROM attempts WHERE attempts.pass_id = passes.id), "
            "output_tokens = (SELECT COALESCE(SUM(output_tokens), 0) FROM attempts "
            "WHERE attempts.pass_id = passes.id), "
            "cost_pico = (SELECT COALESCE(SUM(cost_pico), 0) FROM attempts WHERE attempts.pass_id = passes.id)"
        )
    )
    for pass_id, kind, items in bind.execute(sa.text("SELECT id, kind, items FROM passes")).all():
        reason = "first" if kind == "primary" else kind
        bind.execute(
            sa.text("UPDATE passes SET sent_because = :sent, planned_items = :items WHERE id = :id"),
            {"sent": orjson.dumps({reason: items} if items else {}).decode(), "items": items, "id": pass_id},
        )

    # -- items: the body as JSON text, the merged row's counters ---------------------------------------------
    op.add_column("items", sa.Column("body_json", sa.Text(), nullable=True))
    op.add_column("items", sa.Column("metadata_json", sa.Text(), nullable=True))
    op.add_column("items", sa.Column("own_format", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("items", sa.Column("next_tier", sa.Integer(), nullable=True))
    op.add_column("items", sa.Column("next_reason", sa.String(80), nullable=True))
    op.add_column("items", sa.Column("next_overrides_json", sa.Text(), nullable=True))
    op.add_column("items", sa.Column("attempt_count", sa.Integer(), nullable=False, server_default=big_zero))
    op.add_column("items", sa.Column("cost_pico", sa.BigInteger(), nullable=False, server_default=big_zero))
    op.add_column("items", sa.Column("error_code", sa.String(80), nullable=True))
    op.add_column("items", sa.Column("error_message", sa.Text(), nullable=True))
    op.add_column("items", sa.Column("changed_pass", sa.Integer(), nullable=False, server_default=big_zero))
    op.add_column("items", sa.Column("updated_at", sa.DateTime(), nullable=True))
    op.create_index(
        "ix_items_batch_next_tier",
        "items",
        ["batch_id", "next_tier"],
        unique=False,
        sqlite_where=sa.text("next_tier IS NOT NULL"),
        postgresql_where=sa.text("next_tier IS NOT NULL"),
    )
    has_format = (
        "jsonb_exists(body::jsonb, 'response_format')"
        if _postgres()
        else "json_extract(body, '$.response_format') IS NOT NULL"
    )
    bind.execute(
        sa.text(
            f"UPDATE items SET body_json = {_json_text('body')}, own_format = {has_format}, "
            "attempt_count = (SELECT COUNT(*) FROM attempts WHERE attempts.item_id = items.id "
            "AND attempts.status != 'pending'), "
            "cost_pico = (SELECT COALESCE(SUM(cost_pico), 0) FROM attempts WHERE attempts.item_id = items.id), "
            "changed_pass = COALESCE((SELECT passes.number FROM attempts JOIN passes ON passes.id = attempts.pass_id "
            "WHERE attempts.id = items.deciding_attempt_id), 0), "
            "updated_at = (SELECT created_at FROM batches WHERE batches.id = items.batch_id)"
        )
    )
    op.drop_column("items", "body")
    with _rebuilt("items") as batch_op:
        batch_op.alter_column("body_json", existing_type=sa.Text(), nullable=False)
        batch_op.alter_column("updated_at", existing_type=sa.DateTime(), nullable=False)

    # -- batch counters and failure counts, from what the items and attempts say ------------------------------
    bind.execute(
        sa.text(
            "UPDATE batches SET "
            "succeeded = (SELECT COUNT(*) FROM items WHERE items.batch_id = batches.id AND status = 'succeeded'), "
            "failed = (SELECT COUNT(*) FROM items WHERE items.batch_id = batches.id AND status = 'failed'), "
            "pending = (SELECT COUNT(*) FROM items WHERE items.batch_id = batches.id AND status = 'pending'), "
            "input_tokens = (SELECT COALESCE(SUM(input_tokens), 0) FROM passes WHERE passes.batch_id = batches.id), "
            "output_tokens = (SELECT COALESCE(SUM(output_tokens), 0) FROM passes WHERE passes.batch_id = batches.id), "
            "cost_pico = (SELECT COALESCE(SUM(cost_pico), 0) FROM passes WHERE passes.batch_id = batches.id)"
        )
    )
    op.create_table(
        "failure_counts",
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("pass_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(80), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"]),
        sa.PrimaryKeyConstraint("batch_id", "pass_id", "code"),
    )
    bind.execute(
        sa.text(
            "INSERT INTO failure_counts (batch_id, pass_id, code, count) "
            "SELECT passes.batch_id, attempts.pass_id, COALESCE(attempts.error_code, 'unknown'), COUNT(*) "
            "FROM attempts JOIN passes ON passes.id = attempts.pass_id WHERE attempts.status = 'failed' "
            "GROUP BY passes.batch_id, attempts.pass_id, COALESCE(attempts.error_code, 'unknown')"
        )
    )
    bind.execute(
        sa.text(
            "INSERT INTO failure_counts (batch_id, pass_id, code, count) "
            "SELECT items.batch_id, 0, COALESCE(attempts.error_code, 'unknown'), COUNT(*) "
            "FROM items JOIN attempts ON attempts.id = items.deciding_attempt_id WHERE items.status = 'failed' "
            "GROUP BY items.batch_id, COALESCE(attempts.error_code, 'unknown')"
        )
    )
    for name in ("model", "fallback_model", "fallback_enabled", "fallback_params"):
        op.drop_column("batches", name)
    with _rebuilt("batches") as batch_op:
        batch_op.alter_column("tiers", existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column("warnings", existing_type=sa.JSON(), nullable=False)
    with _rebuilt("passes") as batch_op:
        batch_op.alter_column("sent_because", existing_type=sa.JSON(), nullable=False)

    # -- chunks: the budget's reservation ------------------------------------------------------------------
    op.add_column(
        "provider_batches", sa.Column("worst_case_pico", sa.BigInteger(), nullable=False, server_default=big_zero)
    )
    op.add_column("provider_batches", sa.Column("reserved", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("provider_batches", sa.Column("spool_sha256", sa.String(64), nullable=True))
    with _rebuilt("provider_batches") as batch_op:
        batch_op.alter_column("byte_count", existing_type=sa.Integer(), type_=sa.BigInteger())

    # -- idempotency keys belong to a tenant: the primary key becomes (tenant, key) --------------------------
    _rebuild_idempotency_keys(with_tenant=True)

    op.create_table(
        "model_availability",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("model"),
    )


def _rebuild_idempotency_keys(*, with_tenant: bool) -> None:
    """A new table with the new primary key, the rows copied over (a primary key cannot be altered in place
    on SQLite)."""
    tenant = [sa.Column("tenant", sa.String(80), nullable=False)] if with_tenant else []
    op.create_table(
        "idempotency_keys_new",
        *tenant,
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(40), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("response_location", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint(*(["tenant", "key"] if with_tenant else ["key"])),
    )
    shared = (
        "key, request_hash, method, path, state, owner, locked_until, response_status, response_body, "
        "response_location, created_at, expires_at"
    )
    if with_tenant:
        op.execute(
            f"INSERT INTO idempotency_keys_new (tenant, {shared}) SELECT 'default', {shared} FROM idempotency_keys"
        )
    else:  # one key per tenant can no longer be told apart: the default tenant's keys are kept
        op.execute(
            f"INSERT INTO idempotency_keys_new ({shared}) "
            f"SELECT {shared} FROM idempotency_keys WHERE tenant = 'default'"
        )
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_new", "idempotency_keys")
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"], unique=False)


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_table("model_availability")
    _rebuild_idempotency_keys(with_tenant=False)
    with _rebuilt("provider_batches") as batch_op:
        batch_op.drop_column("worst_case_pico")
        batch_op.drop_column("reserved")
        batch_op.drop_column("spool_sha256")
        batch_op.alter_column("byte_count", existing_type=sa.BigInteger(), type_=sa.Integer())
    op.drop_table("failure_counts")

    with _rebuilt("batches") as batch_op:
        batch_op.add_column(sa.Column("model", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("fallback_model", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("fallback_enabled", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("fallback_params", sa.JSON(), nullable=True))
    for batch_id, stored in bind.execute(sa.text(f"SELECT id, {_json_text('tiers')} FROM batches")).all():
        tiers = orjson.loads(stored or "[]") or [{"model": "openai/gpt-oss-20b", "params": {}}]
        fallback = tiers[1] if len(tiers) > 1 else tiers[-1]
        bind.execute(
            sa.text(
                "UPDATE batches SET model = :model, fallback_model = :fallback_model, "
                "fallback_enabled = :enabled, fallback_params = :params WHERE id = :id"
            ),
            {
                "model": tiers[0]["model"],
                "fallback_model": fallback["model"],
                "enabled": len(tiers) > 1,
                "params": orjson.dumps(fallback.get("params") or {}).decode(),
                "id": batch_id,
            },
        )
    with _rebuilt("batches") as batch_op:
        batch_op.alter_column("model", existing_type=sa.String(200), nullable=False)
        batch_op.alter_column("fallback_model", existing_type=sa.String(200), nullable=False)
        batch_op.alter_column("fallback_params", existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column("fallback_enabled", server_default=None)
        batch_op.drop_index("ix_batches_tenant_id")
        for name in (
            "tenant",
            "tiers",
            "strict_mode",
            "warnings",
            "reuse",
            "succeeded",
            "failed",
            "pending",
            "retrying",
            "input_tokens",
            "output_tokens",
            "cost_pico",
            "saved_pico",
            "reserved_pico",
            "budget_pico",
            "schema_fingerprint",
        ):
            batch_op.drop_column(name)

    with op.batch_alter_table("items") as batch_op:
        batch_op.add_column(sa.Column("body", sa.JSON(), nullable=True))
    body = "CAST(body_json AS json)" if _postgres() else "body_json"
    bind.execute(sa.text(f"UPDATE items SET body = {body}"))
    with _rebuilt("items") as batch_op:
        batch_op.alter_column("body", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_index("ix_items_batch_next_tier")
        for name in (
            "body_json",
            "metadata_json",
            "own_format",
            "next_tier",
            "next_reason",
            "next_overrides_json",
            "attempt_count",
            "cost_pico",
            "error_code",
            "error_message",
            "changed_pass",
            "updated_at",
        ):
            batch_op.drop_column(name)

    with _rebuilt("passes") as batch_op:
        for name in (
            "tier",
            "strict_mode",
            "sent_because",
            "planned_items",
            "items",
            "succeeded",
            "failed",
            "reused",
            "input_tokens",
            "output_tokens",
            "cost_pico",
            "saved_pico",
        ):
            batch_op.drop_column(name)

    with op.batch_alter_table("attempts") as batch_op:
        batch_op.add_column(sa.Column("output", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("cost_usd", sa.Float(), nullable=False, server_default="0"))
    output = "CAST(output_json AS json)" if _postgres() else "output_json"
    bind.execute(sa.text(f"UPDATE attempts SET output = {output}, cost_usd = cost_pico / {PICO}.0"))
    bind.execute(sa.text("DELETE FROM attempts WHERE provider_batch_row_id IS NULL"))
    with op.batch_alter_table("attempts") as batch_op:
        batch_op.alter_column("cost_usd", server_default=None)
        batch_op.alter_column("provider_batch_row_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index("ix_attempts_request_hash")
        for name in (
            "tier",
            "sent_because",
            "overrides_json",
            "max_tokens_sent",
            "reasoning_effort_sent",
            "request_hash",
            "reused_from_attempt_id",
            "output_json",
            "cost_pico",
        ):
            batch_op.drop_column(name)
