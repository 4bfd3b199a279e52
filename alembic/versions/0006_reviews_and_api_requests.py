"""Radiologists' reviews of assessments, the admin API's request log, and when an admin
retried a dead-lettered delivery.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:40:00
"""

import sqlalchemy as sa

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=False),
    sa.Column('verdict', sa.Enum('ACCEPTED', 'MODIFIED', name='reviewverdict', native_enum=False, length=16), nullable=False),
    sa.Column('reader', sa.String(length=64), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('reader_bone_age_months', sa.Float(), nullable=False),
    sa.Column('ai_bone_age_months', sa.Float(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id'], name=op.f('fk_reviews_assessment_id_assessments')),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_reviews_instance_id_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    op.create_index('ix_reviews_instance', 'reviews', ['instance_id'], unique=False)
    op.create_table('api_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('who', sa.String(length=64), nullable=False),
    sa.Column('auth', sa.String(length=16), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=True),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('action', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_requests'))
    )
    op.create_index('ix_api_requests_at', 'api_requests', ['at'], unique=False)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retried_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('retried_at')
    op.drop_index('ix_api_requests_at', table_name='api_requests')
    op.drop_table('api_requests')
    op.drop_index('ix_reviews_instance', table_name='reviews')
    op.drop_table('reviews')
