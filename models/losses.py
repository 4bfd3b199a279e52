"""Training losses, chosen by a configuration's `loss` name."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.heads import gaussian_target, stage_of
from models.registry import AGE_MEAN, AGE_SD, NetConfig

_EPS = 1e-8


def ldl_terms(
    probs: torch.Tensor, age: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAE of the expectation, and KL(p || N(age, sigma)) as the seed paper writes it."""
    centres = torch.arange(probs.shape[1], device=probs.device, dtype=probs.dtype) + 0.5
    mae = (probs @ centres - age).abs().mean()
    target = gaussian_target(age, sigma)
    kl = (probs * (torch.log(probs + _EPS) - torch.log(target + _EPS))).sum(dim=1).mean()
    return mae, kl


def compute_loss(
    cfg: NetConfig, outputs: dict[str, torch.Tensor], age: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss to backpropagate and its named terms (for logging)."""
    age = age.float()
    terms: dict[str, torch.Tensor] = {}
    if "age_probs" in outputs:
        terms["mae"], terms["kl"] = ldl_terms(outputs["age_probs"], age, cfg.ldl_sigma)
    if "age_regression" in outputs:
        terms["mse"] = F.mse_loss((outputs["age_regression"] - AGE_MEAN) / AGE_SD,
                                  (age - AGE_MEAN) / AGE_SD)
    if "stage_logits" in outputs:
        terms["stage_ce"] = F.cross_entropy(outputs["stage_logits"], stage_of(age))
    weights = {
        "mse": {"mse": 1.0},
        "ldl": {"mae": 1.0, "kl": cfg.ldl_lambda},
        "multitask": {"mse": 1.0, "stage_ce": 1.0},
        "ldl+stage": {"mae": 1.0, "kl": cfg.ldl_lambda, "stage_ce": 1.0},
    }[cfg.loss]
    total = sum(weight * terms[name] for name, weight in weights.items())
    return total, {name: float(value.detach()) for name, value in terms.items()}
