"""Decision gates: after the model, on its prediction and the clinical numbers.

Only skeletal maturity rejects (bone age does not apply once the plates are fused); the others
flag an assessment for the radiologist: the stage head and the age estimate more than one
stage apart, a bone age beyond 4 SD of the chronological age, or low confidence.
"""

from __future__ import annotations

from models.inference import Prediction
from service.clinical import ClinicalNumbers
from service.gates import Flag, GateResult, GateThresholds, Reason


def decision_gates(prediction: Prediction, clinical: ClinicalNumbers, sex: str | None,
                   limits: GateThresholds) -> list[GateResult]:
    mature_at = (limits.mature_bone_age_boys_months if sex == "M"
                 else limits.mature_bone_age_girls_months)
    if sex not in {"M", "F"}:  # unknown sex: the later (boys') limit, so no girl is rejected
        mature_at = max(limits.mature_bone_age_boys_months, limits.mature_bone_age_girls_months)
    age = prediction.bone_age_months
    results = [GateResult("skeletal_maturity", age < mature_at,
                          None if age < mature_at else Reason.SKELETALLY_MATURE, round(age, 1),
                          f"< {mature_at:g} months")]
    gap = prediction.stage_gap()
    results.append(GateResult("stage_consistency", gap <= 1,
                              None if gap <= 1 else Flag.HEADS_DISAGREE, gap, "<= 1 stage apart"))
    if clinical.sds is None:
        results.append(GateResult("plausible_for_age", True, None, "no SDS",
                                  f"|SDS| <= {limits.implausible_sds:g}"))
    else:
        plausible = abs(clinical.sds) <= limits.implausible_sds
        results.append(GateResult("plausible_for_age", plausible,
                                  None if plausible else Flag.IMPLAUSIBLE_FOR_AGE,
                                  round(clinical.sds, 2), f"|SDS| <= {limits.implausible_sds:g}"))
    confident = prediction.confidence != "Low"
    results.append(GateResult("confidence", confident, None if confident else Flag.LOW_CONFIDENCE,
                              prediction.confidence or "n/a", "Medium or High"))
    return results
