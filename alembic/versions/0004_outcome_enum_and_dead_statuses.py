"""One spelling of an assessment's outcome; drop WAITING and REQUESTED.

- `assessments.status` held "assessed"/"rejected" in lower case while instances use upper
  case: it now holds the `Outcome` values, ASSESSED and REJECTED.
- WAITING was written only by the first release, which had no pipeline. Such an instance was
  never assessed, so it goes back to RECEIVED, where start-up resumes it; its history rows
  become PROCESSING with a note of what they were.
- An association row is never left REQUESTED (rows are written when the association ends); any
  such row is ABORTED, "the process ended before it closed".

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:00:00
"""

import sqlalchemy as sa

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE assessments SET status = UPPER(status)")
    op.execute("UPDATE instance_events SET status = 'PROCESSING', detail = "
               "'picked up (recorded as WAITING by the first release, which had no pipeline)' "
               "WHERE status = 'WAITING'")
    op.execute("UPDATE instances SET status = 'RECEIVED', status_reason = "
               "'was WAITING (first release, no pipeline): to be assessed' "
               "WHERE status = 'WAITING'")
    op.execute("UPDATE associations SET outcome = 'ABORTED' WHERE outcome = 'REQUESTED'")
    with op.batch_alter_table('assessments') as batch:
        batch.alter_column('status', existing_type=sa.String(length=16),
                           type_=sa.Enum('ASSESSED', 'REJECTED', name='outcome',
                                         native_enum=False, length=16),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('assessments') as batch:
        batch.alter_column('status', existing_type=sa.Enum('ASSESSED', 'REJECTED', name='outcome',
                                                           native_enum=False, length=16),
                           type_=sa.String(length=16), existing_nullable=False)
    op.execute("UPDATE assessments SET status = LOWER(status)")
