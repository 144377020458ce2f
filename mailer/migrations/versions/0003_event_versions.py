"""Remember the event as sent at each SEQUENCE, for updates and cancellation.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_version",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.Integer(), primary_key=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
