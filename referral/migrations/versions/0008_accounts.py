"""accounts: people (users with roles), one-time links, clinic approval, claims of registry
records, the activity log, and who acted on each audit row (user or token, channel)

Existing clinics count as approved, except organizations imported from NPPES (no token
was ever issued to them), which become ``unclaimed``.

Revision ID: 0008_accounts
Revises: 0007_specialties
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_accounts"
# This tree has two heads (0005 and 0006 both follow 0003): this revision joins them.
down_revision = "0007_specialties"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade():
    with op.batch_alter_table("clinic") as batch:
        batch.add_column(sa.Column("status", sa.String(length=20), nullable=False,
                                   server_default="approved"))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("decision_reason", sa.String(length=500), nullable=True))
    op.execute("UPDATE clinic SET status = 'unclaimed' WHERE organization_npi IS NOT NULL "
               "AND id NOT IN (SELECT clinic_id FROM api_token)")

    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("email_confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("totp_ciphertext", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'staff', 'operator')",
                           name=op.f("ck_user_account_role")),
        sa.CheckConstraint("(role = 'operator') = (clinic_id IS NULL)",
                           name=op.f("ck_user_account_operator_no_clinic")),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], ondelete="CASCADE",
                                name=op.f("fk_user_account_clinic_id_clinic")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("email", name=op.f("uq_user_account_email")),
    )
    op.create_index(op.f("ix_user_account_clinic_id"), "user_account", ["clinic_id"])

    op.create_table(
        "user_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=10), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("purpose IN ('confirm', 'reset')", name=op.f("ck_user_link_purpose")),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], ondelete="CASCADE",
                                name=op.f("fk_user_link_user_id_user_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_link")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_user_link_key_hash")),
    )
    op.create_index(op.f("ix_user_link_user_id"), "user_link", ["user_id"])

    op.create_table(
        "claim",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("npi", sa.String(length=10), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("attestation", sa.String(length=500), nullable=False),
        sa.Column("evidence", sa.String(length=2000), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("requested_by_user_id", sa.Integer(), nullable=True),
        sa.Column("requested_by_token_id", sa.Integer(), nullable=True),
        sa.Column("decided_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('listing', 'organization')", name=op.f("ck_claim_kind")),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')",
                           name=op.f("ck_claim_status")),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], ondelete="CASCADE",
                                name=op.f("fk_claim_clinic_id_clinic")),
        sa.ForeignKeyConstraint(["provider_id"], ["provider.id"], ondelete="CASCADE",
                                name=op.f("fk_claim_provider_id_provider")),
        sa.ForeignKeyConstraint(["organization_id"], ["clinic.id"], ondelete="CASCADE",
                                name=op.f("fk_claim_organization_id_clinic")),
        sa.ForeignKeyConstraint(["requested_by_user_id"], ["user_account.id"],
                                ondelete="SET NULL",
                                name=op.f("fk_claim_requested_by_user_id_user_account")),
        sa.ForeignKeyConstraint(["requested_by_token_id"], ["api_token.id"], ondelete="SET NULL",
                                name=op.f("fk_claim_requested_by_token_id_api_token")),
        sa.ForeignKeyConstraint(["decided_by_user_id"], ["user_account.id"], ondelete="SET NULL",
                                name=op.f("fk_claim_decided_by_user_id_user_account")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim")),
    )
    op.create_index(op.f("ix_claim_clinic_id"), "claim", ["clinic_id"])
    op.create_index(op.f("ix_claim_npi"), "claim", ["npi"])
    op.create_index("ix_claim_status", "claim", ["status", "created_at"])

    op.create_table(
        "activity_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"], ondelete="CASCADE",
                                name=op.f("fk_activity_log_clinic_id_clinic")),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"], ondelete="SET NULL",
                                name=op.f("fk_activity_log_user_id_user_account")),
        sa.ForeignKeyConstraint(["token_id"], ["api_token.id"], ondelete="SET NULL",
                                name=op.f("fk_activity_log_token_id_api_token")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_log")),
    )
    op.create_index(op.f("ix_activity_log_clinic_id"), "activity_log", ["clinic_id"])

    with op.batch_alter_table("clinic_session") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.alter_column("clinic_id", existing_type=sa.Integer(), nullable=True)
        batch.create_foreign_key(batch.f("fk_clinic_session_user_id_user_account"),
                                 "user_account", ["user_id"], ["id"], ondelete="CASCADE")
        batch.create_index(batch.f("ix_clinic_session_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("provider_audit") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("channel", sa.String(length=10), nullable=False,
                                   server_default="api"))
        batch.create_foreign_key(batch.f("fk_provider_audit_user_id_user_account"),
                                 "user_account", ["user_id"], ["id"], ondelete="SET NULL")
        batch.create_foreign_key(batch.f("fk_provider_audit_token_id_api_token"),
                                 "api_token", ["token_id"], ["id"], ondelete="SET NULL")
    op.execute("UPDATE provider_audit SET channel = 'import' WHERE source = 'nppes'")


def downgrade():
    with op.batch_alter_table("provider_audit") as batch:
        batch.drop_constraint(batch.f("fk_provider_audit_token_id_api_token"), type_="foreignkey")
        batch.drop_constraint(batch.f("fk_provider_audit_user_id_user_account"),
                              type_="foreignkey")
        batch.drop_column("channel")
        batch.drop_column("token_id")
        batch.drop_column("user_id")
    with op.batch_alter_table("clinic_session") as batch:
        batch.drop_index(batch.f("ix_clinic_session_user_id"))
        batch.drop_constraint(batch.f("fk_clinic_session_user_id_user_account"),
                              type_="foreignkey")
        batch.drop_column("user_id")
    op.execute("DELETE FROM clinic_session WHERE clinic_id IS NULL")
    with op.batch_alter_table("clinic_session") as batch:
        batch.alter_column("clinic_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("activity_log")
    op.drop_table("claim")
    op.drop_table("user_link")
    op.drop_table("user_account")
    with op.batch_alter_table("clinic") as batch:
        batch.drop_column("decision_reason")
        batch.drop_column("decided_at")
        batch.drop_column("status")
