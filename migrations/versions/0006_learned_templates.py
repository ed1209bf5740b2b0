"""learned templates: up to LEARN_SLOTS per user, taken from confident live logins

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 21:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'learned_templates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('encoding', sa.PickleType(), nullable=False),
        sa.Column('learned_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('distance', sa.Float(), nullable=False),
        sa.Column('attempt_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['attempt_id'], ['login_attempts.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_learned_templates_user_id'), 'learned_templates', ['user_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_learned_templates_user_id'), table_name='learned_templates')
    op.drop_table('learned_templates')
