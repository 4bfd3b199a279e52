"""Assessments (one per instance and model version) and every gate result.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:43:16.741674
"""

import sqlalchemy as sa

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('assessments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('model_name', sa.String(length=64), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('weights_sha256', sa.String(length=64), nullable=False),
    sa.Column('synthetic', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('reason_text', sa.Text(), nullable=True),
    sa.Column('flags', sa.Text(), nullable=True),
    sa.Column('bone_age_months', sa.Float(), nullable=True),
    sa.Column('interval_low_months', sa.Float(), nullable=True),
    sa.Column('interval_high_months', sa.Float(), nullable=True),
    sa.Column('stage', sa.String(length=32), nullable=True),
    sa.Column('stage_probability', sa.Float(), nullable=True),
    sa.Column('confidence', sa.String(length=8), nullable=True),
    sa.Column('sex_used', sa.String(length=4), nullable=True),
    sa.Column('chronological_age_months', sa.Float(), nullable=True),
    sa.Column('chronological_age_source', sa.Text(), nullable=True),
    sa.Column('difference_months', sa.Float(), nullable=True),
    sa.Column('sd_months', sa.Float(), nullable=True),
    sa.Column('sds', sa.Float(), nullable=True),
    sa.Column('classification', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_assessments_instance_id_instances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assessments'))
    )
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.create_index('ix_assessments_status', ['status'], unique=False)
        batch_op.create_index('uq_assessments_instance_model', ['instance_id', 'model_version'], unique=True)

    op.create_table('gate_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assessment_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=True),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('threshold', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['assessment_id'], ['assessments.id'], name=op.f('fk_gate_results_assessment_id_assessments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gate_results'))
    )
    with op.batch_alter_table('gate_results', schema=None) as batch_op:
        batch_op.create_index('ix_gate_results_assessment', ['assessment_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('gate_results', schema=None) as batch_op:
        batch_op.drop_index('ix_gate_results_assessment')

    op.drop_table('gate_results')
    with op.batch_alter_table('assessments', schema=None) as batch_op:
        batch_op.drop_index('uq_assessments_instance_model')
        batch_op.drop_index('ix_assessments_status')

    op.drop_table('assessments')
