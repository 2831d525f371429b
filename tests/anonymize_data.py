"""Datasets with PHI everywhere the profile names, for the anonymize tests."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

CT = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
US = "1.2.840.10008.5.1.4.1.1.6.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"

# Every string below must vanish from the output (checked on the raw bytes).
PHI = [
    "DOE^JOHN", "DOE", "JOHNNY", "PHIID12345", "19610203", "PHIACC777", "PHISTUDYID", "PHIREFDOC",
    "PHIOPERATOR", "PHIPERFORMER", "PHIINSTITUTION", "PHIADDRESS", "PHISTATION", "PHISERIAL",
    "PHIOTHERID", "PHIMICROCHIP", "PHIOTHERNAME", "PHIMOTHER", "PHITELEPHONE", "PHIPRIVATE",
    "PHIPRIVSEQ", "PHINESTED", "PHIDEEP", "PHIOVERLAY", "PHICURVE", "PHIAE", "PHIPREAMBLE",
    "PHIREQUESTER", "PHIINTERPRETER", "PHIROICREATOR", "PHICOMMENT", "PHIOWNER", "PHICLINIC",
    "PHIBREEDREG", "PHISTRAIN", "PHIVERIFIER", "PHITEXTVALUE", "PHIPERSONNAME",
]  # fmt: skip
UID_ROOT = "1.2.826.0.1.3680043.9.7777."  # every UID of the tests starts so: none may survive


def uid(*parts: object) -> str:
    return UID_ROOT + ".".join(str(p) for p in parts)


def person(name: str) -> Dataset:
    item = Dataset()
    item.PersonName = name
    return item


def base(sop_class: str, sop_instance: str, *, patient: str = "1", implicit: bool = False) -> Dataset:
    """A dataset with the patient, study and equipment PHI of a real image."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_instance
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "PHIAE"
    ds.preamble = b"PHIPREAMBLE".ljust(128, b"\0")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyDate = "20230105"
    ds.SeriesDate = "20230105"
    ds.ContentDate = "20230105"
    ds.AcquisitionDateTime = "20230105101500.123+0100"
    ds.StudyTime = "101500"
    ds.ContentTime = "101502"
    ds.AccessionNumber = "PHIACC777"
    ds.InstitutionName = "PHIINSTITUTION"
    ds.InstitutionAddress = "PHIADDRESS"
    ds.ReferringPhysicianName = "PHIREFDOC"
    ds.StationName = "PHISTATION"
    ds.OperatorsName = "PHIOPERATOR"
    ds.PerformingPhysicianName = "PHIPERFORMER"
    ds.Manufacturer = "ACME"
    ds.StudyDescription = "CT HEAD for DOE JOHNNY"
    ds.PatientName = "DOE^JOHNNY" if patient == "1" else f"ROE{patient}^JANE"
    ds.PatientID = "PHIID12345" if patient == "1" else f"OTHER{patient}"
    ds.PatientBirthDate = "19610203"
    ds.PatientSex = "M"
    ds.PatientAge = "061Y"
    ds.OtherPatientIDs = ["PHIOTHERID", "PHIMICROCHIP"]
    other = Dataset()
    other.PatientID = "PHIOTHERID"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.OtherPatientNames = "PHIOTHERNAME"
    ds.PatientMotherBirthName = "PHIMOTHER"
    ds.PatientTelephoneNumbers = "PHITELEPHONE"
    ds.PatientComments = "PHICOMMENT"
    ds.DeviceSerialNumber = "PHISERIAL"
    ds.StudyInstanceUID = uid(patient, 1)
    ds.StudyID = "PHISTUDYID"
    ds.Modality = "CT"
    # nested: a request with the requester, a deeper level with a person name
    request = Dataset()
    request.RequestingPhysician = "PHIREQUESTER"
    request.RequestedProcedureID = "PHIACC777"
    deep = Dataset()
    deep.ConceptNameCodeSequence = Sequence([_code("121008", "DCM", "Person Observer Name")])
    deeper = person("PHIDEEP^NESTED")
    deeper.ValueType = "PNAME"
    deep.ContentSequence = Sequence([deeper])
    request.ReferencedStudySequence = Sequence([_ref(CT, uid(patient, 99))])
    request.ScheduledProtocolCodeSequence = Sequence([deep])
    ds.RequestAttributesSequence = Sequence([request])
    # private tags and a private sequence
    block = ds.private_block(0x0011, "PHI TEST CREATOR", create=True)
    block.add_new(0x01, "LO", "PHIPRIVATE")
    inner = Dataset()
    inner.PatientName = "PHIPRIVSEQ"
    block.add_new(0x02, "SQ", Sequence([inner]))
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _ref(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def ct(patient: str = "1", series: int = 1, number: int = 1, *, implicit: bool = False) -> Dataset:
    ds = base(CT, uid(patient, 1, series, number), patient=patient, implicit=implicit)
    ds.SeriesInstanceUID = uid(patient, 1, series)
    ds.FrameOfReferenceUID = uid(patient, 5005)
    ds.SeriesNumber, ds.InstanceNumber = series, number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ReferencedImageSequence = Sequence([_ref(CT, uid(patient, 1, series, number + 1))])
    ds.SourceImageSequence = Sequence([_ref(CT, uid(patient, 1, series, 100 + number))])
    ds.ImagePositionPatient = [0, 0, number]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 1
    ds.KVP = 120
    ds.PatientPosition = "HFS"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.AcquisitionNumber = 1
    ds.PositionReferenceIndicator = ""
    ds.BurnedInAnnotation = "NO"
    # an overlay with a comment, and a retired curve
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", b"\xff\x00")
    ds.add_new(0x60004000, "LT", "PHIOVERLAY")
    ds.add_new(0x50000022, "LO", "PHICURVE")
    ds.add_new(0x50003000, "OW", b"\x01\x00")
    ds.PixelData = bytes(range(32))
    ds["PixelData"].VR = "OW"
    return ds


def rtstruct(images: list[Dataset]) -> Dataset:
    """A structure set on ``images`` (one study, one frame of reference)."""
    first = images[0]
    ds = base(RTSTRUCT, uid(1, 5002), patient="1")
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = uid(1, 5003)
    ds.SeriesNumber = 99
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "PHIINTERPRETER"
    ds.StructureSetDate, ds.StructureSetTime = "20230106", "120000"
    contour_images = Sequence([_ref(im.SOPClassUID, im.SOPInstanceUID) for im in images])
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = contour_images
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
    roi.ROIName = "PTV"
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = Sequence([roi])
    contour = Dataset()
    contour.ContourImageSequence = Sequence([_ref(images[0].SOPClassUID, images[0].SOPInstanceUID)])
    contour.ContourGeometricType = "POINT"
    contour.NumberOfContourPoints = 1
    contour.ContourData = [0, 0, 1]
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 1
    roi_contour.ROIDisplayColor = [255, 0, 0]
    roi_contour.ContourSequence = Sequence([contour])
    ds.ROIContourSequence = Sequence([roi_contour])
    observation = Dataset()
    observation.ObservationNumber = 1
    observation.ReferencedROINumber = 1
    observation.RTROIInterpretedType = "PTV"
    observation.ROIInterpreter = "PHIINTERPRETER"
    creator = Dataset()
    creator.PersonName = "PHIROICREATOR"
    observation.ROIInterpreterSequence = Sequence([creator])
    ds.RTROIObservationsSequence = Sequence([observation])
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def sr() -> Dataset:
    """A Basic Text SR with names in its content tree."""
    ds = base(BASIC_TEXT_SR, uid(1, 5001))
    ds.Modality = "SR"
    ds.SeriesInstanceUID = uid(1, 5004)
    ds.SeriesNumber, ds.InstanceNumber = 50, 1
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic Imaging Report")])
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    verifier = Dataset()
    verifier.VerifyingObserverName = "PHIVERIFIER"
    verifier.VerifyingOrganization = "PHICLINIC"
    verifier.VerificationDateTime = "20230107090000"
    verifier.VerifyingObserverIdentificationCodeSequence = Sequence()
    ds.VerifyingObserverSequence = Sequence([verifier])
    text = Dataset()
    text.RelationshipType = "CONTAINS"
    text.ValueType = "TEXT"
    text.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    text.TextValue = "PHITEXTVALUE: no bleed in DOE JOHNNY"
    name = Dataset()
    name.RelationshipType = "HAS OBS CONTEXT"
    name.ValueType = "PNAME"
    name.ConceptNameCodeSequence = Sequence([_code("121008", "DCM", "Person Observer Name")])
    name.PersonName = "PHIPERSONNAME"
    ds.ContentSequence = Sequence([name, text])
    ds.ContentDate, ds.ContentTime = "20230107", "090000"
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    return ds


def animal() -> Dataset:
    """A veterinary CT: owner in Responsible Person, microchip in Other Patient IDs."""
    ds = ct(patient="7")
    ds.PatientName = "PHIOWNER^REX"
    ds.PatientSpeciesDescription = "Canine"
    ds.PatientBreedDescription = "Beagle"
    ds.PatientBreedCodeSequence = Sequence()
    registration = Dataset()
    registration.BreedRegistrationNumber = "PHIBREEDREG"
    registration.BreedRegistryCodeSequence = Sequence([_code("109200", "DCM", "American Kennel Club")])
    ds.BreedRegistrationSequence = Sequence([registration])
    ds.ResponsiblePerson = "PHIOWNER^MARY"
    ds.ResponsiblePersonRole = "OWNER"
    ds.ResponsibleOrganization = "PHICLINIC"
    ds.PatientSexNeutered = "ALTERED"
    ds.StrainDescription = "PHISTRAIN line"
    ds.OtherPatientIDs = "PHIMICROCHIP"
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
