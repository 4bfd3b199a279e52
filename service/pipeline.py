"""The assessment pipeline: header gates -> decode -> image gates -> anatomy -> model (with
Grad-CAM) -> clinical numbers -> decision gates. One function for the service, the Celery task
and `boneage predict`; it touches no database and no network.

Every failure of the input becomes an `Assessment` with outcome REJECTED and a reason code;
only a fault of our own (a bug, no memory) raises.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from dicom_io.content import Outcome
from dicom_io.header import UnreadableDataset, header_facts, read_dataset, without_pixels
from dicom_io.pixels import DecodeError, Radiograph, decode
from models.card import ModelIdentity
from models.handcheck import HandCheck
from models.inference import Prediction, Predictor, pick_device
from models.shipped import DEFAULT_MODEL_DIR, HAND_CHECK_DIR
from service.clinical import (
    ChronologicalAge,
    ClinicalNumbers,
    chronological_age,
    clinical_numbers,
)
from service.gates import REASON_TEXT, Flag, GateResult, GateThresholds, Reason
from service.gates.anatomy import anatomy_gate
from service.gates.decision import decision_gates
from service.gates.header import header_gates, size_gate
from service.gates.image import image_gates


@dataclass
class Assessment:
    sop_instance_uid: str
    status: Outcome
    reason: str | None
    flags: list[str]
    gates: list[GateResult]
    model: ModelIdentity  # the weights that assessed (or would have assessed) the image
    prediction: Prediction | None = None
    clinical: ClinicalNumbers | None = None
    sex_used: str | None = None  # "M", "F", or "both" when the header had none
    radiograph: Radiograph | None = field(default=None, repr=False)
    detail: str | None = None  # e.g. the decoder's message
    header: Dataset | None = field(default=None, repr=False)  # source header, for reports

    @property
    def reason_text(self) -> str | None:
        if self.reason is None:
            return None
        text = REASON_TEXT.get(Reason(self.reason), self.reason)
        return f"{text}: {self.detail}" if self.detail else text

    def numbers(self) -> dict[str, Any]:
        """The prediction's and the clinical values, flat; None where there is none (a
        rejected image has no bone age; an unknown birth date, no SDS)."""
        p, c = self.prediction, self.clinical
        out: dict[str, Any] = dict.fromkeys(NUMBER_FIELDS)
        if p is not None:
            out |= {"bone_age_months": p.bone_age_months, "interval_95": p.interval_95,
                    "stage": p.stage, "stage_probability": p.stage_probability,
                    "confidence": p.confidence}
        if c is not None:
            out |= {name: getattr(c, name) for name in CLINICAL_FIELDS}
        return out

    def as_json(self) -> dict[str, Any]:
        digits = {"stage_probability": 3, "sds": 2, "sd_months": 2}
        numbers = {key: _rounded(value, digits.get(key, 1))
                   for key, value in self.numbers().items()}
        return {
            "sop_instance_uid": self.sop_instance_uid,
            "status": self.status.value,
            "reason": self.reason,
            "reason_text": self.reason_text,
            "flags": self.flags,
            **numbers,
            "sex_used": self.sex_used,
            "gates": [g.as_dict() for g in self.gates],
            "model": self.model.as_dict(),
        }


CLINICAL_FIELDS = ("chronological_age_months", "chronological_age_source", "difference_months",
                   "sd_months", "sds", "classification", "normal_range_months")
NUMBER_FIELDS = ("bone_age_months", "interval_95", "stage", "stage_probability", "confidence",
                 *CLINICAL_FIELDS)


def _rounded(value: Any, digits: int) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, tuple):
        return [round(v, digits) for v in value]
    return value


@dataclass(frozen=True)
class _Ready:
    """An image that passed every gate before the network, waiting for its forward pass."""

    radiograph: Radiograph
    gates: list[GateResult]
    chrono: ChronologicalAge
    sex: str | None  # "M", "F" or None (unknown: read as both)


class Assessor:
    """Holds the loaded networks; safe to create after a fork, one per process."""

    def __init__(self, predictor: Predictor, hand_check: HandCheck,
                 limits: GateThresholds | None = None, *, heatmaps: bool = True) -> None:
        self.predictor = predictor
        self.hand_check = hand_check
        self.limits = limits or GateThresholds()
        self.heatmaps = heatmaps

    @property
    def model(self) -> ModelIdentity:
        return self.predictor.model

    @classmethod
    def load(cls, model_dir: Path | None = None, limits: GateThresholds | None = None,
             device: str = "cpu") -> Assessor:
        """`device` is "auto" (CUDA when present), "cpu" or "cuda[:N]"; the hand check stays
        on the CPU (70 k parameters at 64 px: a GPU round trip costs more than it saves)."""
        return cls(Predictor.from_dir(model_dir or DEFAULT_MODEL_DIR, pick_device(device)),
                   HandCheck.from_dir(HAND_CHECK_DIR), limits)

    def assess_path(self, path: Path) -> Assessment:
        [assessment] = self.assess_paths([path])
        return assessment

    def assess_paths(self, paths: Sequence[Path]) -> list[Assessment]:
        """Several instances with one forward pass of the network for those that pass the
        gates before it (what a GPU worker does with the instances waiting for it); the
        result of each is what `assess_path` alone gives."""
        datasets: list[Dataset | None] = []
        screened: list[Assessment | _Ready] = []
        for path in paths:
            try:
                dataset = read_dataset(path)
            except UnreadableDataset as exc:
                datasets.append(None)
                screened.append(self._rejected(path.name, Reason.DECODE_FAILED, [], str(exc)))
                continue
            datasets.append(dataset)
            screened.append(self._screen_dataset(dataset))
        assessments = self._predict_and_decide(screened)
        for assessment, dataset in zip(assessments, datasets, strict=True):
            if dataset is not None:
                assessment.header = without_pixels(dataset)
        return assessments

    def assess_dataset(self, dataset: Dataset) -> Assessment:
        [assessment] = self._predict_and_decide([self._screen_dataset(dataset)])
        assessment.header = without_pixels(dataset)
        return assessment

    def _screen_dataset(self, dataset: Dataset) -> Assessment | _Ready:
        facts = header_facts(dataset)
        uid = facts.sop_instance_uid
        if not uid or not facts.sop_class_uid:
            return self._rejected(uid, Reason.DECODE_FAILED, [],
                                  "not a DICOM image: no SOP Class or SOP Instance UID")
        chrono = chronological_age(facts.birth_date, facts.study_date, facts.patient_age)
        gates = header_gates(facts, chrono.months, self.limits)
        if (failed := _first_rejection(gates)) is not None:
            return self._rejected(uid, failed, gates)
        try:
            radiograph = decode(dataset, facts)
        except DecodeError as exc:
            gates.append(GateResult("decode", False, Reason.DECODE_FAILED, None, "decodable"))
            return self._rejected(uid, Reason.DECODE_FAILED, gates, str(exc))
        gates.append(GateResult("decode", True, None, facts.transfer_syntax_uid, "decodable"))
        return self._screen_pixels(radiograph, gates, chrono)

    def assess_image(self, radiograph: Radiograph) -> Assessment:
        """A PNG/JPEG trial input: no header, so only the size and pixel gates apply."""
        chrono = chronological_age(None, None, None)
        gates = [size_gate(radiograph.shape[0], radiograph.shape[1], self.limits)]
        if (failed := _first_rejection(gates)) is not None:
            return self._rejected(radiograph.facts.sop_instance_uid, failed, gates)
        [assessment] = self._predict_and_decide([self._screen_pixels(radiograph, gates, chrono)])
        return assessment

    def _screen_pixels(self, radiograph: Radiograph, gates: list[GateResult], chrono
                       ) -> Assessment | _Ready:  # type: ignore[no-untyped-def]
        """The gates before the network: a rejection, or an image ready for it."""
        uid = radiograph.facts.sop_instance_uid
        gates += image_gates(radiograph.pixels, radiograph.color_saturation, self.limits)
        if (failed := _first_rejection(gates)) is not None:
            return self._rejected(uid, failed, gates, radiograph=radiograph)
        gates.append(anatomy_gate(radiograph.pixels, self.hand_check, self.limits))
        if (failed := _first_rejection(gates)) is not None:
            return self._rejected(uid, failed, gates, radiograph=radiograph)
        sex = radiograph.facts.sex if radiograph.facts.sex in {"M", "F"} else None
        return _Ready(radiograph, gates, chrono, sex)

    def _predict_and_decide(self, screened: list[Assessment | _Ready]) -> list[Assessment]:
        ready = [item for item in screened if isinstance(item, _Ready)]
        predictions = iter(self.predictor.predict(
            [r.radiograph.pixels for r in ready],
            [None if r.sex is None else r.sex == "M" for r in ready],
            heatmaps=self.heatmaps) if ready else [])
        return [self._decide(item, next(predictions)) if isinstance(item, _Ready) else item
                for item in screened]

    def _decide(self, ready: _Ready, prediction: Prediction) -> Assessment:
        clinical = clinical_numbers(prediction.bone_age_months, ready.chrono, ready.sex)
        gates = ready.gates + decision_gates(prediction, clinical, ready.sex, self.limits)
        flags = [g.code for g in gates if not g.passed and g.code in Flag.__members__]
        failed = _first_rejection(gates)
        return Assessment(ready.radiograph.facts.sop_instance_uid,
                          Outcome.REJECTED if failed else Outcome.ASSESSED, failed, flags,
                          gates, self.model, prediction, clinical, ready.sex or "both",
                          ready.radiograph)

    def _rejected(self, uid: str, reason: str, gates: list[GateResult],
                  detail: str | None = None, radiograph: Radiograph | None = None
                  ) -> Assessment:
        flags = [g.code for g in gates if not g.passed and g.code in Flag.__members__]
        return Assessment(uid, Outcome.REJECTED, reason, flags, gates, self.model,
                          radiograph=radiograph, detail=detail)

def _first_rejection(gates: list[GateResult]) -> str | None:
    for gate in gates:
        if not gate.passed and gate.code in Reason.__members__:
            return gate.code
    return None


_LOADING = threading.Lock()


def shared_assessor(model_dir: Path | None, limits: GateThresholds,
                    device: str = "cpu") -> Assessor:
    """One Assessor per process and configuration, created on first use (after any fork);
    threads asking at once wait for the one load."""
    with _LOADING:
        return _cached_assessor(model_dir, limits, device)


@functools.cache
def _cached_assessor(model_dir: Path | None, limits: GateThresholds, device: str) -> Assessor:
    return Assessor.load(model_dir, limits, device)
