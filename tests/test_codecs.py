"""The transfer syntax table, the encoder choice and the mirroring of outputs."""

from __future__ import annotations

import os

import pytest

from dcmtools.dicom import codecs
from dcmtools.dicom.codecs import ImageInfo
from dcmtools.stream.records import DcmtoolsError


@pytest.mark.parametrize(
    "text,uid",
    [
        ("explicit", "1.2.840.10008.1.2.1"),
        ("IMPLICIT", "1.2.840.10008.1.2"),
        ("jls", "1.2.840.10008.1.2.4.80"),
        ("jpeg2000", "1.2.840.10008.1.2.4.90"),
        ("jpeg-lossless", "1.2.840.10008.1.2.4.70"),
        ("1.2.840.10008.1.2.5", "1.2.840.10008.1.2.5"),
        (" deflated ", "1.2.840.10008.1.2.1.99"),
    ],
)
def test_names_aliases_and_uids_resolve(text, uid):
    assert codecs.resolve(text).uid == uid


def test_an_unknown_name_says_what_is_known():
    with pytest.raises(DcmtoolsError) as caught:
        codecs.resolve("jpeg-xl")
    assert caught.value.code == "bad_value"
    assert "jpeg-ls-near" in caught.value.hint


def test_names_of_uids():
    assert codecs.name_of("1.2.840.10008.1.2.2") == "big-endian"
    assert codecs.name_of("1.2.840.10008.1.2.4.100") == "MPEG2 Main Profile / Main Level"
    assert codecs.name_of("1.2.3.4") == "1.2.3.4"


def test_every_writable_syntax_has_an_encoder_here():
    for syntax in codecs.SYNTAXES:
        choice = codecs.encoder_for(syntax)
        assert (choice is not None) == syntax.writable, syntax.name
    assert codecs.encoder_for(codecs.resolve("rle")).package == "pylibjpeg-rle"  # the fast one, not pydicom's


def _info(**kw) -> ImageInfo:
    base = dict(
        rows=64,
        columns=64,
        samples_per_pixel=1,
        bits_allocated=16,
        bits_stored=12,
        pixel_representation=0,
        number_of_frames=1,
        photometric="MONOCHROME2",
    )
    base.update(kw)
    return ImageInfo(**base)


def test_colour_transforms_follow_the_codec():
    rgb = _info(samples_per_pixel=3, bits_allocated=8, bits_stored=8, photometric="RGB")
    assert codecs.check_encodable(codecs.resolve("j2k"), rgb) == "YBR_RCT"
    assert codecs.check_encodable(codecs.resolve("j2k-lossy"), rgb) == "YBR_ICT"
    assert codecs.check_encodable(codecs.resolve("jpeg-baseline"), rgb) == "YBR_FULL_422"
    assert codecs.check_encodable(codecs.resolve("jpeg-ls"), rgb) == "RGB"
    assert codecs.check_encodable(codecs.resolve("rle"), rgb) == "RGB"
    assert codecs.uses_planar_configuration_1(codecs.resolve("rle"))


@pytest.mark.parametrize(
    "target,info,hint",
    [
        ("jpeg-baseline", _info(photometric="PALETTE COLOR", bits_allocated=8, bits_stored=8), "losslessly"),
        ("j2k", _info(bits_allocated=1, bits_stored=1), "1-bit"),
        ("jpeg-ls", _info(bits_allocated=32, bits_stored=32), "j2k"),
        ("jpeg-baseline", _info(), "j2k"),  # 12-bit
        ("jpeg-extended", _info(pixel_representation=1), "j2k"),
        ("jpeg-lossless", _info(samples_per_pixel=3, bits_allocated=8, bits_stored=8, photometric="YBR_FULL"), "rle"),
    ],
)
def test_images_a_syntax_cannot_hold_are_refused_with_a_hint(target, info, hint):
    with pytest.raises(DcmtoolsError) as caught:
        codecs.check_encodable(codecs.resolve(target), info)
    assert caught.value.code == "cannot_encode"
    assert hint in caught.value.hint


def test_capabilities_cover_every_syntax():
    rows = codecs.capabilities()
    assert [r["name"] for r in rows] == [s.name for s in codecs.SYNTAXES]
    assert all(r["type"] == "syntax" for r in rows)


def test_the_plan_mirrors_skips_its_own_outputs_and_refuses_collisions(tmp_path):
    from dcmtools.stream.inputs import iter_inputs
    from dcmtools.transcode import OutputPlan

    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "out").mkdir()
    (tmp_path / "other").mkdir()
    for name in ("in/a/x.dcm", "in/out/old.dcm", "other/x.dcm"):
        (tmp_path / name).write_bytes(b"x")
    args = [str(tmp_path / "in"), str(tmp_path / "in" / "a" / "x.dcm"), str(tmp_path / "other" / "x.dcm")]
    plan = OutputPlan(iter_inputs(args), tmp_path / "in" / "out", args)
    entries = list(plan)
    assert plan.skipped_inside_output == 1
    assert [(os.path.relpath(p, tmp_path), out and os.path.relpath(out, tmp_path)) for p, out, _ in entries] == [
        ("in/a/x.dcm", "in/out/a/x.dcm"),
        ("in/a/x.dcm", None),  # named twice: the same output as the one before
        ("other/x.dcm", "in/out/x.dcm"),  # a file argument: its name
    ]
    assert entries[1][2]["error"]["code"] == "exists"
