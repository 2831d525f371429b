"""The options of the changes made to datasets, shared by the commands that make them.

``anonymize`` and ``edit`` take them as one option group each (``AnonArgs``,
``EditArgs``; see ``groups.option_groups``); ``migrate`` takes both, for its
changes in flight (``--anonymize``, ``--edit``), so their spellings and help
are defined once.  The groups build the library objects from the values
(raising ``typer.BadParameter`` for a usage error).  Importing this module
does not import pydicom or pynetdicom.
"""

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from .groups import OptionGroup


def _flag(name: str, help_: str) -> Any:
    """A PS3.15 E.3 option, by its standard name."""
    return typer.Option(name, help=help_)


# ---------------------------------------------------------------- anonymize (dcmtools.deid)
AnonKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        metavar="SECRET",
        envvar="DCMTOOLS_ANON_KEY",
        help="Secret key: the same key gives the same UIDs, pseudonyms and date shifts, "
        "in every run and on every machine (env DCMTOOLS_ANON_KEY; --key-file keeps it out of ps).",
    ),
]
AnonKeyFileOpt = Annotated[
    Path | None, typer.Option("--key-file", metavar="FILE", help="Read the secret key from FILE.")
]
RetainSafePrivateOpt = Annotated[
    bool, _flag("--retain-safe-private", "Keep private attributes known to be safe (Table E.3.10-1).")
]
RetainUidsOpt = Annotated[bool, _flag("--retain-uids", "Keep the original UIDs.")]
RetainDeviceIdentityOpt = Annotated[
    bool, _flag("--retain-device-identity", "Keep station names, serial numbers and other device identity.")
]
RetainInstitutionIdentityOpt = Annotated[
    bool, _flag("--retain-institution-identity", "Keep institution names, addresses and departments.")
]
RetainPatientCharacteristicsOpt = Annotated[
    bool, _flag("--retain-patient-characteristics", "Keep age, sex, size, weight and the like.")
]
RetainLongitudinalFullDatesOpt = Annotated[
    bool, _flag("--retain-longitudinal-full-dates", "Retain Longitudinal Temporal Information with Full Dates.")
]
RetainLongitudinalModifiedDatesOpt = Annotated[
    bool,
    _flag(
        "--retain-longitudinal-modified-dates",
        "Retain Longitudinal Temporal Information with Modified Dates: every date of a patient "
        "moves back by the same 1 to 10 years (from the key and the patient).",
    ),
]
CleanDescriptorsOpt = Annotated[
    bool, _flag("--clean-descriptors", "Keep descriptions and comments, the patient's identifiers removed from them.")
]
CleanStructuredContentOpt = Annotated[
    bool, _flag("--clean-structured-content", "Keep SR content and acquisition context, cleaned.")
]
CleanGraphicsOpt = Annotated[
    bool, _flag("--clean-graphics", "Keep overlays, curves and graphic annotations, their text cleaned.")
]
AllowBurnedInOpt = Annotated[
    bool,
    typer.Option(
        "--allow-burned-in",
        help="Also write images whose pixels may show identifying text (Burned In Annotation YES, "
        "or US, SC, OT ... without it). Check those pixels yourself.",
    ),
]
KeepUnknownOpt = Annotated[
    bool,
    typer.Option(
        "--keep-unknown",
        help="Keep public attributes the data dictionary does not know (removed by default: "
        "nothing says they carry no identity).",
    ),
]

# ---------------------------------------------------------------- edit (dcmtools.edit)
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="PATH=VALUE",
        help="Insert or replace (repeatable). PATH: Keyword, "
        "gggg,eeee, Seq[0].Keyword, Seq[*].Keyword (every item); missing items are created.",
    ),
]
SetExistingOpt = Annotated[
    list[str] | None,
    typer.Option("--set-existing", metavar="PATH=VALUE", help="Replace only where the element is present."),
]
EraseOpt = Annotated[
    list[str] | None, typer.Option("--erase", metavar="PATH", help="Remove an element (or Seq[N]: an item).")
]
ErasePrivateOpt = Annotated[bool, typer.Option("--erase-private", help="Remove every private element, at any depth.")]
EditMapOpt = Annotated[
    Path | None,
    typer.Option(
        "--map",
        metavar="FILE",
        help="A CSV: a header naming the key column and the attributes "
        "to set; each file gets the values of the row its key matches (empty cells: unchanged).",
    ),
]
MatchOpt = Annotated[
    str | None,
    typer.Option(
        "--match",
        metavar="KEYWORD[=COLUMN]",
        help="The attribute whose value picks the --map row (its column is KEYWORD unless =COLUMN names another).",
    ),
]
RequireMatchOpt = Annotated[
    bool, typer.Option("--require-match", help="A file that no --map row matches is an error, not written.")
]
NewUidsOpt = Annotated[
    str | None,
    typer.Option(
        "--new-uids",
        metavar="LEVEL",
        help="study, series, instance or all (the three and frames "
        "of reference): new UIDs from the key, the same in every file and run; references follow.",
    ),
]
EditKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        metavar="SECRET",
        envvar="DCMTOOLS_EDIT_KEY",
        help="Secret key of --new-uids (env DCMTOOLS_EDIT_KEY): the same key gives the same UIDs.",
    ),
]
EditKeyFileOpt = Annotated[Path | None, typer.Option("--key-file", metavar="FILE", help="Read the key from FILE.")]
CharsetOpt = Annotated[
    str | None,
    typer.Option(
        "--charset",
        metavar="utf8",
        help="Re-encode text values to UTF-8 (ISO_IR 192) from the "
        "file's Specific Character Set; a file with an undecodable value is left as it was.",
    ),
]


# ---------------------------------------------------------------- building the library objects
def from_environment(key: str | None) -> bool:
    """True when --key is the environment's (DCMTOOLS_ANON_KEY, DCMTOOLS_EDIT_KEY): an exported key is a
    default, so it yields to --key-file and is no usage error where no key is needed."""
    import os

    return key is not None and key in (os.environ.get("DCMTOOLS_ANON_KEY"), os.environ.get("DCMTOOLS_EDIT_KEY"))


def command_line_key(key: str | None, key_file: Path | None) -> str | None:
    """--key, unless it is the environment's and --key-file was given: the command line wins."""
    return None if key_file is not None and from_environment(key) else key


def read_key(key: str | None, key_file: Path | None) -> Any:
    """The ``deid.keys.Key`` of --key or --key-file (None when neither is given)."""
    from ..deid.keys import Key

    key = command_line_key(key, key_file)
    if key is not None and key_file is not None:
        raise typer.BadParameter("give --key or --key-file, not both", param_hint="--key")
    try:
        if key_file is not None:
            return Key.from_file(str(key_file))
        return Key(key) if key is not None else None
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {key_file}: {exc.strerror or exc}", param_hint="--key-file") from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--key/--key-file") from None


@dataclass(frozen=True)
class AnonArgs(OptionGroup):
    """--key/--key-file and the PS3.15 E.3 options of a de-identification (``dcmtools.deid``)."""

    key: AnonKeyOpt = None
    key_file: AnonKeyFileOpt = None
    retain_safe_private: RetainSafePrivateOpt = False
    retain_uids: RetainUidsOpt = False
    retain_device_identity: RetainDeviceIdentityOpt = False
    retain_institution_identity: RetainInstitutionIdentityOpt = False
    retain_patient_characteristics: RetainPatientCharacteristicsOpt = False
    retain_longitudinal_full_dates: RetainLongitudinalFullDatesOpt = False
    retain_longitudinal_modified_dates: RetainLongitudinalModifiedDatesOpt = False
    clean_descriptors: CleanDescriptorsOpt = False
    clean_structured_content: CleanStructuredContentOpt = False
    clean_graphics: CleanGraphicsOpt = False
    allow_burned_in: AllowBurnedInOpt = False
    keep_unknown: KeepUnknownOpt = False

    def flags(self) -> dict[str, bool]:
        """The --retain-*/--clean-* options, by the names of ``deid.Options``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name.startswith(("retain_", "clean_"))}

    def changes_anything(self) -> bool:
        """True when an option other than the key is given."""
        return any(self.flags().values()) or self.allow_burned_in or self.keep_unknown

    def secret(self) -> Any:
        """The ``deid.keys.Key`` of --key or --key-file (None when neither is given)."""
        return read_key(self.key, self.key_file)

    def options(self) -> Any:
        """The ``deid.Options`` of the flags."""
        from ..deid import Options

        try:
            return Options(**self.flags())
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--retain-longitudinal-*") from None

    def anonymizer(self, secret: Any, options: Any = None, keep_map: bool = False) -> Any:
        """A ``deid.Anonymizer`` with ``secret`` (a ``Key``) and these options."""
        from ..deid import Anonymizer

        options = self.options() if options is None else options
        return Anonymizer(
            secret, options, allow_burned_in=self.allow_burned_in, keep_map=keep_map, keep_unknown=self.keep_unknown
        )


@dataclass(frozen=True)
class EditArgs(OptionGroup):
    """The changes of ``dcmtools.edit`` (--set ... --new-uids); the key and --charset are the command's."""

    set_: SetOpt = None
    set_existing: SetExistingOpt = None
    erase: EraseOpt = None
    erase_private: ErasePrivateOpt = False
    map_file: EditMapOpt = None
    match: MatchOpt = None
    require_match: RequireMatchOpt = False
    new_uids: NewUidsOpt = None

    def changes_anything(self) -> bool:
        return any(getattr(self, name) for name in self.option_types())

    def check(self) -> None:
        """Usage errors of options that go together."""
        if (self.map_file is None) != (self.match is None):
            raise typer.BadParameter("--map and --match go together", param_hint="--map/--match")
        if self.require_match and self.map_file is None:
            raise typer.BadParameter("--require-match needs --map", param_hint="--require-match")

    def editor(self, secret: Any = None, charset: str | None = None) -> Any:
        """A ``dcmtools.edit.Editor`` with the key of --new-uids; ``typer.BadParameter`` for what cannot be used."""
        from ..edit import EditError, Editor, load_map, parse_assignment

        self.check()
        try:
            editor = Editor(
                sets=[parse_assignment(a) for a in self.set_ or ()],
                set_existing=[parse_assignment(a) for a in self.set_existing or ()],
                erase=[parse_assignment(a, erase=True) for a in self.erase or ()],
                erase_private=self.erase_private,
                mapping=load_map(str(self.map_file), self.match)
                if self.map_file is not None and self.match is not None
                else None,
                require_match=self.require_match,
                new_uids=self.new_uids,
                key=secret,
                charset=charset,
            )
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {self.map_file}: {exc.strerror or exc}", param_hint="--map"
            ) from None
        except EditError as exc:
            raise typer.BadParameter(str(exc)) from None
        if editor.does_nothing:
            raise typer.BadParameter("no edit given (--set, --set-existing, --erase, --erase-private, --map, "
                                     "--new-uids or --charset)")  # fmt: skip
        return editor
