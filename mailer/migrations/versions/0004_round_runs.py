"""Scheduled rounds that ran or were missed.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "round_run",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("rule_id", sa.String(64), primary_key=True),
        sa.Column("due_at", UTCDateTime(), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("enqueued", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )
