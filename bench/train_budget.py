"""Compare training settings on one fixed, small budget before a long run.

Every row trains on the same stratified subset of the fixed training split for the same
number of epochs and is scored on the whole fixed validation split (never the calibration
split), so rows differ only in the setting named. A small budget ranks how fast a setting
learns, not where it ends: read the table as a guide for the long run, not as final figures.

Two kinds of rows. From scratch (`b0-*`, `mnv3-*`): on two CPU cores a few epochs from random
weights leave every row near the population mean (about 30 months), so they compare only the
starts (scratch vs the phantom weights). Fine-tuning rows (`ft-*`, with `--start DIR`, a
partly trained model): each continues the same weights for the same budget with one setting
changed (input size, lambda, hand crop), which ranks the settings where the long run will be.

    python bench/train_budget.py --data ../shared/data/rsna-299 --rows b0-160-scratch,...
    python bench/train_budget.py --data ... --start runs/stage1 --rows ft-160,ft-224 \
        --train-count 2000 --epochs 1 --learning-rate 5e-4 --tta ft-160
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.datasets import labels_sha256, rsna_samples
from models.inference import Predictor
from models.shipped import PHANTOM_MODEL_DIR
from models.splits import stratified_split
from models.train import TrainOptions, train

PHANTOM_WEIGHTS = PHANTOM_MODEL_DIR  # boneage-b0 trained on synthetic phantoms

ROWS: dict[str, dict] = {
    "b0-160-scratch": {"config": "boneage-b0", "size": 160},
    "b0-160-phantom-init": {"config": "boneage-b0", "size": 160, "init": PHANTOM_WEIGHTS},
    "mnv3-160": {"config": "boneage-mnv3", "size": 160},
    "mnv3-224": {"config": "boneage-mnv3", "size": 224},
    "mnv3-299": {"config": "boneage-mnv3", "size": 299},
    "mnv3-160-lambda0.1": {"config": "boneage-mnv3", "size": 160, "lambda": 0.1},
    "mnv3-160-lambda1.0": {"config": "boneage-mnv3", "size": 160, "lambda": 1.0},
    "mnv3-160-handcrop": {"config": "boneage-mnv3", "size": 160, "hand_crop": True},
    "ft-160": {"config": "boneage-mnv3", "size": 160, "start": True},
    "ft-224": {"config": "boneage-mnv3", "size": 224, "start": True},
    "ft-299": {"config": "boneage-mnv3", "size": 299, "start": True},
    "ft-160-lambda0.1": {"config": "boneage-mnv3", "size": 160, "start": True, "lambda": 0.1},
    "ft-160-lambda1.0": {"config": "boneage-mnv3", "size": 160, "start": True, "lambda": 1.0},
    "ft-160-handcrop": {"config": "boneage-mnv3", "size": 160, "start": True,
                        "hand_crop": True},
}


def tta_mae(model_dir: Path, samples, shifts: int) -> float:
    """Validation MAE with test-time augmentation: the mean of predictions over small
    rotations and shifts of the input (never a flip)."""
    predictor = Predictor.from_dir(model_dir)
    predictor.tta_views = shifts  # what a card's inference.tta_views sets
    ages = [p.bone_age_months for i in range(0, len(samples), 32)
            for p in predictor.predict([s.pixels() for s in samples[i:i + 32]],
                                       [s.male for s in samples[i:i + 32]])]
    return float(np.abs(np.array(ages) - np.array([s.age_months for s in samples])).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rows", default="all", help="comma-separated row names, or all")
    parser.add_argument("--train-count", type=int, default=1600)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/out/train_budget"))
    parser.add_argument("--cache", type=Path, default=Path("var/cache"))
    parser.add_argument("--tta", default="", help="row whose model is also scored with TTA")
    parser.add_argument("--start", type=Path, help="model directory the ft-* rows continue")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    labels = args.data / "labels.csv"
    samples = rsna_samples(args.data, labels)
    names = list(ROWS) if args.rows == "all" else args.rows.split(",")
    results = []
    for name in names:
        row = ROWS[name]
        overrides = {"input_size": row["size"]}
        if "lambda" in row:
            overrides["ldl_lambda"] = row["lambda"]
        options = TrainOptions(
            config=row["config"], overrides=overrides, epochs=args.epochs, batch_size=32,
            learning_rate=args.learning_rate, patience=args.epochs, seed=0, device="cpu",
            hand_crop=row.get("hand_crop", False), version=f"budget-{name}",
            data_description=f"budget comparison on {args.data.name}",
            labels_sha256=labels_sha256(labels),
            init_from=args.start if row.get("start") else row.get("init"), init_rescale=True,
            val_count=1200, calibration_count=1000, geometry="squash299", cache_dir=args.cache,
            train_limit=args.train_count,
        )
        started = time.perf_counter()
        result = train(samples, options, args.out / name)
        seconds = time.perf_counter() - started
        line = {"row": name, "val_mae": round(result.card.metrics["val_mae_months"], 2),
                "history": [round(r.val_mae, 2) for r in result.history],
                "minutes": round(seconds / 60, 1)}
        results.append(line)
        print(json.dumps(line), flush=True)
    if args.tta:
        split = stratified_split(samples, 1200, 1000, 0)
        plain = tta_mae(args.out / args.tta, split.val, 1)
        with_tta = tta_mae(args.out / args.tta, split.val, 5)
        print(json.dumps({"row": f"{args.tta} TTA", "val_mae_plain": round(plain, 2),
                          "val_mae_tta5": round(with_tta, 2)}), flush=True)
    (args.out / "table.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
