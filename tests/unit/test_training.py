"""Training and evaluation end to end on tiny phantom sets, through the real CLI paths."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from dicom_io.pixels import read_radiograph_pixels
from models import build
from models.card import WEIGHTS_FILE, ModelCard, load_model_dir, save_model_dir
from models.datasets import DatasetError, dicom_samples, rsna_samples
from models.evaluate import PLOTS
from models.inference import Predictor
from models.labels import Label, write_labels
from models.train import CHECKPOINT_FILE, TrainOptions, initialise_from, train
from service.phantoms import write_phantom_set
from tests.peers import boneage_command

SIZE = 64  # network input: tiny, so a few epochs take seconds


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory):
    directory = tmp_path_factory.mktemp("phantoms")
    write_phantom_set(directory, 40, seed=5, size=128, dicom=True)
    return directory


def options(**changes) -> TrainOptions:
    base = TrainOptions(config="boneage-b0", overrides={"input_size": SIZE}, epochs=3,
                        batch_size=8, learning_rate=3e-3, patience=10, val_fraction=0.2,
                        seed=1, synthetic=True, version="test")
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_a_few_epochs_lower_the_loss_and_write_a_model_directory(phantom_set, tmp_path):
    samples = rsna_samples(phantom_set, phantom_set / "labels.csv")
    result = train(samples, options(), tmp_path / "model")
    losses = [record.train_loss for record in result.history]
    assert losses[-1] < losses[0], losses
    _, card = load_model_dir(tmp_path / "model")
    assert card.synthetic and card.metrics["epochs_run"] == 3
    assert card.training_data["train_count"] == 32 and card.training_data["val_count"] == 8
    assert card.config["input_size"] == SIZE
    assert (tmp_path / "model" / CHECKPOINT_FILE).is_file()


def test_resume_follows_the_same_path_as_an_uninterrupted_run(phantom_set, tmp_path):
    samples = rsna_samples(phantom_set, phantom_set / "labels.csv")
    train(samples, options(epochs=2), tmp_path / "straight")

    class Stop(Exception):
        pass

    def stop_after_first_epoch(record):
        raise Stop  # as if the process were killed once the first checkpoint is written

    with pytest.raises(Stop):
        train(samples, options(epochs=2), tmp_path / "cut", on_epoch=stop_after_first_epoch)
    result = train(samples, options(epochs=2), tmp_path / "cut", resume=True)
    assert [r.epoch for r in result.history] == [0, 1]
    straight = load_file(str(tmp_path / "straight" / WEIGHTS_FILE))
    resumed = load_file(str(tmp_path / "cut" / WEIGHTS_FILE))
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_resume_with_fewer_epochs_finishes_the_shorter_schedule(phantom_set, tmp_path):
    """A long run that will not fit its session is shortened on --resume: the learning rate
    then anneals to the end of the new length instead of stopping high."""
    samples = rsna_samples(phantom_set, phantom_set / "labels.csv")

    class Stop(Exception):
        pass

    def stop(record):
        raise Stop

    with pytest.raises(Stop):
        train(samples, options(epochs=4), tmp_path / "cut", on_epoch=stop)
    result = train(samples, options(epochs=2), tmp_path / "cut", resume=True)
    assert [r.epoch for r in result.history] == [0, 1]
    schedule = torch.load(tmp_path / "cut" / CHECKPOINT_FILE, weights_only=False)["schedule"]
    assert schedule["last_epoch"] == schedule["total_steps"] == 2 * (32 // 8)
    train(samples, options(epochs=2), tmp_path / "straight")
    straight = torch.load(tmp_path / "straight" / CHECKPOINT_FILE, weights_only=False)
    assert schedule["_last_lr"] == pytest.approx(straight["schedule"]["_last_lr"])
    # ... where the 4-epoch curve would have stood near its peak:
    assert schedule["_last_lr"][0] < options().learning_rate / 10


def test_dicom_folder_with_patient_sex_trains(phantom_set, tmp_path):
    rsna = rsna_samples(phantom_set, phantom_set / "labels.csv")
    csv = tmp_path / "labels.csv"
    with csv.open("w") as handle:  # no `male` column: the sex comes from PatientSex
        handle.write("id,boneage\n" + "".join(f"{s.id},{s.age_months:g}\n" for s in rsna))
    samples = dicom_samples(phantom_set / "dicom", csv, read_radiograph_pixels)
    truth = {s.id: s.male for s in rsna}
    assert len(samples) == 40 and all(truth[s.id] == s.male for s in samples)
    result = train(samples, options(epochs=1), tmp_path / "model")
    assert result.card.training_data["train_count"] == 32


def test_missing_images_are_refused_with_a_reason(phantom_set, tmp_path):
    csv = tmp_path / "labels.csv"
    write_labels(csv, [Label("005000000", 10, True), Label("nope", 20, False)])
    with pytest.raises(DatasetError, match="1 labelled image"):
        rsna_samples(phantom_set, csv)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a `boneage` subcommand as a user would, and require it to succeed."""
    done = subprocess.run(boneage_command(*args), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def last_json(done: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cli_train_then_evaluate_writes_metrics_and_plots(phantom_set, tmp_path):
    model = tmp_path / "model"
    data = ("--data", str(phantom_set), "--labels", str(phantom_set / "labels.csv"))
    quick = ("--epochs", "1", "--batch-size", "8", "--device", "cpu")
    summary = last_json(run_cli("train", *data, "--out", str(model), "--input-size", str(SIZE),
                                *quick))
    assert summary["synthetic"] is True  # the phantom folder says it is synthetic
    report = tmp_path / "report"
    run_cli("evaluate", "--model", str(model), *data, "--out", str(report))
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["overall"]["n"] == 40
    for key in ("mae", "rmse", "median_ae", "r2", "spearman", "mape"):
        assert key in metrics["overall"] and key in metrics["by_sex"]["male"]
    assert set(metrics["by_stage"]) >= {"infancy", "mid childhood"}
    assert 0.0 <= metrics["interval_95"]["coverage"] <= 1.0
    matrix = metrics["stage_confusion"]["rows_true_cols_predicted"]
    assert sum(map(sum, matrix)) == 40
    for plot in PLOTS:
        assert (report / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fit = last_json(run_cli("calibrate", "--model", str(model), *data))
    net, card = load_model_dir(model)  # the weights' hash still holds
    assert card.calibration == fit and 0.0 <= fit["coverage"] <= 1.0
    assert fit["tier_rule"] and fit["tiers_fitted"]  # a tiny demo model may give one tier
    assert fit["mae_months"] == pytest.approx(metrics["overall"]["mae"], abs=0.01)  # same images
    assert Predictor(net, card).interval_margin == fit["interval_margin_months"]
    spread = fit.get("tier_spread_months")
    assert Predictor(net, card).tier_spread == (None if spread is None else tuple(spread))

    # Fine-tuning starts from those weights, at their input size, and the card says so.
    tuned = tmp_path / "tuned"
    run_cli("train", *data, "--out", str(tuned), "--init", str(model), *quick)
    _, tuned_card = load_model_dir(tuned)
    assert tuned_card.config["input_size"] == SIZE
    assert tuned_card.training_data["initialised_from"] == {
        "name": card.name, "version": card.version, "weights_sha256": card.weights_sha256}


def test_initialise_from_copies_weights_and_refuses_another_scale(tmp_path):
    torch.manual_seed(1)
    source = build("boneage-b0", input_size=SIZE)
    save_model_dir(tmp_path / "m", source, ModelCard(name="boneage-b0", version="t", config={},
                                                       synthetic=True))
    target = build("boneage-b0", input_size=SIZE)
    initialise_from(target, tmp_path / "m")
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    with pytest.raises(ValueError, match="at 96 px"):
        initialise_from(build("boneage-b0", input_size=96), tmp_path / "m")
    # Progressive resizing, asked for: a globally pooled network takes the weights as they are.
    larger = build("boneage-b0", input_size=96)
    initialise_from(larger, tmp_path / "m", rescale=True)
    assert all(torch.equal(larger.state_dict()[k], v) for k, v in source.state_dict().items())


def test_fixed_split_trains_and_scores_the_parts_the_card_records(phantom_set, tmp_path):
    """--val-count holds out a stratified validation and a calibration part; evaluate and
    calibrate --part re-draw exactly those images from the card."""
    model = tmp_path / "model"
    data = ("--data", str(phantom_set), "--labels", str(phantom_set / "labels.csv"))
    run_cli("train", *data, "--out", str(model), "--input-size", str(SIZE), "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--val-count", "8",
            "--calibration-count", "6", "--geometry", "squash", "--cache",
            str(tmp_path / "cache"), "--licence", "test data, no terms")
    _, card = load_model_dir(model)
    split = card.training_data["split"]
    assert (split["train"]["count"], split["val"]["count"], split["calibration"]["count"]) \
        == (26, 8, 6)
    assert card.training_data["geometry"] == "squash"
    assert card.training_data["licence"] == "test data, no terms"
    run_cli("evaluate", "--model", str(model), *data, "--out", str(tmp_path / "r"),
            "--part", "val")
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["overall"]["n"] == 8 and set(metrics["by_confidence"]) <= {
        "High", "Medium", "Low"}
    assert 0.0 <= metrics["heads_disagree"]["rate"] <= 1.0
    fit = last_json(run_cli("calibrate", "--model", str(model), *data, "--part",
                            "calibration"))
    assert "6 images" in fit["fitted_on"] and "calibration part" in fit["fitted_on"]
