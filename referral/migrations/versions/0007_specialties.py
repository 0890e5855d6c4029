"""listing specialties: services and populations (MAT, LGBTQ+ affirming, veterans, ...)

Revision ID: 0007_specialties
Revises: 0006_referral_loop (re-chained at merge)
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_specialties"
down_revision = "0006_referral_loop"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    with op.batch_alter_table("provider") as batch:
        batch.add_column(sa.Column("specialties", _JSON, nullable=False,
                                   server_default=sa.text("'[]'")))


def downgrade():
    with op.batch_alter_table("provider") as batch:
        batch.drop_column("specialties")
