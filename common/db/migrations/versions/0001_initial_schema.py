"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 19:35:54.738128
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import common.db.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ts", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("source_ip", sa.String(length=45), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("cp_id", sa.String(length=32), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_entries_event_id")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entries_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entries_cp_id"), ["cp_id"], unique=False)
        batch_op.create_index("ix_audit_entries_ts", ["ts"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    # The genesis link of the audit hash chain; every appender locks this row.
    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer()),
            sa.column("last_id", sa.Integer()),
            sa.column("last_hash", sa.String()),
        ),
        [{"id": 1, "last_id": 0, "last_hash": "0" * 64}],
    )
    op.create_table(
        "charge_points",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column(
            "price_eur_kwh", common.db.models.DecimalType(precision=14, scale=4), nullable=False
        ),
        sa.Column("registered_at", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deregistered_at", common.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_state", sa.String(length=16), nullable=False),
        sa.Column("operator_stopped", sa.Boolean(), nullable=False),
        sa.Column("updated_at", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_points")),
    )
    op.create_table(
        "credentials",
        sa.Column("principal_kind", sa.String(length=8), nullable=False),
        sa.Column("principal_id", sa.String(length=32), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("scrypt_n", sa.Integer(), nullable=False),
        sa.Column("scrypt_r", sa.Integer(), nullable=False),
        sa.Column("scrypt_p", sa.Integer(), nullable=False),
        sa.Column("stored_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("server_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal_kind", "principal_id", name=op.f("pk_credentials")),
    )
    op.create_table(
        "drivers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", common.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drivers")),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("topic", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", common.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_unsent", ["sent_at", "id"], unique=False)

    op.create_table(
        "weather_alerts",
        sa.Column("location", sa.String(length=64), nullable=False),
        sa.Column("temperature_c", sa.Double(), nullable=True),
        sa.Column("raised_at", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("raised_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("location", name=op.f("pk_weather_alerts")),
    )
    op.create_table(
        "charging_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cp_id", sa.String(length=32), nullable=False),
        sa.Column("driver_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", common.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", common.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("target_kwh", common.db.models.DecimalType(precision=14, scale=4), nullable=True),
        sa.Column(
            "energy_kwh", common.db.models.DecimalType(precision=14, scale=4), nullable=False
        ),
        sa.Column(
            "price_eur_kwh", common.db.models.DecimalType(precision=14, scale=4), nullable=False
        ),
        sa.Column("total_eur", common.db.models.DecimalType(precision=14, scale=4), nullable=False),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column(
            "ticket_delivered_at", common.db.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["cp_id"], ["charge_points.id"], name=op.f("fk_charging_sessions_cp_id_charge_points")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charging_sessions")),
    )
    with op.batch_alter_table("charging_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_charging_sessions_cp_status", ["cp_id", "status"], unique=False)
        batch_op.create_index(
            "ix_charging_sessions_driver", ["driver_id", "requested_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("charging_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_charging_sessions_driver")
        batch_op.drop_index("ix_charging_sessions_cp_status")

    op.drop_table("charging_sessions")
    op.drop_table("weather_alerts")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_unsent")

    op.drop_table("outbox")
    op.drop_table("drivers")
    op.drop_table("credentials")
    op.drop_table("charge_points")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_ts")
        batch_op.drop_index(batch_op.f("ix_audit_entries_cp_id"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_action"))

    op.drop_table("audit_entries")
