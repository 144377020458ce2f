"""Each scheduler process of a campaign: active or standing by, its heartbeat, its last pass
and its last mail sync (`mailer scheduler status`).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_state",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("pid", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("last_pass_at", UTCDateTime(), nullable=True),
        sa.Column("last_pass", sa.Text(), nullable=False),
        sa.Column("last_sync_ok_at", UTCDateTime(), nullable=True),
        sa.Column("last_sync_error", sa.Text(), nullable=False),
        sa.Column("last_sync_error_at", UTCDateTime(), nullable=True),
    )
