"""kiosk devices, login challenges, and the challenge of each login attempt

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'kiosk_devices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('enrol_code_hash', sa.String(length=64), nullable=True),
        sa.Column('enrol_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('secret_hash', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
        sa.UniqueConstraint('enrol_code_hash'),
        sa.UniqueConstraint('secret_hash'),
    )
    op.create_table(
        'login_challenges',
        sa.Column('nonce', sa.String(length=32), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('nonce'),
    )
    op.create_index(op.f('ix_login_challenges_issued_at'), 'login_challenges', ['issued_at'], unique=False)
    # Added in place (no batch copy), like revision 0002: a SQLite table rebuild would
    # drop the expression index on usernames.
    with op.batch_alter_table('login_attempts', recreate='never') as batch_op:
        batch_op.add_column(sa.Column('challenge', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('login_attempts') as batch_op:
        batch_op.drop_column('challenge')
    op.drop_index(op.f('ix_login_challenges_issued_at'), table_name='login_challenges')
    op.drop_table('login_challenges')
    op.drop_table('kiosk_devices')
