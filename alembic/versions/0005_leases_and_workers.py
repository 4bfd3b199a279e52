"""Leases on PROCESSING instances (holder, expiry, claims) and the workers table.

A worker's claim is a lease renewed by its heartbeat; the reconciler queues an instance
again when the lease expires, instead of waiting an hour for a silent PROCESSING row.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 06:00:00
"""

import sqlalchemy as sa

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_holder', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('lease_expires_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('claims', sa.Integer(), server_default='0',
                                      nullable=False))
    op.create_table('workers',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('hostname', sa.String(length=128), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('processed', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_workers'))
    )


def downgrade() -> None:
    op.drop_table('workers')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('claims')
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('lease_holder')
