"""``dcmtools find``: C-FIND a PACS; one record per match, a table on a terminal."""

from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..stream.records import human_failure
from .application import app
from .common import FlatOpt, StdArgs, TableArgs, csv_epilog
from .netopts import EXIT_STATUS_EPILOG, PEERS_EPILOG, NetArgs, PeerArg, client_options, fatal_as_record, write_query
from .webpeer import WEB_EPILOG, WebArgs, is_web

KeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--key",
        "-k",
        metavar="KEY[=VALUE]",
        help="A query key: Keyword or gggg,eeee, =VALUE to match (wildcards * ?, ranges A-B, "
        "UID lists a\\b), no value to have it returned; Seq[0].Keyword=VALUE inside a sequence. "
        "Repeatable.",
        show_default=False,
    ),
]
LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", metavar="N", min=1, help="Stop after N matches (the query is cancelled with C-CANCEL)."),
]


def model_option(default: str) -> Any:
    """--model/-m (the query/retrieve information model); ``default`` says what it is when not given."""
    help_ = f"Information model: patient or study root [default: {default}; patient at the patient level]."
    return Annotated[str | None, typer.Option("--model", "-m", metavar="MODEL", help=help_, show_default=False)]


NoDefaultsOpt = Annotated[
    bool, typer.Option("--no-defaults", help="Send only the -k keys (and the shortcuts), not the default return keys.")
]

FIND_EPILOG = """\b
Default return keys (with --no-defaults only -k keys are sent):
  patient  PatientName PatientID PatientBirthDate PatientSex PatientSpeciesDescription
           ResponsiblePerson NumberOfPatientRelatedStudies
  study    PatientName PatientID PatientBirthDate PatientSex StudyDate StudyTime
           AccessionNumber StudyID StudyDescription ModalitiesInStudy ReferringPhysicianName
           NumberOfStudyRelatedSeries NumberOfStudyRelatedInstances StudyInstanceUID
  series   PatientID StudyInstanceUID SeriesInstanceUID Modality SeriesNumber
           SeriesDescription SeriesDate BodyPartExamined NumberOfSeriesRelatedInstances
  image    PatientID StudyInstanceUID SeriesInstanceUID SOPInstanceUID SOPClassUID InstanceNumber

\b
Shortcuts: --patient DOE matches PatientName DOE* (a name without * or ? is a
prefix); --date takes today, yesterday, YYYYMMDD, YYYY-MM-DD, 'N days ago',
or a range A-B, A.., ..B of those (StudyDate); --modality is ModalitiesInStudy
at the patient and study levels, Modality below.

\b
Records: {"type":"match","peer":..,"level":"STUDY","model":"study","n":1,
"dataset":{DICOM JSON model, or --flat},"ok":true}; when the peer ends the
query with a failure, a {"type":"query","ok":false,"status":..,"error":..}
record. The summary gives matches, dropped, walked, cancelled, unchecked
and incomplete.

\b
On a terminal (or with --no-json) the matches show as a table when the query
ends: series and images in number order within their study and series,
columns as wide as their values (IDs and UIDs whole; names and descriptions
longer than 32 characters cut with …), and a titled column for each returned
key beyond the level's own. The records (--json) hold every value whole, in
the peer's order.

\b
An incomplete list exits 1: when the peer cuts its answer (it ends it with a
Cancel status we did not send, as Orthanc's LimitFindResults does, or it
returns as many matches as the max_results of its peers-file entry), a last
{"type":"query","incomplete":true,"ok":false,"error":{"code":"incomplete"}}
record says so. Narrow the query (a shorter date range) to get all.

\b
Hierarchical peers (DCMTK dcmqrscp) refuse a series or image query that
does not name its study: find then walks down (studies, then their series,
then their images) and marks the records "walked": true. A match whose
returned value contradicts a key (a peer that ignored the key) is left out
and counted as dropped (--no-check keeps them). Each answer is read in its
own character set; when that set cannot represent a key (Orthanc answering
Latin-1 to a Chinese name), the match is kept and its record says so in
"unchecked_keys" and "note". A name key with "=" (Wang^XiaoDong=王^小東=)
goes to the peer as typed and is checked group by group. A study query on
ModalitiesInStudy the peer does not fill is checked against its series.
Pipe the records into 'dcmtools move PEER -' to retrieve each match at its
level.

\b
Many queries in one run (--queries-from FILE, '-' for stdin): a CSV whose
header names the keys (AccessionNumber, or PatientID,StudyDate ...), or JSON
Lines of keys ({"AccessionNumber":"A1"}), all over one association. Each
row's keys go on top of -k and the shortcuts; every record gets "q" (the
row's number) and "query" (its keys). A row that cannot be a query is an
error record and the rest go on."""

# The table's columns per level: (keyword, title, cap). A column is as wide as its widest value; a
# cap > 0 cuts longer free text (names, descriptions) with "…"; identifiers and UIDs (cap 0) are never cut.
_COLUMNS: dict[str, list[tuple[str, str, int]]] = {
    "PATIENT": [
        ("PatientID", "patient id", 0),
        ("PatientName", "name", 32),
        ("PatientBirthDate", "born", 8),
        ("PatientSex", "sex", 3),
        ("PatientSpeciesDescription", "species", 16),
        ("NumberOfPatientRelatedStudies", "studies", 0),
    ],
    "STUDY": [
        ("StudyDate", "date", 8),
        ("PatientName", "name", 32),
        ("PatientID", "patient id", 0),
        ("AccessionNumber", "accession", 0),
        ("ModalitiesInStudy", "mod", 12),
        ("StudyDescription", "description", 32),
        ("NumberOfStudyRelatedSeries", "ser", 0),
        ("NumberOfStudyRelatedInstances", "img", 0),
        ("StudyInstanceUID", "study uid", 0),
    ],
    "SERIES": [
        ("PatientID", "patient id", 0),
        ("Modality", "mod", 4),
        ("SeriesNumber", "no", 0),
        ("SeriesDescription", "description", 32),
        ("NumberOfSeriesRelatedInstances", "img", 0),
        ("SeriesInstanceUID", "series uid", 0),
    ],
    "IMAGE": [
        ("PatientID", "patient id", 0),
        ("InstanceNumber", "no", 0),
        ("SOPClassUID", "sop class", 32),
        ("SOPInstanceUID", "sop instance uid", 0),
    ],
}
# Rows sorted by number within their parent (parents in the order the peer gave them).
_SORT = {"SERIES": ("StudyInstanceUID", "SeriesNumber"), "IMAGE": ("SeriesInstanceUID", "InstanceNumber")}


_CONTROL = {"QueryRetrieveLevel", "RetrieveAETitle", "SpecificCharacterSet", "InstanceAvailability"}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\\".join(_text(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("Alphabetic") or "")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _cell(text: str, width: int) -> str:
    if len(text) > width:
        text = text[: width - 1] + "…"  # cut visibly; the records hold the whole value
    return text.ljust(width)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")  # no number: after the numbered rows, in the peer's order


class Table:
    """The readable form of query matches: a table per level, printed when the query ends
    (``RecordWriter.summary`` calls ``finish``) so that rows can be sorted (``sort``: level ->
    (parent key, number key)) and columns sized to their values. Keys returned beyond the
    level's columns get columns of their own, titled with their keyword. ``prepare`` rewrites
    a match record first (worklist lifts its scheduled step into columns)."""

    def __init__(
        self,
        columns: dict[str, list[tuple[str, str, int]]],
        key: str = "level",
        sort: dict[str, tuple[str, str]] | None = None,
        prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.columns = columns
        self.key = key
        self.sort = sort or {}
        self.prepare = prepare
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, record: dict[str, Any]) -> str | None:
        kind = record.get("type")
        if kind == "summary":
            return None
        if record.get("ok") is False:
            return human_failure(record, record.get("peer", ""))
        if kind != "match":
            return None
        if self.prepare is not None:
            record = self.prepare(record)
        from ..net.identifiers import flat_of

        group = str(record.get(self.key) or record.get("model") or "")
        data = record.get("dataset") or {}
        if data and all(len(k) == 8 for k in data):
            data = flat_of(data)
        if _has_sop_class(self._columns(group)):
            data = {**data, "SOPClassUID": _sop_class_name(data.get("SOPClassUID"))}
        self.rows.setdefault(group, []).append(data)
        return None

    def _columns(self, group: str) -> list[tuple[str, str, int]]:
        return self.columns.get(group) or self.columns.get(group.upper()) or []

    def finish(self) -> list[str]:
        """The tables of the rows held (then forgotten)."""
        from ..net.keys import DEFAULT_KEYS

        lines: list[str] = []
        for group, rows in self.rows.items():
            cols = list(self._columns(group))
            hidden = {c[0] for c in cols} | set(DEFAULT_KEYS.get(group.upper(), ())) | _CONTROL
            extra: dict[str, None] = {}
            for row in rows:
                extra.update((k, None) for k, v in row.items() if k not in hidden and v not in (None, "", []))
            cols += [(k, k, 0) for k in extra]
            if group.upper() in self.sort:
                rows = _sorted(rows, *self.sort[group.upper()])
            texts = [[_text(row.get(name)) for name, _, _ in cols] for row in rows]
            widths = []
            for i, (_, title, cap) in enumerate(cols):
                width = max([len(title)] + [len(t[i]) for t in texts])
                widths.append(min(width, max(cap, len(title))) if cap else width)
            if lines:
                lines.append("")
            lines.append("  ".join(_cell(title, w) for (_, title, _), w in zip(cols, widths, strict=True)).rstrip())
            lines.extend("  ".join(_cell(t, w) for t, w in zip(row, widths, strict=True)).rstrip() for row in texts)
        self.rows.clear()
        return lines


def _sorted(rows: list[dict[str, Any]], parent: str, number: str) -> list[dict[str, Any]]:
    order: dict[str, int] = {}
    for row in rows:
        order.setdefault(_text(row.get(parent)), len(order))
    return sorted(rows, key=lambda row: (order[_text(row.get(parent))], _number(_text(row.get(number)))))


def table_human(
    columns: dict[str, list[tuple[str, str, int]]],
    key: str = "level",
    sort: dict[str, tuple[str, str]] | None = None,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Table:
    """A human formatter printing matches as a table when the query ends (see ``Table``)."""
    return Table(columns, key, sort, prepare)


def _has_sop_class(cols: list[tuple[str, str, int]]) -> bool:
    return any(name == "SOPClassUID" for name, _, _ in cols)


def _sop_class_name(uid: Any) -> str:
    if not uid:
        return ""
    try:
        from pydicom.uid import UID

        name = UID(str(uid)).name
        return name.replace(" Storage", "") if name else str(uid)
    except Exception:  # noqa: BLE001
        return str(uid)


FIND_CSV_EPILOG = csv_epilog(
    "-k", "the default return keys of the level (above), then the shortcut keys", lead="q (with --queries-from), then "
)


@app.command(
    "find",
    epilog="\n\n".join((FIND_EPILOG, FIND_CSV_EPILOG, PEERS_EPILOG, EXIT_STATUS_EPILOG, WEB_EPILOG)),
)
@client_options
def find_command(
    peer: PeerArg,
    key: KeyOpt = None,
    level: Annotated[
        str, typer.Option("--level", "-L", metavar="LEVEL", help="patient, study, series or image.")
    ] = "study",
    model: model_option("study") = None,  # type: ignore[valid-type]
    patient: Annotated[
        str | None, typer.Option("--patient", metavar="NAME", help="Patient name (DOE, DOE^J*).")
    ] = None,
    patient_id: Annotated[str | None, typer.Option("--patient-id", metavar="ID", help="Patient ID.")] = None,
    date: Annotated[
        str | None, typer.Option("--date", metavar="DATE", help="Study date or range (today, 20240101-20240131 ...).")
    ] = None,
    modality: Annotated[
        str | None, typer.Option("--modality", metavar="MOD", help="Modality (CT, MR, CR ...).")
    ] = None,
    accession: Annotated[str | None, typer.Option("--accession", metavar="NUMBER", help="Accession number.")] = None,
    limit: LimitOpt = None,
    no_defaults: NoDefaultsOpt = False,
    walk: Annotated[
        bool,
        typer.Option("--walk/--no-walk", help="Walk down when a hierarchical peer refuses a series or image query."),
    ] = True,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Leave out matches that contradict a key.")] = True,
    queries_from: Annotated[
        str | None,
        typer.Option(
            "--queries-from",
            metavar="FILE",
            help="Many queries, one association: a CSV whose header names the keys, or JSON Lines of keys "
            "('-' reads stdin). Each match is tagged with its query.",
        ),
    ] = None,
    flat: FlatOpt = False,
    table: TableArgs = TableArgs(),
    net: NetArgs = NetArgs(),
    web: WebArgs = WebArgs(),
    std: StdArgs = StdArgs(),
) -> None:
    """Query a PACS (C-FIND): one record per match, a table on a terminal.

    Keys as DCMTK's findscu -k takes them, friendly shortcuts, and a useful
    set of return keys for each level, so that a bare query gives a table.

    \b
    Examples:
      dcmtools find PACS@127.0.0.1:4242 --date today
      dcmtools find pacs --patient doe --modality CT --date 20240101-20240131
      dcmtools find pacs --level series -k AccessionNumber=ACC001 -k SeriesDescription
      dcmtools find pacs -k 'PatientName=SMITH^*' -k PatientSpeciesDescription --flat | jq -c 'select(.type=="match") | .dataset'
      dcmtools find pacs --level series -k Modality=CT | dcmtools move pacs --store-dir out/ -
      dcmtools find web --level series -k Modality=CT     # a DICOMweb service: QIDO-RS
      printf 'AccessionNumber\\nACC001\\nACC042\\n' > accessions.csv
      dcmtools find pacs --queries-from accessions.csv -k StudyDescription
      dcmtools find pacs --level series --csv -k PatientName -k Modality -k SeriesDescription > series.csv
    """
    with std.run("find", table_human(_COLUMNS, sort=_SORT)) as run:
        from ..net.keys import DEFAULT_KEYS, choose_model, identifier_from, normalize_level, parse_keys, shortcut_keys
        from ..net.query import Finder
        from ..stream.records import DcmtoolsError

        options = net.options(run.debug)
        try:
            query_level = normalize_level(level)
            query_model = choose_model(query_level, model)
            texts = shortcut_keys(
                query_level, patient=patient, patient_id=patient_id, date=date, modality=modality, accession=accession
            ) + list(key or [])
            identifier = identifier_from(
                parse_keys(texts), () if no_defaults else DEFAULT_KEYS[query_level], query_level
            )
        except DcmtoolsError as exc:
            raise typer.BadParameter(str(exc)) from None
        from ..stream.tables import key_columns, plain_columns

        columns = key_columns(key or []) or plain_columns([*DEFAULT_KEYS[query_level], *texts])
        table.use(run, columns, std, flat=flat, lead=["q"] if queries_from is not None else [])
        if is_web(peer, net.peers):  # DICOMweb: QIDO-RS (cli/webpeer.py)
            from . import webpeer

            return webpeer.find(run, web.session(peer, net, run), identifier, query_level, limit, flat)
        remote = net.peer(peer, options)
        if queries_from is not None:
            if limit is not None:
                raise typer.BadParameter("--limit applies to one query, not to --queries-from", param_hint="--limit")
            _many(run, remote, identifier, options, query_level, query_model, walk, check, flat, queries_from)
            return
        finder = Finder(remote, identifier, options, query_level, query_model, limit, walk, check, flat)
        try:
            write_query(run, finder, "query", remote)
        finally:
            run.summary_extra.update(_summary(finder))
            if finder.dropped and not std.quiet:
                keys = ", ".join(f"{k} ({n})" for k, n in finder.dropped_keys.items())
                run.warn(f"left out {finder.dropped} match(es) the peer returned although they do not match: {keys}")
            if finder.unchecked and not std.quiet:
                keys = ", ".join(finder.unchecked_keys)
                run.warn(
                    f"kept {finder.unchecked} match(es) whose {keys} could not be checked: the peer answered in a "
                    'character set that cannot represent the query (see the records\' "note")'
                )


def _many(
    run: Any,
    remote: Any,
    identifier: dict[str, Any],
    options: Any,
    level: str,
    model: str,
    walk: bool,
    check: bool,
    flat: bool,
    source: str,
) -> None:
    """--queries-from: every query of the file over one association."""
    import sys

    from ..net.query import find_many, read_queries

    try:
        stream = sys.stdin if source == "-" else open(source, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {source}: {exc.strerror or exc}", param_hint="--queries-from") from None
    stats: dict[str, int] = {}
    try:
        with fatal_as_record(run, "query", peer=str(remote)):
            for record in find_many(
                remote,
                identifier,
                read_queries(stream),
                options,
                level=level,
                model=model,
                walk=walk,
                check=check,
                flat=flat,
                stats=stats,
            ):
                run.write(record)
    finally:
        if stream is not sys.stdin:
            stream.close()
        run.summary_extra.update(stats)


def _summary(finder: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {"matches": finder.matches}
    if finder.dropped:
        extra["dropped"] = finder.dropped
    if finder.walked:
        extra["walked"] = True
    if finder.cancelled:
        extra["cancelled"] = True
    if finder.unchecked:
        extra["unchecked"] = finder.unchecked
    if finder.incomplete:
        extra["incomplete"] = True
    return extra
