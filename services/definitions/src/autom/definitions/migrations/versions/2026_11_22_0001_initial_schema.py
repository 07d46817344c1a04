"""initial schema

Revision ID: 0001_definitions
Revises: 
Create Date: 2026-11-22 02:57:41.442408
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001_definitions'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('workspace_id', sa.String(length=64), nullable=False),
    sa.Column('principal', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    schema='definitions'
    )
    op.create_index(op.f('ix_definitions_api_tokens_workspace_id'), 'api_tokens', ['workspace_id'], unique=False, schema='definitions')
    op.create_table('automation_versions',
    sa.Column('automation_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('definition', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('automation_id', 'version', name=op.f('pk_automation_versions')),
    schema='definitions'
    )
    op.create_table('automations',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('workspace_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('definition', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('pause_note', sa.Text(), server_default='', nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_automations')),
    schema='definitions'
    )
    op.create_index('ix_automations_workspace_name_id', 'automations', ['workspace_id', 'name', 'id'], unique=False, schema='definitions')
    op.create_index('uq_automations_workspace_name_live', 'automations', ['workspace_id', 'name'], unique=True, schema='definitions', postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_table('idempotency_keys',
    sa.Column('workspace_id', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('resource_id', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('workspace_id', 'method', 'request_id', name=op.f('pk_idempotency_keys')),
    schema='definitions'
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('msg_id', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    schema='definitions'
    )
    op.create_index('ix_outbox_unpublished', 'outbox', ['id'], unique=False, schema='definitions', postgresql_where=sa.text('published_at IS NULL'))
    op.create_table('secrets',
    sa.Column('workspace_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('workspace_id', 'name', name=op.f('pk_secrets')),
    sa.UniqueConstraint('workspace_id', 'name', name='uq_secrets_workspace_name'),
    schema='definitions'
    )
    op.create_table('workspaces',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspaces')),
    sa.UniqueConstraint('name', name=op.f('uq_workspaces_name')),
    schema='definitions'
    )
    op.create_table('members',
    sa.Column('workspace_id', sa.String(length=64), nullable=False),
    sa.Column('principal', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['definitions.workspaces.id'], name=op.f('fk_members_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'principal', name=op.f('pk_members')),
    schema='definitions'
    )
    


def downgrade() -> None:
    
    op.drop_table('members', schema='definitions')
    op.drop_table('workspaces', schema='definitions')
    op.drop_table('secrets', schema='definitions')
    op.drop_index('ix_outbox_unpublished', table_name='outbox', schema='definitions', postgresql_where=sa.text('published_at IS NULL'))
    op.drop_table('outbox', schema='definitions')
    op.drop_table('idempotency_keys', schema='definitions')
    op.drop_index('uq_automations_workspace_name_live', table_name='automations', schema='definitions', postgresql_where=sa.text('deleted_at IS NULL'))
    op.drop_index('ix_automations_workspace_name_id', table_name='automations', schema='definitions')
    op.drop_table('automations', schema='definitions')
    op.drop_table('automation_versions', schema='definitions')
    op.drop_index(op.f('ix_definitions_api_tokens_workspace_id'), table_name='api_tokens', schema='definitions')
    op.drop_table('api_tokens', schema='definitions')
    
