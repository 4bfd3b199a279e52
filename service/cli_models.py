"""`boneage train` and `boneage evaluate`: the model commands.

They live beside the service commands because only the CLI may wire `dicom_io` (the DICOM pixel
reader) into `models` (which knows nothing of DICOM decoding).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

# Options more than one command takes, spelled once.
LabelsCsv = Annotated[Path, typer.Option(help="CSV with id,boneage[,male].")]
BatchSize = Annotated[int, typer.Option()]
DeviceName = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
SplitPart = Annotated[str | None, typer.Option(
    help="Only this part (val, calibration or train) of the fixed split the card records.")]

console = Console()
err = Console(stderr=True)


def _samples(data: Path, labels: Path):  # type: ignore[no-untyped-def]
    from models.datasets import DatasetError, dicom_samples, rsna_samples

    try:
        if any(data.rglob("*.dcm")) or (data / "DICOMDIR").exists():
            from dicom_io.pixels import read_radiograph_pixels

            return dicom_samples(data, labels, read_radiograph_pixels)
        return rsna_samples(data, labels)
    except (DatasetError, ValueError, OSError) as exc:
        err.print(f"[bold red]cannot use the data:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err)


def train(
    data: Annotated[Path, typer.Option(help="Images: RSNA layout (<id>.png) or DICOM files.")],
    labels: LabelsCsv,
    out: Annotated[Path, typer.Option(help="Model directory to write (weights + card).")],
    config: Annotated[str, typer.Option(help="Network configuration.")] = "boneage-b0",
    input_size: Annotated[int | None, typer.Option(help="Override the input size.")] = None,
    epochs: Annotated[int, typer.Option()] = 30,
    batch_size: BatchSize = 16,
    learning_rate: Annotated[float, typer.Option()] = 1e-3,
    patience: Annotated[int, typer.Option(help="Early stopping on validation MAE.")] = 5,
    val_fraction: Annotated[float, typer.Option(
        help="Random validation share, when --val-count is 0.")] = 0.15,
    val_count: Annotated[int, typer.Option(
        help="Fixed split stratified by sex and age: this many validation images.")] = 0,
    calibration_count: Annotated[int, typer.Option(
        help="With --val-count: this many more held out for `boneage calibrate`.")] = 0,
    geometry: Annotated[str, typer.Option(
        help="pad, squash or squash299: how a rectangle becomes the square input (squash299 "
             "for the RSNA 299-px set: a full-size image is first squashed to 299 px with PIL's "
             "bilinear filter, as that set was made).")] = "pad",
    cache: Annotated[Path | None, typer.Option(
        help="Keep prepared network inputs here between epochs and runs.")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
    device: DeviceName = "auto",
    hand_crop: Annotated[bool, typer.Option(help="Crop to the hand before resizing.")] = False,
    version: Annotated[str, typer.Option(help="Version written to the model card.")] = "dev",
    synthetic: Annotated[bool | None, typer.Option(
        help="Mark the weights synthetic (default: when the data are phantoms).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt.")] = False,
    licence: Annotated[str, typer.Option(
        help="The training data's terms, written into the card (weights inherit them).")] = "",
    init_rescale: Annotated[bool, typer.Option(
        help="With --init and --input-size: start from weights trained at another size "
             "(progressive resizing; globally pooled networks only).")] = False,
    init: Annotated[Path | None, typer.Option(
        help="Start from this model directory's weights (fine-tuning); its input size is "
             "used unless --input-size is given.")] = None,
) -> None:
    """Train a network; writes OUT/weights.safetensors, OUT/model.json and a checkpoint."""
    import torch

    from models.datasets import is_synthetic_set, labels_sha256
    from models.train import TrainOptions

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    samples = _samples(data, labels)
    if init is not None and input_size is None:
        from models.card import CARD_FILE

        input_size = json.loads((init / CARD_FILE).read_text())["config"]["input_size"]
    options = TrainOptions(
        config=config, overrides={"input_size": input_size} if input_size else {},
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, patience=patience,
        val_fraction=val_fraction, seed=seed, workers=workers, device=device,
        hand_crop=hand_crop, version=version, val_count=val_count,
        calibration_count=calibration_count, geometry=geometry, cache_dir=cache,
        init_rescale=init_rescale, data_licence=licence,
        synthetic=is_synthetic_set(data) if synthetic is None else synthetic,
        data_description=f"{len(samples)} images from {data.name}/, labels {labels.name}"
        + (" (synthetic phantoms)" if is_synthetic_set(data) else ""),
        labels_sha256=labels_sha256(labels), init_from=init,
    )
    result = _train_with_progress(samples, options, out, resume)
    print(json.dumps({
        "out": str(out), "best_epoch": result.best_epoch + 1,
        "val_mae_months": result.card.metrics["val_mae_months"],
        "stopped_early": result.stopped_early, "synthetic": result.card.synthetic,
        "weights_sha256": result.card.weights_sha256,
    }))


def _train_with_progress(samples, options, out: Path, resume: bool):  # type: ignore[no-untyped-def]
    """`models.train.train` with a progress bar per phase and a line per epoch."""
    from models.train import train as run_training

    with _progress_bar() as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, step: int, total: int) -> None:
            if phase not in tasks or step == 1:
                if phase in tasks:
                    bar.remove_task(tasks[phase])
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=step)

        def on_epoch(record) -> None:  # type: ignore[no-untyped-def]
            bar.console.print(f"epoch {record.epoch + 1}: train loss {record.train_loss:.3f}, "
                              f"validation MAE {record.val_mae:.2f} months "
                              f"({record.seconds:.0f} s)", highlight=False)

        return run_training(samples, options, out, resume=resume, progress=progress,
                            on_epoch=on_epoch)


def evaluate(
    model: Annotated[Path, typer.Option(help="Model directory (weights + card).")],
    data: Annotated[Path, typer.Option(help="Images: RSNA layout or DICOM files.")],
    labels: LabelsCsv,
    out: Annotated[Path, typer.Option(help="Directory for metrics.json and plots.")],
    part: SplitPart = None,
    limit: Annotated[int, typer.Option(help="Score only the first N images (0: all).")] = 0,
    batch_size: BatchSize = 16,
    device: DeviceName = "auto",
) -> None:
    """Score a model on a labelled set: metrics per sex and stage, coverage, plots."""
    from models.evaluate import predict_all, write_report

    predictor = _predictor(model, device)
    samples = _part(_samples(data, labels), predictor.card, part)
    samples = samples[:limit] if limit else samples
    with _progress_bar() as bar:
        task = bar.add_task("predicting", total=len(samples))
        scored = predict_all(predictor, samples, batch_size,
                             progress=lambda done, _: bar.update(task, completed=done))
    summary = write_report(scored, out, f"{predictor.model.name} {predictor.model.version} on "
                                        f"{data.name}", predictor.model)
    overall = summary["overall"]
    line = (f"MAE {overall['mae']:.2f} months, RMSE {overall['rmse']:.2f}, "
            f"R2 {overall['r2']:.3f} on {overall['n']} images")
    if "interval_95" in summary:
        line += f"; 95% interval coverage {summary['interval_95']['coverage']:.1%}"
    console.print(line + f"; written to {out}", highlight=False)


def _predictor(model: Path, device: str):  # type: ignore[no-untyped-def]
    from models.card import ModelDirError
    from models.inference import Predictor, pick_device

    try:
        return Predictor.from_dir(model, pick_device(device))
    except ModelDirError as exc:
        err.print(f"[bold red]cannot load the model:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def calibrate(
    model: Annotated[Path, typer.Option(help="Model directory; its card gains the fit.")],
    data: Annotated[Path, typer.Option(help="Labelled images the model did not train on.")],
    labels: LabelsCsv,
    part: SplitPart = None,
    batch_size: BatchSize = 16,
    device: DeviceName = "auto",
) -> None:
    """Fit the 95% interval's conformal margin so that it holds 95% of held-out true ages, and
    the confidence rule, so that the tiers order the error."""
    from models.calibration import fit_calibration
    from models.card import amend_card

    predictor = _predictor(model, device)
    samples = _part(_samples(data, labels), predictor.card, part)
    with _progress_bar() as bar:
        task = bar.add_task("predicting", total=len(samples))
        fit = fit_calibration(predictor, samples, batch_size=batch_size,
                           progress=lambda done, _: bar.update(task, completed=done))
    fit["fitted_on"] = (f"{len(samples)} images from {data.name}/ ({labels.name})"
                        + (f", the fixed split's {part} part" if part else ""))
    amend_card(model, "calibration", "", fit)
    print(json.dumps(fit))


def _part(samples, card, part: str | None):  # type: ignore[no-untyped-def]
    """The samples of one part of the fixed split recorded in the model card."""
    if part is None:
        return samples
    from models.splits import SplitMismatch, split_from_card

    recorded = card.training_data.get("split")
    if not recorded:
        err.print(f"[bold red]{card.name} {card.version} records no fixed split[/]")
        raise typer.Exit(2)
    try:
        return split_from_card(samples, recorded).part(part)
    except (SplitMismatch, ValueError) as exc:
        err.print(f"[bold red]cannot select the {part} part:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _inputs(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.name != "DICOMDIR")
        else:
            files.append(path)
    return files


def predict(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders; PNG/JPEG too.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    out: Annotated[Path | None, typer.Option(
        help="Write each result's JSON, SR and report image (DICOM input) here.")] = None,
    sex: Annotated[str | None, typer.Option(help="M or F, for PNG/JPEG input.")] = None,
    model: Annotated[Path | None, typer.Option(help="Model directory (default: shipped).")]
    = None,
) -> None:
    """Run the assessment pipeline offline (no server, no database) and print the results."""
    from dicom_io.pixels import from_image
    from models.datasets import IMAGE_SUFFIXES, read_image_file
    from service.pipeline import Assessor
    from service.reporting import build_outputs
    from service.settings import load_settings

    if sex is not None and sex.upper() not in {"M", "F"}:
        err.print("[bold red]--sex must be M or F[/]")
        raise typer.Exit(2)
    files = _inputs(paths)
    if not files:
        err.print("[bold red]no input files[/]")
        raise typer.Exit(2)
    settings = load_settings()
    assessor = Assessor.load(model or settings.model_dir, settings.gates, settings.device)
    if out:
        out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in files:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            try:
                pixels = read_image_file(path)
            except OSError as exc:
                err.print(f"{path.name}: unreadable image ({exc})", highlight=False)
                continue
            assessment = assessor.assess_image(
                from_image(pixels, sex.upper() if sex else None, path.stem))
        else:
            assessment = assessor.assess_path(path)
        result = assessment.as_json() | {"file": str(path)}
        if out:
            name = assessment.sop_instance_uid or path.stem
            (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
            outputs = build_outputs(assessment, report_rejections=settings.report_rejections)
            for kind, dataset in outputs.items():
                dataset.save_as(out / f"{name}.{kind}.dcm", enforce_file_format=True)
            result["outputs"] = sorted(outputs)
        if as_json:
            print(json.dumps(result))
        rows.append(result)
    if not as_json:
        _print_table(rows)


def _print_table(rows: list[dict]) -> None:
    from rich.table import Table

    table = Table("file", "status", "reason / flags", "bone age (mo)", "95% interval", "stage",
                  "confidence", "SDS")
    for row in rows:
        interval = row["interval_95"]
        table.add_row(
            Path(row["file"]).name, row["status"],
            row["reason"] or ", ".join(row["flags"]),
            "" if row["bone_age_months"] is None else f"{row['bone_age_months']:.1f}",
            "" if not interval else f"{interval[0]:.0f}-{interval[1]:.0f}",
            row["stage"] or "", row["confidence"] or "",
            "" if row["sds"] is None else f"{row['sds']:+.2f}",
        )
    console.print(table)
    warning = next((r["model"]["warning"] for r in rows if r.get("model")), None)
    if warning:
        console.print(f"[bold yellow]{warning}[/]", highlight=False)


def train_handcheck(ctx: typer.Context) -> None:
    """Train the "is it a hand" check (options: `python -m models.train_handcheck --help`);
    negatives may be DICOM files."""
    from models.train_handcheck import main

    main(list(ctx.args), read_pixels=_pixels_of_any_file)


def _pixels_of_any_file(path: Path):  # type: ignore[no-untyped-def]
    """A DICOM file through the pixel decoder, anything else as a PNG/JPEG."""
    from models.datasets import IMAGE_SUFFIXES, read_image_file

    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image_file(path)
    from dicom_io.pixels import read_radiograph_pixels

    return read_radiograph_pixels(path)
