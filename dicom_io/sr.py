"""The bone-age result as a Comprehensive 3D SR holding a TID 1500 Measurement Report.

One image-level measurement group (TID 1501) cites the source radiograph and holds the bone
age (with its 95% interval as measurement uncertainty and the +/-2 SD band around the
chronological age as normal-range properties), the chronological age, the difference, the SDS,
the quality gates' measured values, and coded evaluations: stage, delayed/normal/advanced,
confidence, gate outcome, flags, and the warning of non-validated weights. A rejected image
gets the same document with the outcome, the reason and the gates' values, and no age.

The document is complete, unverified and preliminary: a radiologist reads it, it does not sign
itself. The builder is a pure function of its inputs; UIDs are derived, so a re-run replaces.
"""

from __future__ import annotations

import highdicom as hd
from highdicom.sr import (
    AlgorithmIdentification,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    Measurement,
    MeasurementProperties,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    NormalRangeProperties,
    NumContentItem,
    ObservationContext,
    ObserverContext,
    QualitativeEvaluation,
    RelationshipTypeValues,
    SourceImageForMeasurementGroup,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dicom_io import codes as c
from dicom_io.content import Outcome, ReportContent
from dicom_io.uids import derive_uid

PRODUCT = "boneage-pacs"
SR_SERIES_NUMBER = 9901


def series_description(kind: str, content: ReportContent) -> str:
    """LO, at most 64 characters: what it is, and the warning when there is one."""
    text = f"AI BONE AGE {kind}"
    if content.synthetic:
        text += " - SYNTHETIC DEMO - NOT FOR DIAGNOSTIC USE"
    elif content.warning:
        text += " - RESEARCH MODEL - NOT FOR DIAGNOSTIC USE"
    return text[:64]


def contributing_equipment(content: ReportContent) -> hd.ContributingEquipment:
    """The model as the IHE AI Results profile lists it: manufacturer, model name and
    software version (its device UID is the SR's Device Observer UID; dciodvfy does not know
    Device UID inside this sequence). IHE AIR's "Processing Algorithm" purpose (99IHE
    Newcode1) is not in CID 7005, which highdicom enforces, so the purpose is DCM "Processing
    Equipment" and the description says "Processing Algorithm"."""
    equipment = hd.ContributingEquipment(
        manufacturer=PRODUCT,
        purpose_of_reference=c.PROCESSING_EQUIPMENT,
        manufacturer_model_name=content.algorithm_name,
        software_versions=content.algorithm_version,
        contribution_description=f"Processing Algorithm: {content.algorithm_name} "
                                 f"{content.algorithm_version}"[:64],
    )
    return equipment


# Patient and study attributes our outputs copy from the source; Type 2 in the source IODs, so
# a sloppy sender may leave them out. They are then sent empty, as the standard allows.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID",
                "StudyDate", "StudyTime", "ReferringPhysicianName", "AccessionNumber")


def completed(source: Dataset) -> Dataset:
    """A copy of the source header with every copied Type 2 attribute present."""
    header = Dataset()
    header.update(source)
    if hasattr(source, "file_meta"):
        header.file_meta = source.file_meta
    for keyword in TYPE2_COPIED:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


def build_sr(source: Dataset, content: ReportContent) -> Comprehensive3DSR:
    """`source`: the radiograph's header (pixel data not needed)."""
    source = completed(source)
    version = content.algorithm_version
    device_uid = derive_uid(content.algorithm_name, version, "device")
    algorithm = AlgorithmIdentification(
        name=content.algorithm_name, version=version, manufacturer=PRODUCT,
        parameters=[f"weights sha256 {content.weights_sha256[:16]}",
                    f"sex input {content.sex_used or 'n/a'}"],
    )
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=derive_uid(source.SOPInstanceUID, version, "tracking"),
            identifier="bone age assessment"),
        algorithm_id=algorithm,
        # A rejected image may not show a hand at all: no finding site is claimed for it.
        finding_sites=[FindingSite(c.HAND, laterality=_laterality(source))]
        if content.outcome is Outcome.ASSESSED else None,
        measurements=_measurements(content, algorithm) or None,
        qualitative_evaluations=_evaluations(content),
        source_images=[SourceImageForMeasurementGroup.from_source_image(source)],
    )
    observer = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=device_uid, name=PRODUCT, manufacturer_name=PRODUCT,
            model_name=f"{content.algorithm_name} {version}"[:64]),
    )
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=observer),
        procedure_reported=c.PLAIN_RADIOGRAPHY,
        imaging_measurements=[group],
        title=c.IMAGING_MEASUREMENT_REPORT,
    )
    return Comprehensive3DSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=derive_uid(source.StudyInstanceUID, version, "sr-series"),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=derive_uid(source.SOPInstanceUID, version, "sr"),
        instance_number=1,
        manufacturer=PRODUCT,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=series_description("SR", content),
        contributing_equipment=[contributing_equipment(content)],
        coding_schemes=[c.LOCAL_SCHEME_ITEM],
    )


def _laterality(source: Dataset) -> hd.sr.CodedConcept | None:
    side = str(source.get("ImageLaterality") or source.get("Laterality") or "").upper()
    return {"L": c.LEFT, "R": c.RIGHT}.get(side)


def _measurements(content: ReportContent, algorithm: AlgorithmIdentification
                  ) -> list[Measurement]:
    out: list[Measurement] = []
    if content.bone_age_months is not None:
        properties = _bone_age_properties(content)
        out.append(Measurement(c.BONE_AGE, round(content.bone_age_months, 2), c.MONTHS,
                               algorithm_id=algorithm, properties=properties))
    if content.chronological_age_months is not None:
        out.append(Measurement(c.SUBJECT_AGE, round(content.chronological_age_months, 2),
                               c.MONTHS))
    if content.difference_months is not None:
        out.append(Measurement(c.BONE_AGE_DIFFERENCE, round(content.difference_months, 2),
                               c.MONTHS, algorithm_id=algorithm))
    if content.sds is not None:
        out.append(Measurement(c.BONE_AGE_SDS, round(content.sds, 3), c.NO_UNITS,
                               algorithm_id=algorithm))
    if content.stage_probability is not None:
        out.append(Measurement(c.STAGE_PROBABILITY, round(content.stage_probability, 4),
                               c.NO_UNITS, algorithm_id=algorithm))
    for gate in content.gates:
        value = gate.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append(Measurement(c.local(f"GATE-{gate.name.upper()}",
                                           f"Quality gate {gate.name}"),
                                   float(value), c.NO_UNITS))
    return out


def _bone_age_properties(content: ReportContent) -> MeasurementProperties | None:
    """The normal range (chronological age +/- 2 SD) and the 95% interval as measurement
    uncertainty, both in months. highdicom writes its uncertainty items with the unit "no
    units", so they are added here with their own unit."""
    if content.bone_age_months is None or (
            content.normal_range_months is None and content.interval_95 is None):
        return None
    normal = None
    if content.normal_range_months is not None:
        low, high = content.normal_range_months
        normal = NormalRangeProperties(
            values=[_num(c.NORMAL_RANGE_LOWER, max(low, 0.0), c.MONTHS),
                    _num(c.NORMAL_RANGE_UPPER, high, c.MONTHS)],
            description="chronological age +/- 2 SD (Greulich-Pyle)",
            authority="Greulich-Pyle atlas SDs (Brush Foundation)",
        )
    properties = MeasurementProperties(normal_range_properties=normal)
    if content.interval_95 is not None:
        age = content.bone_age_months
        properties.append(_num(c.UPPER_UNCERTAINTY, content.interval_95[1] - age, c.MONTHS))
        properties.append(_num(c.LOWER_UNCERTAINTY, age - content.interval_95[0], c.MONTHS))
    return properties


def _evaluations(content: ReportContent) -> list[QualitativeEvaluation]:
    # The meaning stays in lower case ("assessed"), as readers have seen it.
    out = [QualitativeEvaluation(c.GATE_OUTCOME,
                                 c.value_code("OUTCOME", content.outcome.value.lower()))]
    if content.reason:
        out.append(QualitativeEvaluation(
            c.GATE_OUTCOME, c.local(f"REASON-{content.reason}",
                                    f"{content.reason}: {content.reason_text or ''}"[:64])))
    if content.stage:
        out.append(QualitativeEvaluation(c.DEVELOPMENTAL_STAGE,
                                         c.value_code("STAGE", content.stage)))
    if content.classification:
        out.append(QualitativeEvaluation(c.MATURITY_CLASS,
                                         c.value_code("CLASS", content.classification)))
    if content.confidence:
        out.append(QualitativeEvaluation(c.CONFIDENCE_TIER,
                                         c.value_code("CONF", content.confidence)))
    for code, text in content.flags:
        out.append(QualitativeEvaluation(c.REVIEW_FLAG,
                                         c.local(f"FLAG-{code}", f"{code}: {text}"[:64])))
    if content.warning:
        meaning = ("NOT FOR DIAGNOSTIC USE - synthetic demo model" if content.synthetic
                   else "NOT FOR DIAGNOSTIC USE - research model, not validated")
        out.append(QualitativeEvaluation(c.UNVERIFIED_WARNING,
                                         c.local("WARN-NOT-DIAGNOSTIC", meaning)))
    return out


def _num(name, value: float, unit) -> NumContentItem:  # type: ignore[no-untyped-def]
    return NumContentItem(name=name, value=round(value, 2), unit=unit,
                          relationship_type=RelationshipTypeValues.HAS_PROPERTIES)
