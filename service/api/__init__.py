"""The admin HTTP API (`boneage api`): the audit queries, the admin's writes, health and
readiness, Prometheus metrics and the dashboard page, behind one token."""
