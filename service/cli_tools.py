"""`boneage phantoms` and `boneage config`: synthetic test images, and the effective
settings as an operator would write them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli_common import console, err, settings_or_exit
from service.settings import SECRET_FIELDS


def phantoms(
    out: Annotated[Path, typer.Argument(help="Directory to write (created).")],
    count: Annotated[int, typer.Option(help="How many phantoms.")] = 100,
    size: Annotated[int, typer.Option(help="Image size in pixels (square).")] = 1024,
    seed: Annotated[int, typer.Option(help="Same seed, same images.")] = 0,
    labels: Annotated[Path | None, typer.Option(
        help="RSNA label CSV to draw ages and sexes from (real prevalence).")] = None,
    dicom: Annotated[bool, typer.Option(help="Also write DX DICOM files.")] = False,
) -> None:
    """Write synthetic hand radiographs: PNG + labels.csv in the RSNA layout (and DICOM)."""
    from rich.progress import Progress

    from service.phantoms import write_phantom_set

    with Progress(console=err) as bar:
        task = bar.add_task("rendering phantoms", total=count)
        written = write_phantom_set(
            out, count, seed=seed, size=size, labels_source=labels, dicom=dicom,
            progress=lambda done: bar.update(task, completed=done),
        )
    console.print(f"wrote {len(written.labels)} synthetic phantoms to {out}")


def show_config() -> None:
    """The effective settings (environment, then BONEAGE_CONFIG_FILE, then defaults)."""
    settings = settings_or_exit()
    values = settings.model_dump()
    values["database_url"] = settings.effective_database_url
    for secret in SECRET_FIELDS:
        if values.get(secret):
            values[secret] = "(set)"
    for key, value in values.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        console.print(f"BONEAGE_{key.upper()}={shown}", highlight=False)
