"""Transfer syntaxes by the names people know, and the codecs behind them.

This module answers three questions for ``dcmtools transcode`` (and for any
other command that decodes or writes pixel data):

* what a transfer syntax is called: ``SYNTAXES`` maps short names
  (``explicit``, ``rle``, ``jpeg-ls``, ``j2k`` ...) to UIDs and back
  (``resolve``, ``name_of``);
* what this installation can decode and encode (``capabilities``, shown by
  ``dcmtools transcode --list``);
* which encoder writes each syntax (``encoder_for``; the encoding itself is
  ``dcmtools.dicom.encoding.encode_frames``).  The encoder
  per syntax is chosen for speed (see docs/design/encoders.md): pylibjpeg-rle for RLE
  (pydicom's own RLE encoder is its slow fallback), pyjpegls (CharLS) for
  JPEG-LS, pylibjpeg-openjpeg for JPEG 2000, imagecodecs (libjpeg-turbo 3)
  for JPEG lossless process 14 SV1, JPEG baseline and JPEG extended, for
  which pydicom 3 has no encoder at all.

Importing this module imports neither pydicom nor numpy nor any codec: they
are imported by the functions that need them, so a command line can list the
syntax names in its ``--help`` and still start fast.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode


@dataclass(frozen=True)
class Syntax:
    """One transfer syntax: its short name, UID and nature."""

    name: str  # the short name used on the command line
    uid: str
    title: str  # the name in PS3.6
    lossy: bool = False  # the syntax may lose information (its pixels are not proven equal)
    encapsulated: bool = False  # pixel data in fragments (compressed)
    method: str = ""  # (0028,2114) Lossy Image Compression Method for lossy syntaxes
    writable: bool = True  # False: decoded only (retired or no encoder in any package we use)
    aliases: tuple[str, ...] = ()


SYNTAXES: tuple[Syntax, ...] = (
    Syntax("implicit", "1.2.840.10008.1.2", "Implicit VR Little Endian", aliases=("implicit-le", "ivrle")),
    Syntax("explicit", "1.2.840.10008.1.2.1", "Explicit VR Little Endian", aliases=("explicit-le", "evrle", "raw")),
    Syntax("deflated", "1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", aliases=("deflate",)),
    Syntax(
        "big-endian",
        "1.2.840.10008.1.2.2",
        "Explicit VR Big Endian (retired)",
        writable=False,
        aliases=("explicit-be",),
    ),
    Syntax("rle", "1.2.840.10008.1.2.5", "RLE Lossless", encapsulated=True),
    Syntax("jpeg-ls", "1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", encapsulated=True, aliases=("jls",)),
    Syntax(
        "jpeg-ls-near",
        "1.2.840.10008.1.2.4.81",
        "JPEG-LS Lossy (Near-Lossless)",
        lossy=True,
        encapsulated=True,
        method="ISO_14495_1",
        aliases=("jls-near",),
    ),
    Syntax(
        "j2k",
        "1.2.840.10008.1.2.4.90",
        "JPEG 2000 (Lossless Only)",
        encapsulated=True,
        aliases=("jpeg2000", "j2k-lossless"),
    ),
    Syntax(
        "j2k-lossy",
        "1.2.840.10008.1.2.4.91",
        "JPEG 2000",
        lossy=True,
        encapsulated=True,
        method="ISO_15444_1",
        aliases=("jpeg2000-lossy",),
    ),
    Syntax(
        "jpeg-lossless",
        "1.2.840.10008.1.2.4.70",
        "JPEG Lossless, Process 14, Selection Value 1",
        encapsulated=True,
        aliases=("jpeg-lossless-sv1",),
    ),
    Syntax(
        "jpeg-lossless-p14",
        "1.2.840.10008.1.2.4.57",
        "JPEG Lossless, Process 14 (any predictor)",
        encapsulated=True,
        writable=False,
    ),
    Syntax(
        "jpeg-baseline",
        "1.2.840.10008.1.2.4.50",
        "JPEG Baseline (Process 1)",
        lossy=True,
        encapsulated=True,
        method="ISO_10918_1",
        aliases=("jpeg",),
    ),
    Syntax(
        "jpeg-extended",
        "1.2.840.10008.1.2.4.51",
        "JPEG Extended (Process 2 and 4)",
        lossy=True,
        encapsulated=True,
        method="ISO_10918_1",
    ),
    Syntax(
        "htj2k-lossless",
        "1.2.840.10008.1.2.4.201",
        "High-Throughput JPEG 2000 (Lossless Only)",
        encapsulated=True,
        writable=False,
    ),
    Syntax(
        "htj2k-rpcl",
        "1.2.840.10008.1.2.4.202",
        "High-Throughput JPEG 2000 with RPCL Options (Lossless Only)",
        encapsulated=True,
        writable=False,
    ),
    Syntax(
        "htj2k",
        "1.2.840.10008.1.2.4.203",
        "High-Throughput JPEG 2000",
        lossy=True,
        encapsulated=True,
        writable=False,
        method="ISO_15444_15",
    ),
)

BY_NAME: dict[str, Syntax] = {}
for _s in SYNTAXES:
    BY_NAME[_s.name] = _s
    for _alias in _s.aliases:
        BY_NAME[_alias] = _s
BY_UID: dict[str, Syntax] = {s.uid: s for s in SYNTAXES}

# The syntaxes pydicom writes natively (the rest of the dataset in each
# encapsulated syntax is Explicit VR Little Endian).
NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99")
EXPLICIT_LE = "1.2.840.10008.1.2.1"
BIG_ENDIAN = "1.2.840.10008.1.2.2"


def target_names() -> list[str]:
    """The names ``--to`` accepts (writable syntaxes), in table order."""
    return [s.name for s in SYNTAXES if s.writable]


def resolve(name_or_uid: str) -> Syntax:
    """The syntax named ``name_or_uid`` (a short name, an alias or a UID)."""
    key = name_or_uid.strip().lower()
    if key in BY_NAME:
        return BY_NAME[key]
    if name_or_uid.strip() in BY_UID:
        return BY_UID[name_or_uid.strip()]
    raise DcmtoolsError(
        ErrorCode.BAD_VALUE,
        f"unknown transfer syntax {name_or_uid!r}",
        hint="use one of: " + ", ".join(target_names()) + " (or a UID); 'dcmtools transcode --list' shows them all",
    )


def name_of(uid: str) -> str:
    """The short name of a transfer syntax UID, else the UID's own name, else the UID."""
    if uid in BY_UID:
        return BY_UID[uid].name
    try:
        from pydicom.uid import UID

        name = UID(uid).name
        return name if name and name != uid else uid
    except Exception:  # pragma: no cover - pydicom is a dependency
        return uid


# ------------------------------------------------------------------ encoders


@dataclass(frozen=True)
class EncoderChoice:
    """One way to encode a syntax: pydicom's plugin label, the package and why."""

    plugin: str  # pydicom's encoding plugin label, or "imagecodecs" for our own
    package: str  # the distribution that provides it (for --list and the error hint)
    module: str  # the module that must import
    reason: str


# In order of preference: the first available is used.  See docs/design/encoders.md
# for the measurements behind each choice.
ENCODERS: dict[str, tuple[EncoderChoice, ...]] = {
    "rle": (
        EncoderChoice("pylibjpeg", "pylibjpeg-rle", "rle", "Rust RLE encoder, about 5x pydicom's"),
        EncoderChoice("pydicom", "pydicom", "pydicom", "pydicom's own encoder (slow fallback)"),
    ),
    "jpeg-ls": (EncoderChoice("pyjpegls", "pyjpegls", "jpeg_ls", "CharLS"),),
    "jpeg-ls-near": (EncoderChoice("pyjpegls", "pyjpegls", "jpeg_ls", "CharLS"),),
    "j2k": (EncoderChoice("pylibjpeg", "pylibjpeg-openjpeg", "openjpeg", "OpenJPEG"),),
    "j2k-lossy": (EncoderChoice("pylibjpeg", "pylibjpeg-openjpeg", "openjpeg", "OpenJPEG"),),
    "jpeg-lossless": (
        EncoderChoice("imagecodecs", "imagecodecs", "imagecodecs", "libjpeg-turbo 3 (lossless JPEG, 2-16 bits)"),
    ),
    "jpeg-baseline": (EncoderChoice("imagecodecs", "imagecodecs", "imagecodecs", "libjpeg-turbo 3"),),
    "jpeg-extended": (EncoderChoice("imagecodecs", "imagecodecs", "imagecodecs", "libjpeg-turbo 3 (12-bit)"),),
}
NATIVE_ENCODER = EncoderChoice("pydicom", "pydicom", "pydicom", "pydicom writes it natively")

_available_cache: dict[str, bool] = {}


def _importable(module: str) -> bool:
    if module not in _available_cache:
        try:
            mod = importlib.import_module(module)
            if module == "imagecodecs":
                # Lossless JPEG needs libjpeg-turbo 3 inside imagecodecs.
                version = str(mod.jpeg8_version()) if hasattr(mod, "jpeg8_version") else ""
                _available_cache[module] = bool(getattr(mod.JPEG8, "available", False)) and "turbo 2." not in version
            elif module == "pydicom":
                _available_cache[module] = True
            else:
                # pydicom decides whether its own plugin works with this version.
                _available_cache[module] = True
        except Exception:
            _available_cache[module] = False
    return _available_cache[module]


def encoder_for(syntax: Syntax) -> EncoderChoice | None:
    """The encoder used to write ``syntax`` here, or None when none is installed."""
    if not syntax.writable:
        return None
    if not syntax.encapsulated:
        return NATIVE_ENCODER
    for choice in ENCODERS.get(syntax.name, ()):
        if choice.plugin == "imagecodecs":
            if _importable("imagecodecs"):
                return choice
            continue
        if not _importable(choice.module):
            continue
        from pydicom.pixels import get_encoder

        encoder = get_encoder(syntax.uid)
        if choice.plugin in encoder.available_plugins:
            return choice
    return None


def missing_encoder_hint(syntax: Syntax) -> str:
    """What to install to write ``syntax``."""
    if not syntax.writable:
        return f"{syntax.title} is decoded only: no encoder for it is used by dcmtools"
    packages = [c.package for c in ENCODERS.get(syntax.name, ())]
    return "install " + " or ".join(packages) if packages else "no encoder known"


def _version(package: str) -> str:
    import importlib.metadata  # 15 ms: only for --list, not at every start

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def capabilities() -> list[dict[str, Any]]:
    """What this installation decodes and encodes, one record per syntax.

    ``decode`` lists pydicom's available decoding plugins (``pydicom`` itself
    for the native syntaxes); ``encode`` names the encoder dcmtools uses.
    """
    from pydicom.pixels import get_decoder

    rows = []
    for syntax in SYNTAXES:
        try:
            decoder = get_decoder(syntax.uid)
            decoders = list(decoder.available_plugins) or (["pydicom"] if not syntax.encapsulated else [])
            can_decode = decoder.is_available
        except NotImplementedError:
            decoders, can_decode = [], False
        choice = encoder_for(syntax)
        row: dict[str, Any] = {
            "type": "syntax",
            "name": syntax.name,
            "uid": syntax.uid,
            "title": syntax.title,
            "lossy": syntax.lossy,
            "decode": can_decode,
            "decoders": decoders,
            "encode": choice is not None,
        }
        if choice is not None:
            version = _version(choice.package)
            row["encoder"] = f"{choice.package} {version}".strip()
        else:
            row["encode_hint"] = "decoded only" if not syntax.writable else missing_encoder_hint(syntax)
        if syntax.aliases:
            row["aliases"] = list(syntax.aliases)
        rows.append(row)
    return rows


# ------------------------------------------------------------ image checking


@dataclass
class ImageInfo:
    """The Image Pixel attributes that decide what a codec can hold."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    number_of_frames: int
    photometric: str  # of the decoded array

    def describe(self) -> str:
        sign = "signed" if self.pixel_representation else "unsigned"
        return (
            f"{self.photometric}, {self.samples_per_pixel} sample(s), {self.bits_allocated} bits allocated, "
            f"{self.bits_stored} stored, {sign}"
        )


def output_photometric(syntax: Syntax, photometric: str, samples: int) -> str:
    """The Photometric Interpretation the encoded pixels will have.

    JPEG 2000 applies its reversible (lossless) or irreversible (lossy) colour
    transform to RGB, so RGB becomes YBR_RCT or YBR_ICT (PS3.5 8.2.4); JPEG
    baseline encodes colour as YCbCr 4:2:2, YBR_FULL_422 (PS3.5 8.2.1).  All
    other codecs keep the samples as they are.
    """
    if samples != 3:
        return photometric
    if syntax.name == "j2k" and photometric == "RGB":
        return "YBR_RCT"
    if syntax.name == "j2k-lossy" and photometric == "RGB":
        return "YBR_ICT"
    if syntax.name == "jpeg-baseline" and photometric in ("RGB", "YBR_FULL"):
        return "YBR_FULL_422"
    return photometric


def check_encodable(syntax: Syntax, info: ImageInfo) -> str:
    """Raise ``cannot_encode`` unless ``syntax`` may hold this image; return its photometric.

    The rules are PS3.5 section 8.2's tables (as pydicom carries them).
    """
    out_pi = output_photometric(syntax, info.photometric, info.samples_per_pixel)
    if not syntax.encapsulated:
        return out_pi
    if syntax.name == "jpeg-lossless" and out_pi == "YBR_FULL":
        # libjpeg-turbo's lossless YCbCr streams do not decode (not even by
        # itself), and marked as RGB samples pydicom would show them unconverted.
        raise DcmtoolsError(
            ErrorCode.CANNOT_ENCODE,
            f"{syntax.title} is written here for RGB and monochrome images only; this one is YBR_FULL",
            hint="rle, jpeg-ls and j2k keep YBR_FULL samples exactly",
        )
    from pydicom.pixels.encoders.base import ENCODING_PROFILES

    profiles = ENCODING_PROFILES.get(syntax.uid)  # type: ignore[call-overload]
    if profiles is None:
        return out_pi
    for pi, spp, reps, allocated, stored in profiles:
        if (
            pi == out_pi
            and spp == info.samples_per_pixel
            and info.pixel_representation in reps
            and info.bits_allocated in allocated
            and info.bits_stored in stored
        ):
            return out_pi
    if info.photometric == "PALETTE COLOR" and syntax.lossy:
        hint = "palette colour images are compressed losslessly only: use rle, jpeg-ls, j2k or jpeg-lossless"
    elif info.bits_allocated == 1:
        hint = "1-bit images are kept uncompressed: use explicit, implicit or deflated"
    else:
        hint = "choose a syntax that can hold it (j2k holds the most), or explicit"
    raise DcmtoolsError(
        ErrorCode.CANNOT_ENCODE,
        f"{syntax.title} cannot hold this image ({info.describe()})",
        hint=hint,
    )


def reraise_interrupt(exc: BaseException) -> None:
    """Re-raise Ctrl-C and exits; any other failure of a codec is the item's."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        raise exc


@contextlib.contextmanager
def _quiet_plugins() -> Iterator[None]:
    """pydicom and the codecs log a traceback before raising: the record says it once."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in ("pydicom", "openjpeg", "jpeg_ls", "rle")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    """An exception's message on one line (pydicom puts the plugin's reason on the next lines)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and lines[0].endswith(":"):
        return lines[0] + " " + "; ".join(lines[1:])
    return lines[0]


# pydicom decoding plugins by preference, where it has a choice: CharLS
# decodes JPEG-LS about 4x faster than libjpeg, the Rust RLE decoder about 3x
# pydicom's own.
DECODERS: dict[str, tuple[str, ...]] = {
    "1.2.840.10008.1.2.4.80": ("pyjpegls", "pylibjpeg"),
    "1.2.840.10008.1.2.4.81": ("pyjpegls", "pylibjpeg"),
    "1.2.840.10008.1.2.5": ("pylibjpeg", "pydicom"),
}


def decoding_plugin(uid: str, available: Sequence[str]) -> str:
    """The plugin pydicom should decode ``uid`` with ("" lets pydicom choose)."""
    for plugin in DECODERS.get(uid, ()):
        if plugin in available:
            return plugin
    return ""


def lossy_method(syntax: Syntax) -> str:
    """(0028,2114) Lossy Image Compression Method for ``syntax``."""
    return syntax.method


def uses_planar_configuration_1(syntax: Syntax) -> bool:
    """RLE stores colour plane by plane: Planar Configuration 1 (PS3.5 G.2 note)."""
    return syntax.name == "rle"


def decode_as_rgb(source_uid: str) -> bool:
    """Lossy JPEG colour is decoded to RGB (as a viewer shows it and dcmdjpeg writes it)."""
    return source_uid in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")


def lossless_syntaxes() -> Sequence[Syntax]:
    return [s for s in SYNTAXES if s.writable and not s.lossy]
