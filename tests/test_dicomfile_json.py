"""The fast reader and the DICOM JSON serializer, on files the tests build and pydicom's."""

import base64
import json
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dcmtools.dicom import jsonmodel, tagpath
from dcmtools.dicom import reader as dicomfile
from dcmtools.dicom.reader import ReadError


def build(path: Path, syntax=ExplicitVRLittleEndian, **extra) -> Path:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4.5"
    ds.PatientName = "Müller^Hans=ミュラー^ハンス"
    ds.PatientID = "ID1"
    ds.OtherPatientIDs = ["A", "", "C"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.AccessionNumber = ""
    ds.InstanceNumber = "7"
    ds.PixelSpacing = ["0.5", "0.25"]
    ds.SliceThickness = "2"
    ds.Rows = 2
    ds.Columns = 2
    ds.BitsAllocated = 16
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.add_new(0x00090010, "LO", "ACME 1.0")  # private creator
    ds.add_new(0x00091001, "LO", "secret")
    ds.add_new(0x00091002, "UL", 12345)
    ds.FrameIncrementPointer = 0x00181063
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = "1.2.3.9"
    ref2 = Dataset()
    ref2.ReferencedSOPInstanceUID = "1.2.3.10"
    ds.ReferencedImageSequence = Sequence([ref, ref2])
    ds.ReferencedStudySequence = Sequence()
    ds.RedPaletteColorLookupTableData = bytes(range(16))
    ds.PixelData = b"\x01\x00\x02\x00\x03\x00\x04\x00"
    for key, value in extra.items():
        setattr(ds, key, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)
    return path


def model(path, **kw):
    dicom = dicomfile.read(path, **{k: v for k, v in kw.items() if k == "bulk_threshold"})
    return jsonmodel.to_json_model(dicom.dataset, jsonmodel.JsonOptions(path=str(path), **kw))


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
)
def test_json_model_rules(tmp_path, syntax):
    out = model(build(tmp_path / "a.dcm", syntax))
    # PN as objects of component groups, decoded with the character set.
    assert out["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Müller^Hans", "Ideographic": "ミュラー^ハンス"}]}
    # An empty value inside a multi-value is null; an empty element has no Value.
    assert out["00101000"] == {"vr": "LO", "Value": ["A", None, "C"]}
    assert out["00080050"] == {"vr": "SH"}
    # IS and DS are JSON numbers.
    assert out["00200013"] == {"vr": "IS", "Value": [7]}
    assert out["00280030"] == {"vr": "DS", "Value": [0.5, 0.25]}
    assert out["00180050"]["Value"] == [2]
    # Sequences: items in order, an empty sequence has no Value.
    assert out["00081140"]["Value"][1] == {"00081155": {"vr": "UI", "Value": ["1.2.3.10"]}}
    assert out["00081110"] == {"vr": "SQ"}
    # Private elements keep their (explicit or UN) VR; AT as a tag string.
    assert out["00090010"] == {"vr": "LO", "Value": ["ACME 1.0"]}
    if syntax == ImplicitVRLittleEndian:
        assert out["00091001"] == {"vr": "UN", "InlineBinary": base64.b64encode(b"secret").decode()}
    else:
        assert out["00091001"] == {"vr": "LO", "Value": ["secret"]}
    assert out["00280009"] == {"vr": "AT", "Value": ["00181063"]}
    # Binary data under the threshold inline, little endian, base64.
    pixels = base64.b64decode(out["7FE00010"]["InlineBinary"])
    if syntax == ExplicitVRBigEndian:  # the file holds big endian words: the model is little endian
        assert pixels == b"\x00\x01\x00\x02\x00\x03\x00\x04"
    else:
        assert pixels == b"\x01\x00\x02\x00\x03\x00\x04\x00"
    # No group lengths, keys in order.
    assert not any(key.endswith("0000") for key in out)
    assert list(out) == sorted(out)
    json.dumps(out)  # plain JSON


def test_bulk_threshold_and_uri(tmp_path):
    path = build(tmp_path / "a.dcm", PixelData=bytes(4000))
    out = model(path, bulk_threshold=1024)
    uri = out["7FE00010"]["BulkDataURI"]
    assert uri.startswith("file://") and uri.endswith("length=4000")
    offset = int(uri.split("offset=")[1].split("&")[0])
    assert path.read_bytes()[offset : offset + 4000] == bytes(4000)
    assert "InlineBinary" in out["00281201"]  # 16 bytes, under the threshold
    options = jsonmodel.JsonOptions(path=str(path), bulk_uri=False)
    jsonmodel.to_json_model(dicomfile.read(path).dataset, options)
    assert options.omitted == ["7FE00010"]


def test_pixel_data_is_not_read(tmp_path):
    path = build(tmp_path / "a.dcm", PixelData=bytes(1 << 20))
    dicom = dicomfile.read(path)
    assert dicom.dataset[0x7FE00010].value is None and dicom.dataset[0x7FE00010].length == 1 << 20


def test_bad_element_gets_a_marker_and_the_rest_is_written(tmp_path):
    path = build(tmp_path / "a.dcm")
    data = path.read_bytes().replace(b"IS\x02\x007 ", b"IS\x02\x00X ")
    path.write_bytes(data)
    options = jsonmodel.JsonOptions()
    out = jsonmodel.to_json_model(dicomfile.read(path).dataset, options)
    assert out["00200013"]["error"]["code"] == "bad_value" and out["00200013"]["raw"] == "X "
    assert options.errors == ["00200013"]
    assert out["00100020"] == {"vr": "LO", "Value": ["ID1"]}


def test_flat_form(tmp_path):
    dicom = dicomfile.read(build(tmp_path / "a.dcm"))
    flat = jsonmodel.to_flat(dicom.dataset)
    assert flat["PatientName"] == "Müller^Hans=ミュラー^ハンス"
    assert flat["Rows"] == 2 and flat["PixelSpacing"] == [0.5, 0.25]
    assert flat["AccessionNumber"] is None
    assert flat["ReferencedImageSequence"][1] == {"ReferencedSOPInstanceUID": "1.2.3.10"}
    assert flat["00091001"] == "secret"


def test_read_errors(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    (tmp_path / "text.txt").write_text("hello, this is not DICOM at all\n" * 10)
    good = build(tmp_path / "good.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(good[: len(good) - 5])
    (tmp_path / "preamble_only.dcm").write_bytes(bytes(128) + b"DICM")
    codes = {}
    for name in ("empty.dcm", "text.txt", "cut.dcm", "preamble_only.dcm", "missing.dcm"):
        with pytest.raises(ReadError) as info:
            dicomfile.read(tmp_path / name)
        codes[name] = info.value.code
    assert codes == {
        "empty.dcm": "empty",
        "text.txt": "not_dicom",
        "cut.dcm": "truncated",
        "preamble_only.dcm": "truncated",
        "missing.dcm": "not_found",
    }
    with pytest.raises(ReadError) as info:
        dicomfile.read(tmp_path / "cut.dcm")
    assert info.value.partial.dataset[0x00100020].value.rstrip() == b"ID1"  # what was read is kept


def test_dataset_without_meta_is_read(tmp_path):
    ds = pydicom.dcmread(build(tmp_path / "a.dcm", ImplicitVRLittleEndian))
    raw = tmp_path / "raw.dcm"
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    pydicom.filewriter.write_dataset(fp, ds)  # no preamble, no meta
    raw.write_bytes(fp.getvalue())
    dicom = dicomfile.read(raw)
    assert dicom.transfer_syntax == ImplicitVRLittleEndian and not dicom.has_preamble
    assert dicom.dataset.text(0x00100020) == "ID1"


def test_all_bundled_files_read_or_fail_cleanly(all_test_files):
    outcomes = {}
    for path in all_test_files:
        try:
            dicom = dicomfile.read(path)
            json.dumps(jsonmodel.to_json_model(dicom.dataset, jsonmodel.JsonOptions(path=str(path))))
            outcomes[path.name] = "ok"
        except ReadError as exc:
            outcomes[path.name] = exc.code
    assert outcomes["MR_truncated.dcm"] == "truncated"
    assert outcomes["rtplan_truncated.dcm"] == "truncated"
    assert outcomes["README.txt"] == "not_dicom"
    assert outcomes["image_dfl.dcm"] == "ok"  # deflated
    assert outcomes["SC_rgb_jpeg.dcm"] == "ok"  # implicit data under an explicit syntax
    assert outcomes["DICOMDIR-nooffset"] == "ok"
    assert sum(v == "ok" for v in outcomes.values()) >= 150


def test_big_endian_equals_little_endian(test_files_dir):
    little = dicomfile.read(test_files_dir / "MR_small.dcm", bulk_threshold=1 << 30)
    big = dicomfile.read(test_files_dir / "MR_small_bigendian.dcm", bulk_threshold=1 << 30)
    a = jsonmodel.to_json_model(little.dataset, jsonmodel.JsonOptions(bulk_threshold=1 << 30))
    b = jsonmodel.to_json_model(big.dataset, jsonmodel.JsonOptions(bulk_threshold=1 << 30))
    assert a["7FE00010"] == b["7FE00010"]  # pixel data swapped to little endian
    assert a["00280030"] == b["00280030"] and a["00280010"] == b["00280010"]


def test_tag_paths(tmp_path):
    assert tagpath.parse_path("PatientName")[0].tag == 0x00100010
    assert tagpath.parse_path("(0010,0020)")[0].tag == tagpath.parse_path("00100020")[0].tag == 0x00100020
    steps = tagpath.parse_path("ReferencedImageSequence[1].ReferencedSOPInstanceUID")
    assert [(s.tag, s.index) for s in steps] == [(0x00081140, 1), (0x00081155, None)]
    assert tagpath.parse_key("ScheduledProcedureStepSequence[0].Modality=CT")[1] == "CT"
    with pytest.raises(tagpath.PathError, match="did you mean PatientName"):
        tagpath.parse_path("PatientNam")
    dicom = dicomfile.read(build(tmp_path / "a.dcm"))
    chosen = tagpath.select(
        dicom.dataset,
        [tagpath.parse_path("ReferencedImageSequence[1].ReferencedSOPInstanceUID"), tagpath.parse_path("Rows")],
    )
    out = jsonmodel.to_json_model(chosen)
    assert out == {
        "00081140": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3.10"]}}]},
        "00280010": {"vr": "US", "Value": [2]},
    }
