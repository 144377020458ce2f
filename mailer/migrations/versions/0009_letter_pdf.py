"""The official letter as PDF, kept per (campaign, office, letter kind, SEQUENCE) so that
every attempt of a row sends the same bytes.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from mailer.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "letter_pdf",
        sa.Column("campaign_id", sa.String(64), primary_key=True),
        sa.Column("invitee_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("sequence", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rendered_at", UTCDateTime(), nullable=False),
    )
