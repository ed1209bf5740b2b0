"""index users.faces_updated_at

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 18:40:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    # Every face login asks for max(faces_updated_at) to see whether the face index
    # is stale: with this index the answer is one b-tree lookup instead of a scan of
    # every row (33 ms at 100k users on SQLite).
    op.create_index(op.f('ix_users_faces_updated_at'), 'users', ['faces_updated_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_users_faces_updated_at'), table_name='users')
