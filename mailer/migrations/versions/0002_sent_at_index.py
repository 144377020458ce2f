"""Index the sends per server by time: the rate limits count them.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_delivery_server_sent", "delivery", ["server", "sent_at"])
