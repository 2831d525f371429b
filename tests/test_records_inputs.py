import io
import json

from dcmtools.stream.inputs import iter_inputs, iter_stream
from dcmtools.stream.records import DcmtoolsError, ExitStatus, RecordWriter, error_record


def test_writer_json_lines_and_summary():
    out = io.StringIO()
    writer = RecordWriter("x", stream=out, json_mode=True)
    writer.write({"type": "file", "path": "a", "ok": True})
    writer.write(error_record("file", DcmtoolsError("not_dicom", "not DICOM", "try another"), path="b"))
    status = writer.summary()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["type"] for r in lines] == ["file", "file", "summary"]
    assert lines[1]["error"] == {"code": "not_dicom", "message": "not DICOM", "hint": "try another"}
    assert lines[2]["total"] == 2 and lines[2]["failed"] == 1 and lines[2]["errors"] == {"not_dicom": 1}
    assert status == ExitStatus.FAILED == lines[2]["exit_status"]


def test_writer_specific_failure_wins_and_ok_is_zero():
    writer = RecordWriter("x", stream=io.StringIO(), json_mode=True)
    writer.write({"type": "file", "ok": True})
    assert writer.summary() == 0
    writer = RecordWriter("x", stream=io.StringIO(), json_mode=True)
    writer.write({"type": "file", "ok": False, "error": {"code": "c"}})
    writer.fail(ExitStatus.CONNECT)
    assert writer.summary() == ExitStatus.CONNECT


def test_writer_human_summary_goes_to_stderr():
    out, err = io.StringIO(), io.StringIO()
    writer = RecordWriter("dump", stream=out, err=err, json_mode=False)
    writer.write({"type": "file", "path": "a.dcm", "ok": False, "error": {"code": "empty", "message": "empty file"}})
    writer.summary()
    assert "FAILED a.dcm: empty file" in out.getvalue()
    assert "1 failed" in err.getvalue() and "summary" not in out.getvalue()


def test_inputs_files_folders_globs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.dcm").write_bytes(b"1")
    (tmp_path / "a" / "y.txt").write_bytes(b"1")
    (tmp_path / "a" / ".hidden").write_bytes(b"1")
    (tmp_path / "b.dcm").write_bytes(b"1")
    items = list(iter_inputs([str(tmp_path)], read_stdin_when_piped=False))
    assert [i.path for i in items] == [
        str(tmp_path / "a" / "x.dcm"),
        str(tmp_path / "a" / "y.txt"),
        str(tmp_path / "b.dcm"),
    ]
    items = list(iter_inputs([str(tmp_path / "**" / "*.dcm")], read_stdin_when_piped=False))
    assert sorted(i.path for i in items) == [str(tmp_path / "a" / "x.dcm"), str(tmp_path / "b.dcm")]
    missing = list(iter_inputs([str(tmp_path / "nope"), str(tmp_path / "*.none")], read_stdin_when_piped=False))
    assert [i.error.code for i in missing] == ["not_found", "not_found"]


def test_inputs_stdin_records_and_paths(tmp_path):
    (tmp_path / "in.dcm").write_bytes(b"1")
    (tmp_path / "out.dcm").write_bytes(b"1")
    lines = "\n".join(
        [
            str(tmp_path / "in.dcm"),
            json.dumps(
                {"type": "file", "path": str(tmp_path / "in.dcm"), "out": str(tmp_path / "out.dcm"), "ok": True}
            ),
            json.dumps({"type": "file", "path": str(tmp_path / "in.dcm"), "ok": False, "error": {"message": "boom"}}),
            json.dumps({"type": "summary", "total": 3}),
            "{not json",
            "",
        ]
    )
    items = list(iter_stream(io.StringIO(lines)))
    assert items[0].path == str(tmp_path / "in.dcm") and items[0].error is None
    assert items[1].path == str(tmp_path / "out.dcm") and items[1].record["path"] == str(tmp_path / "in.dcm")
    # A failed upstream record is never processed: for anonymize | send that would send the original.
    assert items[2].error.code == "upstream_failed"
    assert items[3].error.code == "bad_record"
    assert len(items) == 4


def test_inputs_null_separated_and_files_from(tmp_path):
    names = [tmp_path / "a b.dcm", tmp_path / "c\nd.dcm"]
    for name in names:
        name.write_bytes(b"1")
    items = list(iter_stream(io.StringIO("\0".join(map(str, names)) + "\0"), null=True))
    assert [i.path for i in items] == [str(n) for n in names]
    listing = tmp_path / "list.txt"
    listing.write_text(str(names[0]) + "\n")
    items = list(iter_inputs([], files_from=str(listing), read_stdin_when_piped=False))
    assert [i.path for i in items] == [str(names[0])]
    items = list(iter_inputs([], files_from=str(tmp_path / "nope.txt"), read_stdin_when_piped=False))
    assert items[0].error.code == "not_found"
