"""--csv and --tsv (dcmtools.stream.tables): read back with Python's csv module, every cell equals the
value of the JSON record of the same run (dump over samples/, find at three levels and worklist against
`dcmtools listen`, DCMTK-filled, and Orthanc); values with commas, quotes, newlines and non-ASCII names."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydicom
import pytest
from peers import REPO, dcmtools, free_port, records
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian
from qrpeers import build_archive, listen, orthanc, uid, write_worklist

from dcmtools.stream.tables import DUMP_COLUMNS, TableWriter, key_columns, plain_columns

# Values a naive writer gets wrong: separators, quotes, line breaks, names outside ASCII.
TRICKY_NAME = 'O\'Brien, "Jim"^Jürgen'
TRICKY_IDEOGRAPHIC = "Müller^Jürgen=山田^太郎"
TRICKY_DESCRIPTION = 'Thorax, "lateral"\tleft'
TRICKY_COMMENT = 'first line, with a comma\nsecond line; "quoted"\r\nthird'


# ---------------------------------------------------------------- the expected cell, from a --flat record
def expected_text(value: Any) -> str:
    """The documented rule, written independently of the module: the --flat value as text."""
    if value is None:
        return ""
    if isinstance(value, list):
        if any(isinstance(v, dict) for v in value):
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return "\\".join(expected_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def flat_at(dataset: dict[str, Any], column: str) -> Any:
    """The --flat value at a column path: Keyword, Seq[0].Keyword, Seq.Keyword (every item)."""
    values: list[Any] = [dataset]
    for step in column.split("."):
        name, _, index = step.partition("[")
        found: list[Any] = []
        for holder in values:
            value = holder.get(name) if isinstance(holder, dict) else None
            if value is None:
                continue
            if index:
                items = value if isinstance(value, list) else []
                i = int(index.rstrip("]"))
                found += items[i : i + 1]
            elif isinstance(value, list) and step != column.split(".")[-1]:
                found += value
            else:
                found.append(value)
        values = found
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def tables(*args: str) -> subprocess.CompletedProcess:
    """Run dcmtools; stdout decoded as UTF-8 without newline translation (a cell may hold a CR LF)."""
    result = subprocess.run(
        [sys.executable, "-m", "dcmtools", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=600,
    )
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def read_table(text: str, delimiter: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))


def assert_rows_match(rows: list[dict[str, str]], items: list[dict], columns: list[str], lead: list[str]) -> None:
    assert len(rows) == len(items) > 0
    for row, item in zip(rows, items, strict=True):
        assert list(row) == [*lead, *columns, "error", "error_message"]
        for name in lead:
            assert row[name] == expected_text(item.get(name)), name
        data = item.get("dataset") or {}
        for column in columns:
            assert row[column] == expected_text(flat_at(data, column)), (column, row, data)
        error = item.get("error") or {}
        assert row["error"] == error.get("code", "")
        assert row["error_message"] == error.get("message", "")


# ---------------------------------------------------------------- the writer, from Python
MODEL_RECORD = {
    "type": "file",
    "path": "a, b.dcm",
    "ok": True,
    "dataset": {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Müller^Jürgen", "Ideographic": "山田^太郎"}]},
        "00080008": {"vr": "CS", "Value": ["ORIGINAL", "PRIMARY"]},
        "00081030": {"vr": "LO", "Value": [TRICKY_DESCRIPTION]},
        "00204000": {"vr": "LT", "Value": [TRICKY_COMMENT]},
        "00280030": {"vr": "DS", "Value": [0.5, 2.0]},
        "00200013": {"vr": "IS", "Value": [7]},
        "00100020": {"vr": "LO"},
        "7FE00010": {"vr": "OW", "BulkDataURI": "file:///x.dcm?offset=1&length=2"},
        "00081140": {
            "vr": "SQ",
            "Value": [
                {"00081155": {"vr": "UI", "Value": ["1.2.3"]}},
                {"00081155": {"vr": "UI", "Value": ["1.2.4"]}},
            ],
        },
    },
}
COLUMNS = [
    "PatientName",
    "ImageType",
    "StudyDescription",
    "ImageComments",
    "PixelSpacing",
    "InstanceNumber",
    "PatientID",
    "PixelData",
    "ReferencedImageSequence",
    "ReferencedImageSequence[1].ReferencedSOPInstanceUID",
    "ReferencedImageSequence.ReferencedSOPInstanceUID",
    "0008,1155",
    "StudyDate",
]
EXPECTED = [
    "a, b.dcm",
    "Müller^Jürgen=山田^太郎",
    "ORIGINAL\\PRIMARY",
    TRICKY_DESCRIPTION,
    TRICKY_COMMENT,
    "0.5\\2",
    "7",
    "",
    "file:///x.dcm?offset=1&length=2",
    '[{"ReferencedSOPInstanceUID":"1.2.3"},{"ReferencedSOPInstanceUID":"1.2.4"}]',
    "1.2.4",
    "1.2.3\\1.2.4",
    "",  # (0008,1155) is inside the items, not at the top
    "",  # absent
    "",
    "",
]


def flat_of(record: dict) -> dict:
    from dcmtools.net.identifiers import flat_of as convert

    return {**record, "dataset": convert(record["dataset"])}


@pytest.mark.parametrize("delimiter", [",", "\t"])
@pytest.mark.parametrize("form", ["model", "flat"])
def test_the_writer_reads_back_with_the_csv_module(delimiter, form):
    out = io.StringIO(newline="")
    table = TableWriter(out, COLUMNS, lead=["path"], delimiter=delimiter)
    record = MODEL_RECORD if form == "model" else flat_of(MODEL_RECORD)
    table.write(record)
    table.write({"type": "info", "note": "not an item"})
    table.write(
        {"type": "file", "path": "bad\n.dcm", "ok": False, "error": {"code": "not_dicom", "message": 'no, "x"'}}
    )
    table.write({"type": "summary", "total": 2, "ok": 1, "failed": 1})
    table.close()
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline=""), delimiter=delimiter))
    assert rows[0] == ["path", *COLUMNS, "error", "error_message"]
    assert rows[1] == EXPECTED
    assert rows[2] == ["bad\n.dcm"] + [""] * len(COLUMNS) + ["not_dicom", 'no, "x"']
    assert len(rows) == 3  # neither the info record nor the summary is a row


def test_a_table_without_rows_still_has_its_header():
    out = io.StringIO()
    table = TableWriter(out, ["PatientID"])
    table.close()
    table.close()
    assert out.getvalue() == "PatientID,error,error_message\n"


def test_columns_of_keys():
    assert key_columns(["PatientName=DOE*", "StudyDate", "PatientName", "Seq[0].Modality=CT"]) == [
        "PatientName",
        "StudyDate",
        "Seq[0].Modality",
    ]
    assert plain_columns(["SpecificCharacterSet", "PatientName", "PatientSpeciesCodeSequence", "Seq[0].X"]) == [
        "PatientName",
        "Seq[0].X",
    ]


# ---------------------------------------------------------------- dump
@pytest.fixture(scope="module")
def tricky_file(tmp_path_factory) -> Path:
    """A CT slice holding the awkward values, in UTF-8."""
    folder = tmp_path_factory.mktemp("tables")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = TRICKY_IDEOGRAPHIC
    ds.StudyDescription = TRICKY_DESCRIPTION
    ds.ImageComments = TRICKY_COMMENT
    ds.PatientID = "ID,1"
    items = []
    for n in (1, 2):
        item = Dataset()
        item.ReferencedSOPClassUID = ds.SOPClassUID
        item.ReferencedSOPInstanceUID = f"1.2.3.{n}"
        items.append(item)
    ds.ReferencedImageSequence = DicomSequence(items)
    path = folder / "tricky, one.dcm"
    ds.save_as(path, enforce_file_format=True)
    (folder / "not-dicom.dcm").write_text("hello, world\n")
    return path


DUMP_TAGS = [
    "PatientName",
    "0010,0020",
    "StudyDescription",
    "ImageComments",
    "ImageType",
    "PixelSpacing",
    "ReferencedImageSequence",
    "ReferencedImageSequence.ReferencedSOPInstanceUID",
    "ReferencedImageSequence[1].ReferencedSOPInstanceUID",
]


def _keyword_column(column: str) -> str:
    return "PatientID" if column == "0010,0020" else column


@pytest.mark.parametrize("option,delimiter", [("--csv", ","), ("--tsv", "\t")])
def test_dump_table_equals_the_json_records(option, delimiter, tricky_file):
    inputs = [str(REPO / "samples"), str(tricky_file.parent)]
    tags = [arg for tag in DUMP_TAGS for arg in ("-t", tag)]
    table = tables("dump", option, *tags, *inputs)
    flat = dcmtools("dump", "--json", "--flat", *tags, *inputs)
    assert table.returncode == flat.returncode == 1, table.stderr  # not-dicom.dcm failed, and still counts
    assert "Traceback" not in table.stderr
    assert "dump:" in table.stderr and "1 failed" in table.stderr  # the summary, on stderr
    items = [r for r in records(flat.stdout) if r.get("type") != "summary"]
    rows = read_table(table.stdout, delimiter)
    # The JSON records name the tag by keyword: compare column by column through the keyword.
    keyed = [{_keyword_column(k) if k in DUMP_TAGS else k: v for k, v in row.items()} for row in rows]
    assert [r["path"] for r in rows] == [r["path"] for r in items]
    assert_rows_match(keyed, items, [_keyword_column(t) for t in DUMP_TAGS], ["path"])
    tricky = next(r for r in rows if r["path"] == str(tricky_file))
    assert tricky["PatientName"] == TRICKY_IDEOGRAPHIC
    assert tricky["ImageComments"] == TRICKY_COMMENT
    assert tricky["ReferencedImageSequence.ReferencedSOPInstanceUID"] == "1.2.3.1\\1.2.3.2"
    assert next(r for r in rows if r["path"].endswith("not-dicom.dcm"))["error"] == "not_dicom"


def test_dump_table_without_tags_has_the_default_columns(tricky_file):
    table = tables("dump", "--csv", str(REPO / "samples"), "-j", "2")
    model = dcmtools("dump", "--json", str(REPO / "samples"))
    assert table.returncode == model.returncode == 0, table.stderr
    rows = read_table(table.stdout, ",")
    items = [flat_of(r) for r in records(model.stdout) if r.get("type") != "summary"]
    assert_rows_match(rows, items, list(DUMP_COLUMNS), ["path"])
    assert len(rows) == len(list((REPO / "samples").rglob("*.dcm")))


@pytest.mark.parametrize(
    "args",
    [
        ["--csv", "--json"],
        ["--csv", "--no-json"],
        ["--tsv", "--flat"],
        ["--csv", "--tsv"],
        ["--csv", "-t", "NoSuchKeyword"],
    ],
)
def test_dump_table_usage_errors(args, tricky_file):
    result = dcmtools("dump", *args, str(tricky_file))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- find and worklist against real peers
@pytest.fixture(scope="module")
def qr_files(tmp_path_factory) -> list[Path]:
    """The test archive, and a study whose values need quoting (UTF-8, a comma, quotes, a tab)."""
    folder = tmp_path_factory.mktemp("tables-archive")
    archive = build_archive(folder)
    ds = pydicom.dcmread(archive.files[0])
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = TRICKY_NAME
    ds.PatientID = "Q,1"
    ds.StudyDescription = TRICKY_DESCRIPTION
    ds.SeriesDescription = 'Série "une", a'
    ds.StudyInstanceUID = uid("tables/study")
    ds.SeriesInstanceUID = uid("tables/series")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("tables/instance")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = folder / "tricky.dcm"
    ds.save_as(path, enforce_file_format=True)
    return [*archive.files, path]


@pytest.fixture(scope="module")
def wl_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tables-worklist")
    write_worklist(folder)
    return folder


@pytest.fixture(scope="module")
def orthanc_pacs(tmp_path_factory, qr_files, wl_folder):
    """Orthanc with the archive, the worklist items and its DICOMweb plugin."""
    work = tmp_path_factory.mktemp("tables-orthanc")
    worklists = work / "worklists"
    shutil.copytree(wl_folder, worklists)
    with orthanc(work, {"me": ("DCMTOOLS", free_port())}, qr_files, worklist=worklists, dicomweb=True) as peer:
        yield peer


@pytest.fixture(scope="module", params=["listen", "orthanc"])
def pacs(request, tmp_path_factory, qr_files, wl_folder):
    if request.param == "orthanc":
        yield request.getfixturevalue("orthanc_pacs")
        return
    work = tmp_path_factory.mktemp("tables-listen")
    with listen(work, files=qr_files, worklist=wl_folder) as peer:
        yield peer


FIND_CASES = [
    ("study", ["PatientName", "PatientID", "StudyDescription", "ModalitiesInStudy", "StudyInstanceUID"]),
    ("series", ["PatientID", "SeriesDescription", "Modality", "SeriesNumber", "SeriesInstanceUID"]),
    ("image", ["PatientID", "InstanceNumber", "SOPInstanceUID"]),
]


@pytest.mark.peer
@pytest.mark.parametrize("level,keys", FIND_CASES)
def test_find_table_equals_the_json_records(pacs, level, keys):
    args = ["find", pacs.peer, "--level", level, *(a for k in keys for a in ("-k", k))]
    table = tables(*args, "--csv")
    flat = dcmtools(*args, "--json", "--flat")
    assert table.returncode == flat.returncode == 0, table.stderr + flat.stderr
    matches = sorted(
        (r for r in records(flat.stdout) if r.get("type") != "summary"), key=lambda r: json.dumps(r["dataset"])
    )
    rows = read_table(table.stdout, ",")
    order = {json.dumps([expected_text(flat_at(m["dataset"], k)) for k in keys]): i for i, m in enumerate(matches)}
    rows.sort(key=lambda row: order.get(json.dumps([row[k] for k in keys]), -1))
    assert_rows_match(rows, matches, keys, [])
    if level != "image":
        column = "StudyDescription" if level == "study" else "SeriesDescription"
        assert any('"' in row[column] for row in rows)


@pytest.mark.peer
@pytest.mark.parametrize("level,keys", FIND_CASES[:2])
def test_find_table_over_dicomweb_equals_the_json_records(orthanc_pacs, level, keys):
    """QIDO-RS answers make the same table as C-FIND answers."""
    args = ["find", orthanc_pacs.extra["url"], "--level", level, *(a for k in keys for a in ("-k", k))]
    table = tables(*args, "--csv")
    flat = dcmtools(*args, "--json", "--flat")
    assert table.returncode == flat.returncode == 0, table.stderr + flat.stderr
    matches = sorted((r for r in records(flat.stdout) if r.get("type") != "summary"), key=lambda r: str(r["dataset"]))
    rows = read_table(table.stdout, ",")
    order = {json.dumps([expected_text(flat_at(m["dataset"], k)) for k in keys]): i for i, m in enumerate(matches)}
    rows.sort(key=lambda row: order.get(json.dumps([row[k] for k in keys]), -1))
    assert_rows_match(rows, matches, keys, [])
    column = "StudyDescription" if level == "study" else "SeriesDescription"
    assert any('"' in row[column] for row in rows)


@pytest.mark.peer
def test_find_table_of_many_queries_starts_with_q(pacs, tmp_path):
    queries = tmp_path / "queries.csv"
    queries.write_text('PatientID\nH001\n"Q,1"\nVET077\n')
    args = ["find", pacs.peer, "--queries-from", str(queries), "-k", "StudyDescription", "-k", "AccessionNumber"]
    table = tables(*args, "--tsv")
    flat = dcmtools(*args, "--json", "--flat")
    assert table.returncode == flat.returncode == 0, table.stderr + flat.stderr
    keys = ["StudyDescription", "AccessionNumber"]
    matches = sorted(
        (r for r in records(flat.stdout) if r.get("type") != "summary"),
        key=lambda r: [str(r["q"]), *(expected_text(flat_at(r["dataset"], k)) for k in keys)],
    )
    rows = sorted(read_table(table.stdout, "\t"), key=lambda row: [row["q"], *(row[k] for k in keys)])
    assert_rows_match(rows, matches, keys, ["q"])
    assert sorted({row["q"] for row in rows}) == ["1", "2", "3"]


@pytest.mark.peer
def test_find_table_default_columns_and_a_quoted_name(pacs):
    table = tables("find", pacs.peer, "--patient", "O'Brien", "--tsv")
    assert table.returncode == 0, table.stderr
    rows = read_table(table.stdout, "\t")
    from dcmtools.net.keys import DEFAULT_KEYS

    assert list(rows[0]) == [*plain_columns(DEFAULT_KEYS["STUDY"]), "error", "error_message"]
    assert [(r["PatientName"], r["StudyDescription"], r["PatientID"]) for r in rows] == [
        (TRICKY_NAME, TRICKY_DESCRIPTION, "Q,1")
    ]


@pytest.mark.peer
def test_find_table_of_a_refused_connection_is_an_error_row(tmp_path):

    result = tables("find", f"NOBODY@127.0.0.1:{free_port()}", "--csv", "-k", "PatientID")
    assert result.returncode == 3, result.stderr
    rows = read_table(result.stdout, ",")
    assert [(r["PatientID"], r["error"]) for r in rows] == [("", "connection_refused")]


WORKLIST_KEYS = [
    "PatientName",
    "PatientID",
    "PatientSpeciesDescription",
    "ScheduledProcedureStepSequence[0].Modality",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepSequence.ScheduledStationAETitle",
    "PatientSpeciesCodeSequence",
]


@pytest.mark.peer
@pytest.mark.parametrize("option,delimiter", [("--csv", ","), ("--tsv", "\t")])
def test_worklist_table_equals_the_json_records(pacs, option, delimiter):
    args = ["worklist", pacs.peer, "--date", "any", *(a for k in WORKLIST_KEYS for a in ("-k", k))]
    table = tables(*args, option)
    flat = dcmtools(*args, "--json", "--flat")
    assert table.returncode == flat.returncode == 0, table.stderr + flat.stderr
    items = sorted(
        (r for r in records(flat.stdout) if r.get("type") != "summary"), key=lambda r: r["dataset"]["PatientID"]
    )
    rows = sorted(read_table(table.stdout, delimiter), key=lambda row: row["PatientID"])
    assert_rows_match(rows, items, WORKLIST_KEYS, [])
    dog = next(r for r in rows if r["PatientID"] == "VET042")
    assert dog["ScheduledProcedureStepSequence[0].Modality"] == "CR"
    assert json.loads(dog["PatientSpeciesCodeSequence"])[0]["CodeValue"] == "448771007"


@pytest.mark.peer
def test_worklist_table_default_columns(pacs):
    table = tables("worklist", pacs.peer, "--date", "any", "--csv")
    flat = dcmtools("worklist", pacs.peer, "--date", "any", "--json", "--flat")
    assert table.returncode == flat.returncode == 0, table.stderr
    from dcmtools.net.keys import WORKLIST_KEYS as DEFAULTS

    columns = plain_columns(DEFAULTS)
    items = sorted(
        (r for r in records(flat.stdout) if r.get("type") != "summary"), key=lambda r: r["dataset"]["PatientID"]
    )
    rows = sorted(read_table(table.stdout, ","), key=lambda row: row["PatientID"])
    assert_rows_match(rows, items, columns, [])
    assert "SpecificCharacterSet" not in rows[0] and "PatientSpeciesCodeSequence" not in rows[0]
