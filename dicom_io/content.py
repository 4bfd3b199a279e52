"""What a report says, already decided: the service fills a `ReportContent`, and the SR and
SC builders render it. Typed here so that both renderers and the service agree on one
spelling of the outcome and one shape of a gate's result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How an image's assessment ended. The values are the instance statuses the audit DB
    gives the same outcomes, so one maps to the other by value."""

    ASSESSED = "ASSESSED"  # a bone age was estimated (flags may ask for review)
    REJECTED = "REJECTED"  # a gate refused the image; the reason says which


@dataclass(frozen=True)
class GateResult:
    """DESIGN.md's GateResult: one quality gate, passed or not, as the audit DB stores it
    and a report lists it. Defined with the reports because they render it; the gates
    themselves live in the service."""

    name: str
    passed: bool
    code: str | None  # the reason (or flag) code when not passed
    value: float | str | None  # what was measured
    threshold: str | None  # what it was held against, in words ("> 0.02", "PA|AP")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReportContent:
    """Everything a report says. The algorithm fields name the weights (the service copies
    them from one model identity); the rest is the result."""

    outcome: Outcome
    algorithm_name: str
    algorithm_version: str
    weights_sha256: str
    warning: str | None  # e.g. NOT FOR DIAGNOSTIC USE ...; synthetic demo model
    synthetic: bool
    reason: str | None = None
    reason_text: str | None = None
    flags: tuple[tuple[str, str], ...] = ()  # (code, text)
    bone_age_months: float | None = None
    interval_95: tuple[float, float] | None = None
    chronological_age_months: float | None = None
    chronological_age_note: str | None = None
    difference_months: float | None = None
    sds: float | None = None
    normal_range_months: tuple[float, float] | None = None
    classification: str | None = None
    stage: str | None = None
    stage_probability: float | None = None
    confidence: str | None = None
    sex_used: str | None = None
    gates: tuple[GateResult, ...] = ()
