"""Service tables: board progress and steps, idempotency records, audit chain, key agreements,
firmware signings.

Revision ID: 0001_service_tables
Revises:
Create Date: 2026-11-24 20:31:05.791026
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_service_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "svc_audit",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("row_hash"),
    )
    op.create_table(
        "svc_board",
        sa.Column("uid", sa.String(length=24), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("registered_by", sa.String(length=200), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("csr_sha256", sa.String(length=64), nullable=True),
        sa.Column("cert_serial", sa.String(length=64), nullable=True),
        sa.Column("cert_der", sa.LargeBinary(), nullable=True),
        sa.Column("sb_key_label", sa.String(length=64), nullable=True),
        sa.Column("sb_public_der", sa.LargeBinary(), nullable=True),
        sa.Column("aes_key_label", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("uid"),
        sa.UniqueConstraint("cert_serial", name="uq_svc_board_cert_serial"),
    )
    op.create_table(
        "svc_idempotency",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=100), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )
    op.create_table(
        "svc_board_step",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(length=24), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["uid"],
            ["svc_board.uid"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("svc_board_step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_svc_board_step_uid"), ["uid"], unique=False)

    op.create_table(
        "svc_firmware_signing",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(length=24), nullable=False),
        sa.Column("input_sha256", sa.String(length=64), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("signed_by", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["uid"],
            ["svc_board.uid"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("svc_firmware_signing", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_svc_firmware_signing_uid"), ["uid"], unique=False)

    op.create_table(
        "svc_key_agreement",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("uid", sa.String(length=24), nullable=False),
        sa.Column("board_eph", sa.LargeBinary(), nullable=False),
        sa.Column("srv_eph", sa.LargeBinary(), nullable=False),
        sa.Column("transcript_hash", sa.LargeBinary(), nullable=False),
        sa.Column("aes_key_label", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["uid"],
            ["svc_board.uid"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aes_key_label"),
    )
    with op.batch_alter_table("svc_key_agreement", schema=None) as batch_op:
        batch_op.create_index("ix_svc_ka_uid", ["uid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("svc_key_agreement", schema=None) as batch_op:
        batch_op.drop_index("ix_svc_ka_uid")

    op.drop_table("svc_key_agreement")
    with op.batch_alter_table("svc_firmware_signing", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_svc_firmware_signing_uid"))

    op.drop_table("svc_firmware_signing")
    with op.batch_alter_table("svc_board_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_svc_board_step_uid"))

    op.drop_table("svc_board_step")
    op.drop_table("svc_idempotency")
    op.drop_table("svc_board")
    op.drop_table("svc_audit")
