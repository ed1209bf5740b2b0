"""face_purged_at: when the retention purge deleted an account's face data

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN (recreate='never'): a batch rebuild on SQLite would drop the
    # expression index that keeps usernames unique ignoring case (see revision 0002).
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('face_purged_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('face_purged_at')
