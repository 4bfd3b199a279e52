"""Network configurations: they build, train a step, and match the seed papers' sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import CONFIGS, build
from models.heads import (
    STAGE_NAMES,
    TIER_WIDTH_MONTHS,
    confidence_tier,
    conformal_margin,
    expectation,
    gaussian_target,
    interval,
    interval_fit,
    stage_of,
    with_margin,
)
from models.losses import compute_loss, ldl_terms
from models.nets.backbones import feature_shape
from models.registry import names_for_body_part

# Small inputs keep the forward/backward test quick; GPNet's reduce conv needs >= 3x3 maps.
SMALL_INPUT = {"gpnet": 160, "ldl": 96, "resnet18": 64, "multitask": 96, "cxr-age": 96,
               "boneage-b0": 96, "boneage-mnv3": 96}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_configuration_runs_forward_and_backward(name):
    torch.manual_seed(0)
    size = SMALL_INPUT[name]
    net = build(name, input_size=size)
    out = net(torch.rand(2, 1, size, size), torch.tensor([1, 0]))
    assert out["age"].shape == (2,) and torch.isfinite(out["age"]).all()
    cfg = net.config
    assert ("age_probs" in out) == cfg.distribution and ("stage_logits" in out) == cfg.stage
    loss, terms = compute_loss(cfg, out, torch.tensor([30.0, 150.0]))
    assert torch.isfinite(loss) and terms
    loss.backward()
    for head in (net.regression_head, net.distribution_head, net.stage_head):
        if head is not None:
            assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.backbone.parameters())


def test_gpnet_final_and_baseline_sizes_match_the_paper():
    final = build("gpnet")  # 1 x 500 FC, replicated sex, reduce conv, 700 px
    assert final.feature_count + 32 == 82_976
    assert final.describe()["parameters"] == pytest.approx(82.15e6, rel=0.03)
    # 16Bit-style baseline, named by the paper's axes alone: 2 x 1000 FC, fc sex embedding,
    # no reduce conv, 500 px. Its 100,352 features are 2048 x 7 x 7: Inception-V3 gives
    # 14 x 14 at 500 px, and without the reduce conv the map is max-pooled 2 x 2.
    baseline = build("gpnet", fc_layers=2, fc_size=1000, sex_embedding="fc",
                     reduce_conv=False, input_size=500)
    assert baseline.feature_count == 100_352
    assert baseline.describe()["parameters"] == pytest.approx(123.17e6, rel=0.03)


@pytest.mark.parametrize("backbone", ["inception_v3", "resnet101", "resnext50"])
@pytest.mark.parametrize("input_size", [300, 500, 700])
@pytest.mark.parametrize("reduce_conv", [True, False])
def test_gpnet_ablation_rows_follow_the_paper_axes(backbone, input_size, reduce_conv):
    """Each row of the ablation grid builds from the paper's axes, and its flattened
    feature count is the reduce conv's (C/2, (H-3)//2+1) or the 2x2 pool's (C, H//2)."""
    net = build("gpnet", backbone=backbone, input_size=input_size, reduce_conv=reduce_conv,
                fc_layers=0)  # the head does not change the feature count; keeps it quick
    channels, height, _ = feature_shape(net.backbone, input_size)
    side = (height - 3) // 2 + 1 if reduce_conv else height // 2
    assert net.feature_count == (channels // 2 if reduce_conv else channels) * side * side


def test_gpnet_ablation_backbones_build():
    for backbone in ("resnet101", "resnext50"):
        net = build("gpnet", backbone=backbone, input_size=160)
        assert net(torch.rand(2, 1, 160, 160), torch.tensor([0, 1]))["age"].shape == (2,)


def test_distribution_head_expectation_interval_and_loss():
    age = torch.tensor([60.0, 100.0, 180.0])
    target = gaussian_target(age, 15.0)
    assert torch.allclose(target.sum(dim=1), torch.ones(3))
    assert torch.allclose(expectation(target), age, atol=0.5)
    # Near 0 months the label distribution is truncated and its mean moves up: the reason
    # the loss keeps an MAE term on the expectation beside the KL term.
    assert float(expectation(gaussian_target(torch.tensor([6.0]), 15.0))) > 12
    bounds = interval(target)
    assert (bounds[:, 0] < age).all() and (bounds[:, 1] > age).all()
    width = bounds[1, 1] - bounds[1, 0]
    assert 55 <= float(width) <= 64  # +-1.96 sigma of N(100, 15), to the bin
    mae, kl = ldl_terms(target, age, 15.0)
    assert float(kl) < 1e-4 and float(mae) < 0.5
    middle = torch.tensor([60.0, 100.0, 140.0])  # away from both truncated ends
    far, _ = ldl_terms(gaussian_target(middle + 40, 15.0), middle, 15.0)
    assert float(far) == pytest.approx(40.0, abs=0.5)


def test_distribution_loss_revives_bins_the_prediction_left_empty():
    """A prediction with no mass above 191 months (what the zero-forcing KL(p || N) left
    stage 10 with) must still be pulled up there for a 216-month hand."""
    logits = torch.full((1, 240), -30.0)
    logits[0, 185:192] = 0.0
    logits.requires_grad_(True)
    mae, kl = ldl_terms(torch.softmax(logits, dim=-1), torch.tensor([216.0]), 15.0,
                        torch.log_softmax(logits, dim=-1))
    (mae + 0.5 * kl).backward()
    assert logits.grad is not None
    # gradient descent raises a logit whose gradient is negative
    assert float(logits.grad[0, 200:230].max()) < -1e-3
    # lambda times the label mass there (0.72 of N(216, 15))
    assert float(logits.grad[0, 200:230].sum()) == pytest.approx(-0.5 * 0.72, abs=0.02)


@pytest.mark.parametrize(("head_sigma", "error_sigma"), [(15.0, 6.0), (3.0, 8.0)])
def test_conformal_margin_gives_honest_coverage_both_ways(head_sigma, error_sigma):
    # Heads trained towards N(y, 15) with estimates off by N(0, 6) cover nearly everything
    # (the margin narrows them); over-confident heads cover too little (it widens them).
    generator = torch.Generator().manual_seed(0)
    ages = torch.rand(4000, generator=generator) * 140 + 40
    estimates = ages + torch.randn(4000, generator=generator) * error_sigma
    bounds = interval(gaussian_target(estimates, head_sigma))
    fit_half, check_half = slice(0, 2000), slice(2000, None)  # fit on one, check on the other
    margin = conformal_margin(bounds[fit_half], ages[fit_half])
    raw_coverage, _ = interval_fit(bounds[check_half], ages[check_half])
    coverage, width = interval_fit(bounds[check_half], ages[check_half], margin)
    assert (margin < 0) == (raw_coverage > 0.95), (margin, raw_coverage)
    assert 0.93 <= coverage <= 0.97, coverage
    assert width == pytest.approx(2 * 1.96 * error_sigma, rel=0.15)
    assert torch.equal(with_margin(bounds, 0.0), bounds)
    squeezed = with_margin(bounds, -100.0)  # never inverted, never outside 0-240
    assert (squeezed[:, 0] <= squeezed[:, 1]).all() and squeezed.min() >= 0


def test_stages_and_confidence_tiers_follow_the_seed():
    ages = torch.tensor([0.0, 23.9, 24.0, 59.9, 60.0, 119.0, 120.0, 168.0, 204.0, 228.0])
    assert stage_of(ages).tolist() == [0, 0, 1, 1, 2, 2, 3, 4, 5, 5]
    assert len(STAGE_NAMES) == 6
    assert [confidence_tier(p) for p in (0.70, 0.69, 0.40, 0.39)] == [
        "High", "Medium", "Medium", "Low"]
    assert confidence_tier(0.9, interval_width=90) == "Medium"
    # A fitted spread rule reads the width alone.
    assert [confidence_tier(0.1, width, spread_limits=(60, 70)) for width in (60, 61, 71)] \
        == ["High", "Medium", "Low"]


def test_confidence_is_fitted_to_the_spread_where_the_stage_probability_says_nothing():
    # As on real hands: the stage probability is unrelated to the error, the head's spread
    # is not. Fitted on one half, the tiers order the error on the other.
    from models.calibration import fit_tiers, tier_errors

    rng = np.random.default_rng(0)
    widths = rng.integers(40, 100, 2000).astype(float)  # interval edges are whole months
    errors = np.abs(rng.normal(0, widths / 8))
    probabilities = rng.uniform(0.2, 1.0, 2000)
    fit = fit_tiers(probabilities[:1000], widths[:1000], errors[:1000])
    low, high = fit["tier_spread_months"]
    assert low < high and fit["tier_rule"].startswith("the raw 95% interval")
    held_out = tier_errors(probabilities[1000:], widths[1000:], errors[1000:],
                           spread_limits=(low, high))
    assert held_out["High"]["mae"] < held_out["Medium"]["mae"] < held_out["Low"]["mae"]
    assert held_out["High"]["share"] == pytest.approx(0.70, abs=0.05)
    seed, spread = fit["tiers_seed_rule_fitted"], fit["tiers_fitted"]  # the seed rule
    # reads the width only through its one-step limit, so it separates the tiers less
    assert spread["Low"]["mae"] - spread["High"]["mae"] > seed["Low"]["mae"] - seed["High"]["mae"]
    # Errors that fall as the spread grows: the spread cannot order them, the seed rule stays.
    backwards = fit_tiers(probabilities, widths, 20 - widths / 5)
    assert "tier_spread_months" not in backwards
    assert backwards["tier_rule"].startswith("seed rule")
    assert backwards["tier_width_months"] == TIER_WIDTH_MONTHS


def test_registry_by_body_part_and_bad_overrides():
    assert names_for_body_part("CHEST") == ["cxr-age"]
    assert "boneage-b0" in names_for_body_part("hand")
    with pytest.raises(KeyError):
        build("no-such-net")
    with pytest.raises(TypeError):
        build("resnet18", no_such_field=1)
