"""directory truth: patients' reports of wrong listings, and when a listing became reported;
the time step of each person's last accepted TOTP code (a code works once); the time zone
an appointment was booked in

Revision ID: 0009_listing_reports
Revises: 0008_accounts
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_listing_reports"
down_revision = "0008_accounts"
branch_labels = None
depends_on = None

REASONS = ("could_not_reach", "not_accepting", "insurance_not_accepted", "wrong_contact",
           "wrong_location", "no_longer_practicing", "other")


def upgrade():
    for table in ("referral", "referral_event"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("appointment_time_zone", sa.String(length=40),
                                       nullable=True))
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("provider") as batch:
        batch.add_column(sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "listing_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("text_ciphertext", sa.Text(), nullable=True),
        sa.Column("reporter_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=20), nullable=True),
        sa.Column("resolution_note", sa.String(length=500), nullable=True),
        sa.Column("resolved_by_user_id", sa.Integer(), nullable=True),
        sa.Column("resolved_by_token_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("reason IN (" + ", ".join(f"'{r}'" for r in REASONS) + ")",
                           name=op.f("ck_listing_report_reason")),
        sa.CheckConstraint("status IN ('open', 'resolved', 'confirmed', 'dismissed')",
                           name=op.f("ck_listing_report_status")),
        sa.ForeignKeyConstraint(["provider_id"], ["provider.id"], ondelete="CASCADE",
                                name=op.f("fk_listing_report_provider_id_provider")),
        sa.ForeignKeyConstraint(["resolved_by_user_id"], ["user_account.id"],
                                ondelete="SET NULL",
                                name=op.f("fk_listing_report_resolved_by_user_id_user_account")),
        sa.ForeignKeyConstraint(["resolved_by_token_id"], ["api_token.id"],
                                ondelete="SET NULL",
                                name=op.f("fk_listing_report_resolved_by_token_id_api_token")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing_report")),
    )
    op.create_index("ix_listing_report_open", "listing_report",
                    ["provider_id", "status", "created_at"])


def downgrade():
    op.drop_index("ix_listing_report_open", table_name="listing_report")
    op.drop_table("listing_report")
    with op.batch_alter_table("provider") as batch:
        batch.drop_column("reported_at")
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("totp_last_step")
    for table in ("referral", "referral_event"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("appointment_time_zone")
