"""The due index ends in the row id, so a claim reads rows in its order (next_attempt_at,
id) without sorting: SQLite has the row id in every index already, PostgreSQL needs it
spelled out (else every claim sorts the whole remaining round, ~20 ms at 100,000 rows).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_delivery_due", table_name="delivery")
    op.create_index(
        "ix_delivery_due", "delivery", ["campaign_id", "state", "next_attempt_at", "id"]
    )
