"""Building DX (For Presentation) instances of a left hand PA from a pixel array.

Used to write phantoms as a modality would. The result must pass dicom3tools' dciodvfy without
errors, so every Type 1 and Type 2 attribute of the DX IOD is set deliberately here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_io.sop import DX_FOR_PRESENTATION

# SNOMED CT "Hand" (CID 4009 / 4031), as AnatomicRegionSequence wants it.
HAND_CODE = ("85562004", "SCT", "Hand")
# SNOMED CT "postero-anterior" (CID 4010), the view of a bone-age hand radiograph.
PA_VIEW_CODE = ("399348003", "SCT", "postero-anterior")
IMPLEMENTATION_NAME = "BONEAGE_PACS"


@dataclass(frozen=True)
class HandRadiograph:
    """What a modality knows about one exposure of a hand."""

    pixels: np.ndarray  # uint16 stored values
    bits_stored: int
    photometric: str  # MONOCHROME1 or MONOCHROME2
    pixel_spacing_mm: float
    patient_id: str
    patient_name: str
    sex: str  # "M", "F" or "O"
    birth_date: date | None
    study_date: date
    accession_number: str = ""
    laterality: str = "L"
    series_description: str = "Hand PA"
    image_comments: str | None = None
    manufacturer: str = "boneage-pacs"


def build_dx(image: HandRadiograph, *, sop_instance_uid: str | None = None,
             study_instance_uid: str | None = None) -> Dataset:
    """A DX For Presentation dataset with file meta, ready to save."""
    now = datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_NAME

    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = DX_FOR_PRESENTATION
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    # Patient and study
    ds.PatientName = image.patient_name
    ds.PatientID = image.patient_id
    ds.PatientBirthDate = image.birth_date.strftime("%Y%m%d") if image.birth_date else ""
    ds.PatientSex = image.sex
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.StudyDate = image.study_date.strftime("%Y%m%d")
    ds.StudyTime = "120000"
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = image.accession_number
    ds.StudyDescription = "XR HAND LEFT BONE AGE"
    # Series and equipment
    ds.Modality = "DX"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDescription = image.series_description
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = image.manufacturer
    # Image
    ds.InstanceNumber = 1
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = "120000"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    # Left hand PA, fingers up: rows run towards the patient's left (thumb side), columns
    # from the fingertips towards the wrist, i.e. towards the head in anatomical position.
    ds.PatientOrientation = ["L", "H"] if image.laterality == "L" else ["R", "H"]
    ds.ImageLaterality = image.laterality
    ds.BodyPartExamined = "HAND"
    ds.ViewPosition = "PA"
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = HAND_CODE
    ds.AnatomicRegionSequence = Sequence([region])
    view = Dataset()
    view.CodeValue, view.CodingSchemeDesignator, view.CodeMeaning = PA_VIEW_CODE
    ds.ViewCodeSequence = Sequence([view])
    ds.PositionerType = ""
    ds.AcquisitionContextSequence = Sequence([])
    if image.image_comments:
        ds.ImageComments = image.image_comments
    _set_pixels(ds, image)
    return ds


def _set_pixels(ds: Dataset, image: HandRadiograph) -> None:
    """The image pixel module and the DX detector's calibration and window."""
    rows, columns = image.pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = image.photometric
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = 16
    ds.BitsStored = image.bits_stored
    ds.HighBit = image.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    # -1: higher values mean less X-ray intensity (bone bright as stored, MONOCHROME2).
    ds.PixelIntensityRelationshipSign = -1 if image.photometric == "MONOCHROME2" else 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY" if image.photometric == "MONOCHROME2" else "INVERSE"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    low, high = np.percentile(image.pixels, [1, 99])
    ds.WindowCenter = f"{(low + high) / 2:.1f}"
    ds.WindowWidth = f"{max(high - low, 1.0):.1f}"
    spacing = [f"{image.pixel_spacing_mm:.6f}"] * 2
    ds.ImagerPixelSpacing = spacing
    ds.PixelSpacing = spacing
    ds.DetectorType = "SCINTILLATOR"
    ds.PixelData = image.pixels.astype(np.uint16).tobytes()
