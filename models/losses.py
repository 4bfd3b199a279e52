"""Training losses, chosen by a configuration's `loss` name."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.heads import gaussian_target, stage_of
from models.registry import AGE_MEAN, AGE_SD, NetConfig

_EPS = 1e-8


def ldl_terms(
    probs: torch.Tensor, age: torch.Tensor, sigma: float,
    log_probs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAE of the expectation, and KL(N(age, sigma) || p): the label distribution's
    divergence from the prediction.

    Why this direction, not KL(p || N) as the seed paper writes it: the seed's direction is
    zero-forcing. Its gradient on a bin's logit is proportional to that bin's probability
    (and so is the MAE term's), so a bin the network has once driven to ~0 never learns
    again. Measured on stage 10 (1.0.0-stage10, trained that way): no bin above 191 months
    or below about 24 held any mass, every mature hand was read at 191.4 months (near
    maturity, 204-228 months, mean error -19.9 on val) and the youngest at 25-31 months
    (infancy +26.7). In this direction the gradient on bin k is p_k - N_k: every bin the
    label distribution covers is pulled up until the prediction covers it too. That needs
    the exact `log_probs` (log-softmax): log(p + eps) has no gradient where p << eps."""
    centres = torch.arange(probs.shape[1], device=probs.device, dtype=probs.dtype) + 0.5
    mae = (probs @ centres - age).abs().mean()
    target = gaussian_target(age, sigma)
    if log_probs is None:
        log_probs = torch.log(probs + _EPS)
    kl = (target * (torch.log(target + _EPS) - log_probs)).sum(dim=1).mean()
    return mae, kl


def compute_loss(
    cfg: NetConfig, outputs: dict[str, torch.Tensor], age: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss to backpropagate and its named terms (for logging)."""
    age = age.float()
    terms: dict[str, torch.Tensor] = {}
    if "age_probs" in outputs:
        terms["mae"], terms["kl"] = ldl_terms(outputs["age_probs"], age, cfg.ldl_sigma,
                                              outputs.get("age_log_probs"))
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
