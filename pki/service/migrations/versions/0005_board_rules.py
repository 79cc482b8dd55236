"""Board rules: key-agreement failure counter and lock, the operator who opened an exchange,
grants of a board to other operators, and the index per-operator quotas count on.

Revision ID: 0005_board_rules
Revises: 0004_idem_lease_audit_ckpt
Create Date: 2026-12-04 01:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_board_rules"
down_revision = "0004_idem_lease_audit_ckpt"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("svc_board", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ka_failures", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("ka_locked", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("svc_key_agreement", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opened_by", sa.String(length=200), nullable=True))
    op.create_table(
        "svc_board_grant",
        sa.Column("uid", sa.String(length=24), sa.ForeignKey("svc_board.uid"), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uid", "operator"),
    )
    op.create_index("ix_svc_board_step_quota", "svc_board_step", ["actor", "step", "at"])


def downgrade() -> None:
    op.drop_index("ix_svc_board_step_quota", table_name="svc_board_step")
    op.drop_table("svc_board_grant")
    with op.batch_alter_table("svc_key_agreement", schema=None) as batch_op:
        batch_op.drop_column("opened_by")
    with op.batch_alter_table("svc_board", schema=None) as batch_op:
        batch_op.drop_column("ka_locked")
        batch_op.drop_column("ka_failures")
