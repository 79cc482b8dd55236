"""Secure-boot keys imported from a bulk OTP batch: which batch image each board's key came from
(unique, so one image's key serves one board only).

Revision ID: 0003_sb_batch_ref
Revises: 0002_pki_store
Create Date: 2026-11-24 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_sb_batch_ref"
down_revision = "0002_pki_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("svc_board", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sb_batch_ref", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint("uq_svc_board_sb_batch_ref", ["sb_batch_ref"])


def downgrade() -> None:
    with op.batch_alter_table("svc_board", schema=None) as batch_op:
        batch_op.drop_constraint("uq_svc_board_sb_batch_ref", type_="unique")
        batch_op.drop_column("sb_batch_ref")
