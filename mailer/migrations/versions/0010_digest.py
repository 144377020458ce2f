"""The coordinator's rows in the ledger (the daily digest, `digest:<day>`): a delivery of no
office has `invitee_id` NULL, and is once per (campaign, kind) by a partial unique index
(NULLs never collide in `uq_delivery_once`).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COORDINATORS = "invitee_id IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:  # SQLite: the table is rebuilt
        batch.alter_column("invitee_id", existing_type=sa.String(64), nullable=True)
    op.create_index(
        "uq_delivery_coordinator_once",
        "delivery",
        ["campaign_id", "kind"],
        unique=True,
        sqlite_where=sa.text(_COORDINATORS),
        postgresql_where=sa.text(_COORDINATORS),
    )
