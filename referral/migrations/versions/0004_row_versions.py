"""row versions of listings and referrals (optimistic concurrency control)

Every ORM update of a listing or a referral checks and bumps ``version``
(SQLAlchemy ``version_id_col``), so of two concurrent writers of one row only
the first is saved. Existing rows start at version 1.

Revision ID: 0004_row_versions
Revises: 4dd87b46c1c2
Create Date: 2026-11-25 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0004_row_versions'
down_revision = '4dd87b46c1c2'
branch_labels = None
depends_on = None


def upgrade():
    for table in ('provider', 'referral'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1',
                                          nullable=False))


def downgrade():
    for table in ('referral', 'provider'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('version')
