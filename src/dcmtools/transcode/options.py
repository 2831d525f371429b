"""What a transcode is asked to do: the target syntax and its settings, checked."""

from __future__ import annotations

from dataclasses import dataclass

from ..dicom import codecs
from ..dicom.codecs import Syntax
from ..stream.records import DcmtoolsError, ErrorCode

IMPLEMENTATION_VERSION_NAME = "DCMTOOLS"
# Syntaxes whose pixel data are always lossy (JPEG 2000 and HTJ2K may hold
# reversible codestreams, so they are not listed).
LOSSY_ONLY = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81")


@dataclass
class TranscodeOptions:
    """What ``transcode_file`` is asked to do (picklable, for ``--jobs``)."""

    target: Syntax
    error: int | None = None  # JPEG-LS near-lossless NEAR (default 2)
    ratio: float | None = None  # JPEG 2000 lossy compression ratio (default 10)
    quality: float | None = None  # JPEG 2000 lossy PSNR in dB, or JPEG baseline/extended quality 1-100
    verify: bool | None = None  # None: verify lossless targets only
    keep_uid: bool = False  # lossy targets keep the SOP Instance UID
    overwrite: bool = False

    @property
    def verifying(self) -> bool:
        return (not self.target.lossy) if self.verify is None else self.verify


def options_for(
    to: str | Syntax,
    *,
    error: int | None = None,
    ratio: float | None = None,
    quality: float | None = None,
    verify: bool | None = None,
    keep_uid: bool = False,
    overwrite: bool = False,
) -> TranscodeOptions:
    """Checked options for a target (raises ``DcmtoolsError`` with a usage message)."""
    target = to if isinstance(to, Syntax) else codecs.resolve(to)
    if not target.writable:
        raise DcmtoolsError(
            ErrorCode.BAD_VALUE, f"dcmtools cannot write {target.title}", hint=codecs.missing_encoder_hint(target)
        )
    if codecs.encoder_for(target) is None:
        raise DcmtoolsError(
            ErrorCode.BAD_VALUE,
            f"no encoder for {target.title} is installed here",
            hint=codecs.missing_encoder_hint(target),
        )
    if error is not None and target.name != "jpeg-ls-near":
        raise DcmtoolsError(ErrorCode.BAD_VALUE, "`error` applies to `to` jpeg-ls-near only")
    if error is not None and not 1 <= error <= 255:
        raise DcmtoolsError(ErrorCode.BAD_VALUE, f"`error` {error} is out of range", hint="use 1 to 255")
    if ratio is not None and target.name != "j2k-lossy":
        raise DcmtoolsError(ErrorCode.BAD_VALUE, "`ratio` applies to `to` j2k-lossy only")
    if ratio is not None and not ratio > 1:
        raise DcmtoolsError(ErrorCode.BAD_VALUE, f"`ratio` {ratio} must be greater than 1 (e.g. 10 for 10:1)")
    if quality is not None:
        if target.name == "j2k-lossy":
            if ratio is not None:
                raise DcmtoolsError(ErrorCode.BAD_VALUE, "give `ratio` or `quality` for j2k-lossy, not both")
            if not quality > 0:
                raise DcmtoolsError(ErrorCode.BAD_VALUE, "`quality` for j2k-lossy is a PSNR in dB, e.g. 50")
        elif target.name in ("jpeg-baseline", "jpeg-extended"):
            if not 1 <= quality <= 100:
                raise DcmtoolsError(ErrorCode.BAD_VALUE, f"`quality` {quality} is out of range", hint="use 1 to 100")
        else:
            raise DcmtoolsError(
                ErrorCode.BAD_VALUE,
                "`quality` applies to `to` j2k-lossy (PSNR, dB) or jpeg-baseline/jpeg-extended (1-100)",
            )
    return TranscodeOptions(
        target=target, error=error, ratio=ratio, quality=quality, verify=verify, keep_uid=keep_uid, overwrite=overwrite
    )
