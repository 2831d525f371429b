#!/usr/bin/env python3
"""Build the bundled sample data in samples/ (committed; rerun to regenerate).

human-ct/: one CT study ("CT sample study") of two CT series and a
secondary capture; vet-dog/: a canine CR study with species, breed and owner; compressed/: MR_small_RLE.dcm
and JPEG2000.dcm copied from pydicom's test files (MIT licence). Everything is
synthetic: no real patient data (no README inside, so that every file under
samples/ is DICOM). UIDs are derived from fixed names so reruns give the same files.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

OUT = Path(__file__).resolve().parent.parent / "samples"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PREFIX = "1.2.826.0.1.3680043.10.1420."  # a UID root for examples


def uid(name: str) -> str:
    return generate_uid(prefix=PREFIX, entropy_srcs=[name])


def image(rows: int, columns: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:columns]
    disc = ((y - rows / 2) ** 2 + (x - columns / 2) ** 2) < (rows / 3) ** 2
    noise = np.random.default_rng(seed).integers(0, 40, (rows, columns))
    return (disc * 1000 + noise).astype(np.int16)


# A study's description is the study's, whatever the modality of a series (the secondary capture
# of study-001 is part of the CT study: one study, one description).
STUDY_DESCRIPTIONS = {"study-001": "CT sample study", "study-042": "CR sample study"}


def base(patient: dict, study: str, series: str, number: int, modality: str, sop_class: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(f"{study}/{series}/{number}")
    ds.StudyInstanceUID = uid(study)
    ds.SeriesInstanceUID = uid(f"{study}/{series}")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240115"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = "ACC" + study[-3:]
    ds.Modality = modality
    ds.Manufacturer = "dcmtools samples"
    ds.InstitutionName = "Sample Clinic"
    ds.ReferringPhysicianName = "WELBY^MARCUS"
    ds.StudyDescription = STUDY_DESCRIPTIONS[study]
    ds.SeriesDescription = series
    ds.StudyID = study[-3:]
    ds.SeriesNumber = int(series.split("-")[0])
    ds.InstanceNumber = number
    for key, value in patient.items():
        setattr(ds, key, value)
    return ds


def pixels(ds: Dataset, array: np.ndarray) -> None:
    ds.Rows, ds.Columns = array.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1
    ds.PixelData = array.tobytes()


def save(ds: Dataset, path: Path) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def display_readings(path: Path) -> None:
    """Photometer readings of a display calibrated to the GSDF (0.8 to 420 cd/m2)
    at the 18 TG18-LN driving levels, with 0.3% meter noise: for verify-display."""
    from dcmtools.display.gsdf import gsdf_luminance, jnd_index

    low, high = jnd_index(0.8), jnd_index(420.0)
    rng = np.random.default_rng(18)
    lines = ["ddl,luminance"]
    for step in range(18):
        ddl = round(step * 255 / 17)
        luminance = gsdf_luminance(low + (high - low) * ddl / 255) * (1 + rng.normal(0, 0.003))
        lines.append(f"{ddl},{luminance:.3f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\nambient,0.15\n")


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    human = {
        "PatientName": "DOE^JANE",
        "PatientID": "PAT001",
        "PatientBirthDate": "19700101",
        "PatientSex": "F",
    }
    for series in ("1-abdomen", "2-chest"):
        for number in range(1, 4):
            ds = base(human, "study-001", series, number, "CT", CTImageStorage)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
            ds.WindowCenter, ds.WindowWidth = "40", "400"
            ds.SliceThickness = "5"
            ds.ImagePositionPatient = [0, 0, 5 * number]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing = ["0.7", "0.7"]
            ds.FrameOfReferenceUID = uid("study-001/frame")
            pixels(ds, image(64, 64, number))
            save(ds, OUT / "human-ct" / series / f"ct{number}.dcm")
    dog = {
        "PatientName": "SMITH^REX",
        "PatientID": "VET042",
        "PatientBirthDate": "20190301",
        "PatientSex": "M",
        "PatientSexNeutered": "ALTERED",
        "PatientSpeciesDescription": "Canine",
        "PatientBreedDescription": "Beagle",
        "ResponsiblePerson": "SMITH^JOHN",
        "ResponsiblePersonRole": "OWNER",
        "ResponsibleOrganization": "Happy Paws Veterinary",
    }
    species = Dataset()
    species.CodeValue, species.CodingSchemeDesignator, species.CodeMeaning = (
        "448771007",
        "SCT",
        "Canis lupus familiaris",
    )
    breed = Dataset()
    breed.CodeValue, breed.CodingSchemeDesignator, breed.CodeMeaning = "132623007", "SCT", "Beagle dog breed"
    for number in range(1, 3):
        ds = base(dog, "study-042", "1-thorax", number, "CR", "1.2.840.10008.5.1.4.1.1.1")
        ds.PatientSpeciesCodeSequence = Sequence([species])
        ds.PatientBreedCodeSequence = Sequence([breed])
        ds.BodyPartExamined = "CHEST"
        pixels(ds, image(96, 80, 10 + number))
        save(ds, OUT / "vet-dog" / f"cr{number}.dcm")
    sc = base(human, "study-001", "3-capture", 1, "OT", SecondaryCaptureImageStorage)
    sc.ConversionType = "WSD"
    pixels(sc, image(32, 48, 99))
    save(sc, OUT / "human-ct" / "3-capture" / "sc1.dcm")
    for name in ("MR_small_RLE.dcm", "JPEG2000.dcm"):
        target = OUT / "compressed" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(get_testdata_file(name), target)
    display_readings(EXAMPLES / "display-readings.csv")
    print(f"wrote {sum(1 for _ in OUT.rglob('*.dcm'))} files under {OUT}, and {EXAMPLES}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
