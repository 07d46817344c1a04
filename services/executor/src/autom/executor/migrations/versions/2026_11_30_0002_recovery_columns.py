"""dead letters move to JetStream; runs count orphan resumes and started side effects

Revision ID: 0002_executor_recovery
Revises: 0001_executor
Create Date: 2026-11-30 23:40:00
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002_executor_recovery'
down_revision = '0001_executor'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('runs', sa.Column('orphan_resumes', sa.Integer(), server_default='0', nullable=False), schema='executor')
    op.add_column('runs', sa.Column('resumed_attempt', sa.Integer(), server_default='0', nullable=False), schema='executor')
    op.add_column('runs', sa.Column('started_steps', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False), schema='executor')
    op.drop_table('dead_letters', schema='executor')


def downgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('fire_id', sa.String(length=255), server_default='', nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters')),
    schema='executor'
    )
    op.drop_column('runs', 'started_steps', schema='executor')
    op.drop_column('runs', 'resumed_attempt', schema='executor')
    op.drop_column('runs', 'orphan_resumes', schema='executor')
