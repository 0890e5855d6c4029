"""clinic sessions kept server-side (sign-out ends them on every node)

Revision ID: 0005_clinic_sessions
Revises: 0004_row_versions
"""
import sqlalchemy as sa
from alembic import op


revision = "0005_clinic_sessions"
down_revision = "0004_row_versions"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "clinic_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], ondelete="CASCADE",
                                name=op.f("fk_clinic_session_clinic_id_clinic")),
        sa.ForeignKeyConstraint(["token_id"], ["api_token.id"], ondelete="CASCADE",
                                name=op.f("fk_clinic_session_token_id_api_token")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic_session")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_clinic_session_key_hash")),
    )
    with op.batch_alter_table("clinic_session") as batch:
        batch.create_index(batch.f("ix_clinic_session_clinic_id"), ["clinic_id"], unique=False)


def downgrade():
    with op.batch_alter_table("clinic_session") as batch:
        batch.drop_index(batch.f("ix_clinic_session_clinic_id"))
    op.drop_table("clinic_session")
