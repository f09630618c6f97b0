"""central leases: several Central processes share the CPs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import common.db.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "central_nodes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("started_at", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_central_nodes")),
    )
    op.create_table(
        "cp_owners",
        sa.Column("cp_id", sa.String(length=32), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("since", common.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("engine_up", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("cp_id", name=op.f("pk_cp_owners")),
    )
    op.create_index("ix_cp_owners_node", "cp_owners", ["node_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cp_owners_node", table_name="cp_owners")
    op.drop_table("cp_owners")
    op.drop_table("central_nodes")
