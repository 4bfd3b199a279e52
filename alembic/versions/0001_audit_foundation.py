"""Audit foundation: associations, instances and their status history.

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 08:31:27.146416
"""

import sqlalchemy as sa

from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('associations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('calling_ae', sa.String(length=16), nullable=False),
    sa.Column('called_ae', sa.String(length=16), nullable=False),
    sa.Column('peer_address', sa.String(length=64), nullable=False),
    sa.Column('peer_port', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.Enum('REQUESTED', 'ACCEPTED', 'RELEASED', 'ABORTED', 'REJECTED', name='associationoutcome', native_enum=False, length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('refused_contexts', sa.Text(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_associations'))
    )
    op.create_table('instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('association_id', sa.Integer(), nullable=True),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=True),
    sa.Column('series_instance_uid', sa.String(length=64), nullable=True),
    sa.Column('accession_number', sa.String(length=64), nullable=True),
    sa.Column('patient_id', sa.String(length=64), nullable=True),
    sa.Column('modality', sa.String(length=16), nullable=True),
    sa.Column('transfer_syntax_uid', sa.String(length=64), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('spool_path', sa.Text(), nullable=True),
    sa.Column('status', sa.Enum('RECEIVED', 'QUEUED', 'PROCESSING', 'WAITING', 'DUPLICATE', 'REFUSED', 'INVALID', name='instancestatus', native_enum=False, length=16), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['association_id'], ['associations.id'], name=op.f('fk_instances_association_id_associations')),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['instances.id'], name=op.f('fk_instances_duplicate_of_id_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instances'))
    )
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.create_index('ix_instances_sha256', ['sha256'], unique=False)
        batch_op.create_index('ix_instances_status', ['status'], unique=False)
        batch_op.create_index('ix_instances_study', ['study_instance_uid'], unique=False)
        batch_op.create_index('uq_instances_sop_version', ['sop_instance_uid', 'version'], unique=True, sqlite_where=sa.text('version IS NOT NULL'), postgresql_where=sa.text('version IS NOT NULL'))

    op.create_table('instance_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('RECEIVED', 'QUEUED', 'PROCESSING', 'WAITING', 'DUPLICATE', 'REFUSED', 'INVALID', name='instancestatus', native_enum=False, length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_instance_events_instance_id_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_events'))
    )
    with op.batch_alter_table('instance_events', schema=None) as batch_op:
        batch_op.create_index('ix_instance_events_instance', ['instance_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('instance_events', schema=None) as batch_op:
        batch_op.drop_index('ix_instance_events_instance')

    op.drop_table('instance_events')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index('uq_instances_sop_version', sqlite_where=sa.text('version IS NOT NULL'), postgresql_where=sa.text('version IS NOT NULL'))
        batch_op.drop_index('ix_instances_study')
        batch_op.drop_index('ix_instances_status')
        batch_op.drop_index('ix_instances_sha256')

    op.drop_table('instances')
    op.drop_table('associations')

