"""Idempotency records that recover (lease, owner, stored headers, expiry); the audit actor's
certificate hash; signed audit checkpoints.

Revision ID: 0004_idem_lease_audit_ckpt
Revises: 0003_sb_batch_ref
Create Date: 2026-12-04 01:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_idem_lease_audit_ckpt"
down_revision = "0003_sb_batch_ref"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("svc_idempotency", schema=None) as batch_op:
        batch_op.add_column(sa.Column("headers", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("owner", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f("ix_svc_idempotency_expires_at"), ["expires_at"], unique=False)
    with op.batch_alter_table("svc_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_cert", sa.String(length=64), nullable=False, server_default=""))
    op.create_table(
        "svc_audit_checkpoint",
        sa.Column("n", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("interval", sa.Float(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("n"),
    )


def downgrade() -> None:
    op.drop_table("svc_audit_checkpoint")
    with op.batch_alter_table("svc_audit", schema=None) as batch_op:
        batch_op.drop_column("actor_cert")
    with op.batch_alter_table("svc_idempotency", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_svc_idempotency_expires_at"))
        batch_op.drop_column("expires_at")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("owner")
        batch_op.drop_column("headers")
