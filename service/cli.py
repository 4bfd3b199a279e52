"""`boneage`: the service's commands, wired into one Typer app.

Each job has its module (models: `cli_models`; the audit DB: `cli_audit` and `cli_db`;
phantoms and the configuration: `cli_tools`). The process entry points that run workers,
`serve` and `worker`, are added by `worker.cli`, so `service` imports nothing of `worker`.
"""

from __future__ import annotations

import typer

from service import cli_models, cli_tools
from service.cli_audit import audit_app, requeue
from service.cli_db import db_app

app = typer.Typer(help="Bone-age assessment service for PACS.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.command()(cli_models.train)
app.command()(cli_models.evaluate)
app.command()(cli_models.calibrate)
app.command()(cli_models.predict)
app.command("train-handcheck", context_settings={
    "allow_extra_args": True, "ignore_unknown_options": True})(cli_models.train_handcheck)
app.command()(requeue)
app.command()(cli_tools.phantoms)
app.command("config")(cli_tools.show_config)
