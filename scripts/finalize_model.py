"""Turn a training stage's output into a shippable model directory, the same way each time.

After `boneage train ... --init models/weights/boneage-mnv3 --out RUN`, this:
1. copies the weights, writes the card's geometry (squash299), the shipped card's inference
   settings (TTA views) and the recipe with this stage appended;
2. refits the conformal margin on the calibration part (`boneage calibrate`);
3. scores the 1,200 held-out validation images (`boneage evaluate`: metrics and plots);
4. measures the decision flags on those predictions (bench/decision_flags.py);
5. sets the regression guard (stratified 300 of val) that tests/unit/test_real_model.py holds;
6. writes `metrics.heldout_val`, the figures the README and the note quote.
predictions.csv (it holds RSNA labels) is removed before anything is committed.

    .venv/bin/python scripts/finalize_model.py RUN OUT --stage "stage 5 --epochs 10 \
        --learning-rate 0.0005 (10.3)" --verdict "..."
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.card import amend_card
from models.inference import Predictor
from models.shipped import DEFAULT_MODEL_DIR
from models.splits import stratified_split
from tests.realdata import RSNA_299, fixed_split

ROOT = Path(__file__).resolve().parents[1]
BONEAGE = [sys.executable, "-m", "worker"]


def prepare(run: Path, out: Path, stage: str) -> None:
    shipped = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "weights.safetensors", out / "weights.safetensors")
    card = json.loads((run / "model.json").read_text())
    card["training_data"]["geometry"] = "squash299"
    card["training_data"]["recipe"] = shipped["training_data"]["recipe"].replace(
        " (10.5; 160-170 s an epoch on 2 CPU cores)", " (10.5)") + f"; then {stage}"
    card["inference"] = shipped["inference"]
    (out / "model.json").write_text(json.dumps(card, indent=2) + "\n")


def run_cli(*args: str) -> None:
    subprocess.run([*BONEAGE, *args], check=True, cwd=ROOT)


def regression_guard(out: Path) -> float:
    predictor = Predictor.from_dir(out)
    split = fixed_split(json.dumps(predictor.card.training_data["split"], sort_keys=True))
    samples = stratified_split(split.val, 300, 0, 0).val
    predicted = np.concatenate([
        [p.bone_age_months for p in predictor.predict([s.pixels() for s in chunk],
                                                       [s.male for s in chunk])]
        for chunk in (samples[i:i + 32] for i in range(0, len(samples), 32))])
    return float(np.abs(predicted - np.array([s.age_months for s in samples])).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--stage", required=True, help="This stage, for the recipe.")
    parser.add_argument("--verdict", required=True)
    args = parser.parse_args()
    prepare(args.run, args.out, args.stage)
    data = ["--data", str(RSNA_299), "--labels", str(RSNA_299 / "labels.csv")]
    run_cli("calibrate", "--model", str(args.out), *data, "--part", "calibration")
    evaluation = args.out / "evaluation"
    run_cli("evaluate", "--model", str(args.out), *data, "--part", "val", "--out",
            str(evaluation))
    flags = json.loads(subprocess.run(
        [sys.executable, str(ROOT / "bench" / "decision_flags.py"),
         str(evaluation / "predictions.csv")], check=True, capture_output=True, text=True,
    ).stdout)
    (evaluation / "decision_flags.json").write_text(json.dumps(flags, indent=1) + "\n")
    (evaluation / "predictions.csv").unlink()
    guard = regression_guard(args.out)
    amend_card(args.out, "metrics", "regression_guard", {
        "count": 300, "seed": 0, "part": "val", "mae_months": round(guard, 3),
        "note": "stratified 300 of the fixed validation part; tests/unit/test_real_model.py "
                "requires the shipped weights to stay within 10%"})
    m = json.loads((evaluation / "metrics.json").read_text())
    overall = m["overall"]
    amend_card(args.out, "metrics", "heldout_val", {
        "part": "val (1,200, never trained on)",
        "mae_months": round(overall["mae"], 2), "rmse_months": round(overall["rmse"], 2),
        "median_ae_months": round(overall["median_ae"], 2), "r2": round(overall["r2"], 3),
        "spearman": round(overall["spearman"], 3),
        "by_sex_mae": {k: round(v["mae"], 2) for k, v in m["by_sex"].items()},
        "by_stage_mae": {k: round(v["mae"], 2) for k, v in m["by_stage"].items()},
        "interval_95_coverage": round(m["interval_95"]["coverage"], 3),
        "interval_95_mean_width_months": round(m["interval_95"]["mean_width_months"], 1),
        "by_confidence": {k: {"share": round(v["share"], 3), "mae": round(v["mae"], 2)}
                          for k, v in m["by_confidence"].items()},
        "heads_disagree": m["heads_disagree"],
        "implausible_for_age": flags["implausible_for_age"],
        "plots": "evaluation/ (boneage evaluate --part val)",
        "verdict": args.verdict,
    })
    print(json.dumps(json.loads((args.out / "model.json").read_text())["metrics"]
                     ["heldout_val"], indent=1))


if __name__ == "__main__":
    main()
