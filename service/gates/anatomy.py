"""Anatomy gate: is this a hand? A learned check (models.handcheck) trained on real MedNIST
radiographs and validated on real hands and real chest and ankle CR.

A classical check (finger-like protrusions of the largest foreground component) was tried
first and dropped: on the real development hands it counted fingers unreliably (soft tissue
against a grey background, markers, stitched exposures), where the learned check separates
all ten real hands (>= 0.93) from every real negative (<= 0.001).
"""

from __future__ import annotations

import numpy as np

from models.handcheck import HandCheck
from service.gates import GateResult, GateThresholds, Reason


def anatomy_gate(pixels: np.ndarray, check: HandCheck, limits: GateThresholds) -> GateResult:
    probability = check.probability(pixels)
    passed = probability >= limits.min_hand_probability
    return GateResult("is_hand", passed, None if passed else Reason.NOT_A_HAND,
                      round(probability, 4), f">= {limits.min_hand_probability}")
