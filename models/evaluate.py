"""Evaluation of a model directory on a labelled set: the seed papers' metrics, per sex and per
developmental stage, the 95% interval's coverage, the stage confusion matrix, and plots.

Writes `metrics.json`, `predictions.csv` and three PNGs (predicted vs true, Bland-Altman,
absolute error by age) so a hospital can judge a model on its own data before using it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from models.card import ModelIdentity
from models.datasets import Sample
from models.heads import STAGE_EDGES, STAGE_NAMES
from models.inference import Prediction, Predictor

PLOTS = ("predicted_vs_true.png", "bland_altman.png", "error_by_age.png")


@dataclass(frozen=True)
class Scored:
    sample: Sample
    prediction: Prediction


def predict_all(predictor: Predictor, samples: Sequence[Sample], batch_size: int = 16,
                progress: Callable[[int, int], None] | None = None) -> list[Scored]:
    scored: list[Scored] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        predictions = predictor.predict([s.pixels() for s in chunk], [s.male for s in chunk])
        scored += [Scored(s, p) for s, p in zip(chunk, predictions, strict=True)]
        if progress:
            progress(len(scored), len(samples))
    return scored


def regression_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, float | int]:
    """MAE, RMSE, median AE, R^2, Spearman's rho and MAPE (months; MAPE in %)."""
    error = predicted - true
    absolute = np.abs(error)
    metrics: dict[str, float | int] = {"n": len(true)}
    if len(true) == 0:
        return metrics
    metrics |= {
        "mae": float(absolute.mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "median_ae": float(np.median(absolute)),
        "mean_error": float(error.mean()),
        # MAPE over ages of at least one month: a newborn's 0-month label has no percentage.
        "mape": float((absolute[true >= 1] / true[true >= 1]).mean() * 100)
        if (true >= 1).any() else float("nan"),
    }
    variance = ((true - true.mean()) ** 2).sum()
    metrics["r2"] = float(1 - (error**2).sum() / variance) if variance > 0 else float("nan")
    metrics["spearman"] = spearman(true, predicted) if len(true) > 2 else float("nan")
    return metrics


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for value in np.unique(values):
        tied = values == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def stage_index(age_months: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(STAGE_EDGES), age_months, side="right")


def summarise(scored: Sequence[Scored]) -> dict[str, Any]:
    true = np.array([s.sample.age_months for s in scored], dtype=np.float64)
    predicted = np.array([s.prediction.bone_age_months for s in scored], dtype=np.float64)
    males = np.array([s.sample.male for s in scored], dtype=bool)
    true_stage = stage_index(true)
    summary: dict[str, Any] = {
        "overall": regression_metrics(true, predicted),
        "by_sex": {sex: regression_metrics(true[mask], predicted[mask])
                   for sex, mask in (("male", males), ("female", ~males))},
        "by_stage": {name: regression_metrics(true[true_stage == i], predicted[true_stage == i])
                     for i, name in enumerate(STAGE_NAMES)},
    }
    intervals = [s.prediction.interval_95 for s in scored]
    if all(pair is not None for pair in intervals):
        low = np.array([pair[0] for pair in intervals])  # type: ignore[index]
        high = np.array([pair[1] for pair in intervals])  # type: ignore[index]
        summary["interval_95"] = {
            "coverage": float(((true >= low) & (true <= high)).mean()),
            "mean_width_months": float((high - low).mean()),
        }
    predicted_stage = np.array([STAGE_NAMES.index(s.prediction.stage) for s in scored])
    matrix = np.zeros((len(STAGE_NAMES), len(STAGE_NAMES)), dtype=int)
    np.add.at(matrix, (true_stage, predicted_stage), 1)
    summary["stage_confusion"] = {"labels": list(STAGE_NAMES), "rows_true_cols_predicted":
                                  matrix.tolist(),
                                  "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1))}
    confidences: dict[str, int] = {}
    for s in scored:
        key = s.prediction.confidence or "none"
        confidences[key] = confidences.get(key, 0) + 1
    summary["confidence_counts"] = confidences
    summary["by_confidence"] = by_confidence(scored, np.abs(predicted - true))
    gaps = np.array([s.prediction.stage_gap() for s in scored])
    summary["heads_disagree"] = flagged_vs_not(gaps > 1, np.abs(predicted - true))
    return summary


def by_confidence(scored: Sequence[Scored], errors: np.ndarray) -> dict[str, dict[str, float]]:
    """Share and MAE of each confidence tier: the tiers mean something only if the error
    grows from High to Low."""
    tiers = np.array([s.prediction.confidence or "none" for s in scored])
    return {tier: {"share": float((tiers == tier).mean()), "n": int((tiers == tier).sum()),
                   "mae": float(errors[tiers == tier].mean())}
            for tier in ("High", "Medium", "Low", "none") if (tiers == tier).any()}


def flagged_vs_not(flagged: np.ndarray, errors: np.ndarray) -> dict[str, float | None]:
    """How often a flag fires and the MAE with and without it: a flag worth a reader's
    attention fires rarely and on the large errors."""
    return {"rate": float(flagged.mean()),
            "mae_flagged": float(errors[flagged].mean()) if flagged.any() else None,
            "mae_not_flagged": float(errors[~flagged].mean()) if (~flagged).any() else None}


def write_report(scored: Sequence[Scored], out_dir: Path, title: str, model: ModelIdentity
                 ) -> dict[str, Any]:
    """metrics.json, predictions.csv and the plots; returns the metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(scored)
    summary["model"] = {"name": model.name, "version": model.version,
                        "weights_sha256": model.weights_sha256, "synthetic": model.synthetic}
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
    with (out_dir / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "male", "boneage", "predicted", "low95", "high95", "stage",
                         "stage_probability", "confidence"])
        for s in scored:
            p = s.prediction
            low, high = p.interval_95 or (None, None)
            writer.writerow([s.sample.id, s.sample.male, s.sample.age_months,
                             f"{p.bone_age_months:.2f}", low, high, p.stage,
                             "" if p.stage_probability is None else f"{p.stage_probability:.3f}",
                             p.confidence or ""])
    _plot(scored, out_dir, title + (" [SYNTHETIC WEIGHTS]" if model.synthetic else ""))
    return summary


def _plot(scored: Sequence[Scored], out_dir: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    true = np.array([s.sample.age_months for s in scored])
    predicted = np.array([s.prediction.bone_age_months for s in scored])
    males = np.array([s.sample.male for s in scored], dtype=bool)
    colours = np.where(males, "tab:blue", "tab:red")

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(true, predicted, s=6, c=colours, alpha=0.6)
    ax.plot([0, 240], [0, 240], "k--", lw=1)
    ax.set(xlim=(0, 240), ylim=(0, 240), xlabel="true bone age (months)",
           ylabel="predicted (months)", title=f"{title}\npredicted vs true (blue M, red F)")
    fig.savefig(out_dir / PLOTS[0], dpi=100, bbox_inches="tight")
    plt.close(fig)

    mean, difference = (true + predicted) / 2, predicted - true
    bias, spread = difference.mean(), 1.96 * difference.std()
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter(mean, difference, s=6, c=colours, alpha=0.6)
    for level, style in ((bias, "-"), (bias + spread, "--"), (bias - spread, "--")):
        ax.axhline(level, color="k", ls=style, lw=1)
    ax.set(xlabel="mean of true and predicted (months)", ylabel="predicted - true (months)",
           title=f"{title}\nBland-Altman: bias {bias:.1f}, limits +/-{spread:.1f} months")
    fig.savefig(out_dir / PLOTS[1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    edges = np.arange(0, 241, 24)
    which = np.clip(np.digitize(true, edges) - 1, 0, len(edges) - 2)
    groups = [np.abs(difference[which == i]) for i in range(len(edges) - 1)]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.boxplot([g if len(g) else [np.nan] for g in groups], showfliers=False)
    ax.set_xticks(range(1, len(edges)), [f"{a}-{b}" for a, b in pairwise(edges)], rotation=45)
    ax.set(xlabel="true bone age (months)", ylabel="absolute error (months)",
           title=f"{title}\nabsolute error by age")
    fig.savefig(out_dir / PLOTS[2], dpi=100, bbox_inches="tight")
    plt.close(fig)
