"""CA store tables (``pki.store``): boards, issued certificates (unique serials), revocations, CRLs.

Revision ID: 0002_pki_store
Revises: 0001_service_tables
Create Date: 2026-11-24 20:32:09.883953
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_pki_store"
down_revision = "0001_service_tables"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pki_board",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(length=24), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
    )
    op.create_table(
        "pki_crl",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("crl_number", sa.Integer(), nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("crl_number"),
    )
    op.create_table(
        "pki_certificate",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("serial", sa.String(length=42), nullable=False),
        sa.Column("profile", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=1024), nullable=False),
        sa.Column("issuer", sa.String(length=1024), nullable=False),
        sa.Column("board_id", sa.Integer(), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["pki_board.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fingerprint_sha256"),
        sa.UniqueConstraint("serial"),
    )
    with op.batch_alter_table("pki_certificate", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pki_certificate_board_id"), ["board_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pki_certificate_profile"), ["profile"], unique=False)

    op.create_table(
        "pki_revocation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=42), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["pki_certificate.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("certificate_id"),
        sa.UniqueConstraint("serial"),
    )


def downgrade() -> None:
    op.drop_table("pki_revocation")
    with op.batch_alter_table("pki_certificate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pki_certificate_profile"))
        batch_op.drop_index(batch_op.f("ix_pki_certificate_board_id"))

    op.drop_table("pki_certificate")
    op.drop_table("pki_crl")
    op.drop_table("pki_board")
