"""One trainer for every configuration: seeded, resumable, early-stopped on validation MAE.

Each epoch ends with a checkpoint (`checkpoint.pt`: network, optimiser, schedule, history,
best weights so far and the random states), so a killed run resumes where it stopped and a
resumed run follows the same path as an uninterrupted one. The result is a model directory
(safetensors + model card) holding the best epoch's weights, not the last's.

On CUDA the forward pass runs under autocast (float16 with a gradient scaler). On the CPU the
network runs channels-last in float32, which halves EfficientNet's training step there.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose
from torch.utils.data import DataLoader, Dataset

from models.augment import augment_batch
from models.cache import prepared_inputs
from models.card import ModelCard, load_model_dir, save_model_dir
from models.datasets import Sample, split
from models.inference import pick_device
from models.losses import compute_loss
from models.registry import BoneAgeNet, build
from models.splits import stratified_split
from models.transforms import InferenceTransform, make_transforms

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class TrainOptions:
    config: str = "boneage-b0"
    overrides: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    patience: int = 5  # epochs without a better validation MAE before stopping
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    hand_crop: bool = False
    version: str = "dev"
    synthetic: bool = False
    data_description: str = ""
    data_licence: str = ""  # the training data's terms; weights trained on them inherit them
    labels_sha256: str = ""
    init_from: Path | None = None  # a model directory whose weights training starts from
    # A fixed stratified split (models.splits) instead of a random val_fraction: with
    # val_count > 0, `calibration_count` more images are held out for `boneage calibrate`.
    val_count: int = 0
    calibration_count: int = 0
    geometry: str = "pad"  # how a rectangle becomes the square input (models.transforms)
    cache_dir: Path | None = None  # prepared inputs kept here between runs (models.cache)
    train_limit: int = 0  # train on a stratified subset of this many (budgeted comparisons)
    init_rescale: bool = False  # allow --init weights trained at another input size


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    val_mae: float
    seconds: float


@dataclass
class TrainResult:
    card: ModelCard
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool


Progress = Callable[[str, int, int], None]  # phase ("train"/"val"), step, total


class _Prepared(Dataset):
    """Cached network inputs (models.cache); training augments them a batch at a time
    (models.augment)."""

    def __init__(self, inputs: np.ndarray, samples: Sequence[Sample]) -> None:
        self.inputs, self.samples = inputs, samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float, float]:
        image = torch.from_numpy(np.asarray(self.inputs[index], np.float32) / 255.0)[None]
        sample = self.samples[index]
        return image, float(sample.male), float(sample.age_months)


class _Images(Dataset):
    def __init__(self, samples: Sequence[Sample], transform: Callable) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, float, float]:
        sample = self.samples[index]
        image = torch.as_tensor(self.transform(sample.pixels()))
        return image, float(sample.male), float(sample.age_months)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def initialise_from(net: BoneAgeNet, directory: Path, *, rescale: bool = False) -> ModelCard:
    """Copy a trained model's weights into `net`, so that a hospital can fine-tune shipped or
    earlier weights on its own images instead of starting from random ones. The configuration
    must match. The input size must too, unless `rescale` asks for progressive resizing: a
    network that pools globally has the same weights at any size, and one trained fast at a
    small size is a good start at a larger one; by default a change of scale is refused,
    because weights learned at one scale are a poor start at another."""
    start, card = load_model_dir(directory)
    same_size = start.config.input_size == net.config.input_size
    if start.config.name != net.config.name or not (same_size or rescale):
        raise ValueError(
            f"{directory} holds {start.config.name} at {start.config.input_size} px; this run "
            f"trains {net.config.name} at {net.config.input_size} px")
    if not same_size and net.config.flatten:
        raise ValueError(f"{net.config.name} flattens its feature map: its weights depend on "
                         "the input size, so it cannot be rescaled")
    net.load_state_dict(start.state_dict(), strict=True)
    return card


def train(
    samples: list[Sample],
    options: TrainOptions,
    out_dir: Path,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train `options.config` on `samples` and write the best weights to `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(options.seed)
    device = pick_device(options.device)
    fixed = None
    if options.val_count:
        fixed = stratified_split(samples, options.val_count, options.calibration_count,
                                 options.seed)
        train_set, val_set = fixed.train, fixed.val
        if options.train_limit:
            train_set = stratified_split(train_set, options.train_limit, 0, options.seed).val
    else:
        train_set, val_set = split(samples, options.val_fraction, options.seed)
    net = build(options.config, **options.overrides)
    start_card = initialise_from(net, options.init_from, rescale=options.init_rescale) \
        if options.init_from else None
    net = net.to(device)
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    size = net.config.input_size
    train_data, val_data, train_transform = _datasets(train_set, val_set, size, options)
    augment_generator = torch.Generator().manual_seed(options.seed + 1)
    augment = None if train_transform is not None else \
        (lambda batch: augment_batch(batch, augment_generator))
    generator = torch.Generator().manual_seed(options.seed)
    train_loader = DataLoader(train_data, batch_size=options.batch_size,
                              shuffle=True, drop_last=len(train_set) > options.batch_size,
                              num_workers=options.workers, generator=generator)
    val_loader = DataLoader(val_data, batch_size=options.batch_size,
                            num_workers=options.workers)
    optimiser = torch.optim.AdamW(net.parameters(), lr=options.learning_rate,
                                  weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=options.learning_rate, epochs=options.epochs,
        steps_per_epoch=len(train_loader), pct_start=0.15,
    )
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")

    history: list[EpochRecord] = []
    best_mae, best_epoch, best_state, start = float("inf"), -1, None, 0
    checkpoint_path = out_dir / CHECKPOINT_FILE
    if resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        net.load_state_dict(state["net"])
        optimiser.load_state_dict(state["optimiser"])
        steps_now, phases_now = schedule.total_steps, schedule._schedule_phases
        schedule.load_state_dict(state["schedule"])
        if schedule.total_steps != steps_now:
            # --epochs changed on --resume (a run that will not fit its session, shortened):
            # keep the step reached and follow the new length's curve from there.
            schedule.total_steps, schedule._schedule_phases = steps_now, phases_now
        scaler.load_state_dict(state["scaler"])
        history = [EpochRecord(**record) for record in state["history"]]
        best_mae, best_epoch, best_state = state["best_mae"], state["best_epoch"], state["best"]
        start = state["epoch"] + 1
        _restore_random(state["random"], generator)
        if train_transform is not None:
            train_transform.set_random_state(state=state["transform_random"])
        if state.get("augment_random") is not None:
            augment_generator.set_state(state["augment_random"])

    stopped_early = False
    for epoch in range(start, options.epochs):
        if epoch - best_epoch > options.patience and best_epoch >= 0:
            stopped_early = True
            break
        started = datetime.now(UTC)
        loss = _train_epoch(net, train_loader, optimiser, schedule, scaler, device,
                            memory_format, progress, augment)
        val_mae = _validate(net, val_loader, device, memory_format, progress)
        record = EpochRecord(epoch, loss, val_mae,
                             (datetime.now(UTC) - started).total_seconds())
        history.append(record)
        if val_mae < best_mae:
            best_mae, best_epoch = val_mae, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        torch.save({
            "net": net.state_dict(), "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
            "history": [asdict(r) for r in history], "epoch": epoch, "best_mae": best_mae,
            "best_epoch": best_epoch, "best": best_state, "random": _random_state(generator),
            "transform_random": None if train_transform is None else train_transform.R,
            "augment_random": augment_generator.get_state(),
        }, checkpoint_path)
        if on_epoch:
            on_epoch(record)

    if best_state is None:
        raise ValueError("no epoch was trained (is --epochs above the resumed epoch?)")
    net.load_state_dict(best_state)
    card = ModelCard(
        name=options.config,
        version=options.version,
        config={},
        synthetic=options.synthetic,
        training_data={
            "description": options.data_description,
            **({"licence": options.data_licence} if options.data_licence else {}),
            "labels_sha256": options.labels_sha256,
            "train_count": len(train_set),
            "val_count": len(val_set),
            "seed": options.seed,
            "hand_crop": options.hand_crop,
            "geometry": options.geometry,
            **({"split": fixed.describe()} if fixed else {}),
            **({"train_limit": options.train_limit} if options.train_limit else {}),
            **({"initialised_from": {"name": start_card.name, "version": start_card.version,
                                     "weights_sha256": start_card.weights_sha256}}
               if start_card else {}),
        },
        metrics={"val_mae_months": round(best_mae, 3), "best_epoch": best_epoch,
                 "epochs_run": len(history), "stopped_early": stopped_early,
                 "history": [asdict(r) for r in history]},
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    save_model_dir(out_dir, net.to(memory_format=torch.contiguous_format).cpu(), card)
    return TrainResult(card, history, best_epoch, stopped_early)


def _datasets(train_set: list[Sample], val_set: list[Sample], size: int,
              options: TrainOptions) -> tuple[Dataset, Dataset, Compose | None]:
    """Training and validation datasets, and the random transform whose state a checkpoint
    keeps. With a cache directory, the deterministic steps run once per image (models.cache)
    and the random ones a batch at a time (models.augment), so there is no per-sample random
    transform; without one, every step runs per sample, as `make_transforms` composes them."""
    if options.cache_dir is None:
        train_transform = make_transforms(size, train=True, hand_crop=options.hand_crop,
                                          geometry=options.geometry)
        val_transform = make_transforms(size, train=False, hand_crop=options.hand_crop,
                                        geometry=options.geometry)
        train_transform.set_random_state(seed=options.seed)
        return (_Images(train_set, train_transform), _Images(val_set, val_transform),
                train_transform)
    prepare = InferenceTransform(size, hand_crop=options.hand_crop, geometry=options.geometry)
    return (_Prepared(prepared_inputs(train_set, prepare, options.cache_dir), train_set),
            _Prepared(prepared_inputs(val_set, prepare, options.cache_dir), val_set), None)


def _train_epoch(net: BoneAgeNet, loader: DataLoader, optimiser, schedule, scaler,  # type: ignore[no-untyped-def]
                 device: torch.device, memory_format, progress: Progress | None,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float:
    net.train()
    total, count = 0.0, 0
    for step, (images, males, ages) in enumerate(loader, 1):
        if augment is not None:
            images = augment(images)
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        males, ages = males.to(device), ages.to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            outputs = net(images, males)
        loss, _ = compute_loss(net.config, outputs, ages)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        schedule.step()
        total += float(loss.detach()) * len(ages)
        count += len(ages)
        if progress:
            progress("train", step, len(loader))
    return total / max(count, 1)


@torch.no_grad()
def _validate(net: BoneAgeNet, loader: DataLoader, device: torch.device, memory_format,  # type: ignore[no-untyped-def]
              progress: Progress | None) -> float:
    net.eval()
    errors = []
    for step, (images, males, ages) in enumerate(loader, 1):
        images = images.to(device).contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            predicted = net(images, males.to(device))["age"].float().cpu()
        errors.append((predicted - ages.float()).abs())
        if progress:
            progress("val", step, len(loader))
    return float(torch.cat(errors).mean())


def _random_state(generator: torch.Generator) -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(), "loader": generator.get_state()}


def _restore_random(state: dict[str, Any], generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["loader"])
