"""Inputs and outputs around a backbone: sex encodings, the age-distribution head, the
developmental-stage head, and how a prediction becomes an interval and a confidence tier.

The six stage buckets and the confidence thresholds are the seed EfficientNet paper's; the
distribution head (softmax over 240 one-month bins, prediction = expectation) is the seed
attention-guided paper's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

AGE_BINS = 240  # one-month bins covering 0..240 months
# Developmental stages (months): infancy, early childhood, mid childhood, early adolescence,
# late adolescence, near maturity.
STAGE_EDGES = (24.0, 60.0, 120.0, 168.0, 204.0)
STAGE_NAMES = (
    "infancy",
    "early childhood",
    "mid childhood",
    "early adolescence",
    "late adolescence",
    "near maturity",
)
SEX_REPLICAS = 32


def stage_of(age_months: torch.Tensor) -> torch.Tensor:
    """Stage index 0..5 of each age."""
    edges = torch.tensor(STAGE_EDGES, dtype=age_months.dtype, device=age_months.device)
    return torch.bucketize(age_months, edges, right=True)


class SexInput(nn.Module):
    """Sex as network input: a scalar, replicated 32 times (GPNet), or a learned 32-unit layer.

    `sex` is 1 for male and 0 for female; replicated and fc use +1/-1 so neither sex is zero.
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in {"none", "scalar", "replicated", "fc"}:
            raise ValueError(f"unknown sex input {mode!r}")
        self.mode = mode
        self.fc = nn.Linear(1, SEX_REPLICAS) if mode == "fc" else None
        self.dim = {"none": 0, "scalar": 1, "replicated": SEX_REPLICAS, "fc": SEX_REPLICAS}[mode]

    def forward(self, sex: torch.Tensor) -> torch.Tensor | None:
        sex = sex.float().view(-1, 1)
        if self.mode == "none":
            return None
        if self.mode == "scalar":
            return sex
        signed = sex * 2.0 - 1.0
        if self.mode == "replicated":
            return signed.expand(-1, SEX_REPLICAS)
        assert self.fc is not None
        return torch.relu(self.fc(signed))


def bin_centres(device: torch.device | None = None) -> torch.Tensor:
    return torch.arange(AGE_BINS, dtype=torch.float32, device=device) + 0.5


def expectation(probabilities: torch.Tensor) -> torch.Tensor:
    return probabilities @ bin_centres(probabilities.device)


def interval(probabilities: torch.Tensor, mass: float = 0.95) -> torch.Tensor:
    """Central `mass` interval (months) of each distribution: (B, 2) low, high."""
    cdf = probabilities.cumsum(dim=-1)
    tail = (1.0 - mass) / 2.0
    edges = torch.arange(AGE_BINS + 1, dtype=probabilities.dtype, device=probabilities.device)
    low = torch.searchsorted(cdf, torch.full_like(cdf[:, :1], tail)).squeeze(1)
    high = torch.searchsorted(cdf, torch.full_like(cdf[:, :1], 1.0 - tail)).squeeze(1)
    return torch.stack([edges[low], edges[(high + 1).clamp(max=AGE_BINS)]], dim=1)


def with_margin(bounds: torch.Tensor, margin: float) -> torch.Tensor:
    """Each interval widened (or, for a negative margin, narrowed) by `margin` months at
    both ends, kept within 0-240 months and never inverted."""
    if margin == 0.0:
        return bounds
    low = (bounds[:, 0] - margin).clamp(0, AGE_BINS)
    high = (bounds[:, 1] + margin).clamp(0, AGE_BINS)
    middle = (bounds[:, 0] + bounds[:, 1]) / 2
    inverted = low > high
    return torch.stack([torch.where(inverted, middle, low),
                        torch.where(inverted, middle, high)], dim=1)


def interval_fit(bounds: torch.Tensor, ages: torch.Tensor, margin: float = 0.0
                 ) -> tuple[float, float]:
    """How often the (margin-adjusted) intervals hold the true age, and their mean width."""
    adjusted = with_margin(bounds, margin)
    covered = ((ages >= adjusted[:, 0]) & (ages <= adjusted[:, 1])).float().mean().item()
    return covered, (adjusted[:, 1] - adjusted[:, 0]).float().mean().item()


def conformal_margin(bounds: torch.Tensor, ages: torch.Tensor, mass: float = 0.95) -> float:
    """Split-conformal calibration of the distribution's interval (conformalised quantile
    regression): the margin that makes `mass` of held-out true ages fall inside.

    Why not a temperature: the head is trained towards N(y, 15 months), so its raw spread is
    the label smoothing's, and the errors that escape it are a heavy tail of confident
    mistakes; a temperature wide enough for those widens every interval several-fold, while
    one margin keeps the head's per-image spread and, on exchangeable data, guarantees the
    coverage. A negative margin narrows intervals that were too wide."""
    outside = torch.maximum(bounds[:, 0] - ages, ages - bounds[:, 1]).sort().values
    rank = min(math.ceil(mass * (len(outside) + 1)), len(outside)) - 1
    return float(outside[rank])


TIER_WIDTH_MONTHS = 72.0  # default for the seed rule; a card's calibration may give its own


def confidence_tier(stage_probability: float, interval_width: float | None = None,
                    width_limit: float = TIER_WIDTH_MONTHS,
                    spread_limits: tuple[float, float] | None = None) -> str:
    """The tier a reader acts on (High: routine, Medium: standard review, Low: expert review).

    With `spread_limits` (High up to the first, Medium up to the second; months of the raw
    95% interval, fitted by `boneage calibrate`), the tier reads the distribution's spread
    alone: on real hands the spread tracks the error and the stage probability does not (it
    is low near any stage boundary, right or wrong; models.calibration.fit_tiers). Without
    them, the seed rule: High >= 70%, Medium 40-69%, Low < 40% of the stage probability, one
    step lower where the raw interval is wider than `width_limit`."""
    if spread_limits is not None and interval_width is not None:
        high, medium = spread_limits
        return "High" if interval_width <= high else "Medium" if interval_width <= medium \
            else "Low"
    tier = 2 if stage_probability >= 0.70 else 1 if stage_probability >= 0.40 else 0
    if interval_width is not None and interval_width > width_limit:
        tier = max(tier - 1, 0)
    return ("Low", "Medium", "High")[tier]


def gaussian_target(age_months: torch.Tensor, sigma: float) -> torch.Tensor:
    """N(age, sigma) discretised over the one-month bins: the label distribution."""
    centres = bin_centres(age_months.device)
    logits = -((centres[None, :] - age_months[:, None]) ** 2) / (2.0 * sigma**2)
    return torch.softmax(logits, dim=-1)
