"""``dcmtools worklist``: what a modality's worklist shows (Modality Worklist C-FIND)."""

from typing import Annotated, Any

import typer

from .application import app
from .common import FlatOpt, StdArgs, TableArgs, csv_epilog
from .find import KeyOpt, LimitOpt, NoDefaultsOpt, table_human
from .netopts import EXIT_STATUS_EPILOG, PEERS_EPILOG, NetArgs, PeerArg, client_options, write_query

WORKLIST_EPILOG = """\b
Default return keys (--no-defaults: only the filters and -k keys):
  PatientName PatientID PatientBirthDate PatientSex, the veterinary ones:
  PatientSpeciesDescription PatientSpeciesCodeSequence PatientBreedDescription
  PatientBreedCodeSequence BreedRegistrationSequence ResponsiblePerson
  ResponsiblePersonRole ResponsibleOrganization PatientSexNeutered, then
  AccessionNumber ReferringPhysicianName RequestedProcedureID
  RequestedProcedureDescription StudyInstanceUID, and in the scheduled
  procedure step: ScheduledStationAETitle ScheduledProcedureStepStartDate
  ScheduledProcedureStepStartTime Modality ScheduledPerformingPhysicianName
  ScheduledProcedureStepDescription ScheduledStationName ScheduledProcedureStepID.

\b
Filters (in ScheduledProcedureStepSequence): --date (start date; default
today; 'any' for all dates; today, yesterday, tomorrow, YYYYMMDD, ranges A-B),
--modality, --station-aet; --patient matches PatientName (DOE -> DOE*).
Other keys with -k, e.g. -k 'ScheduledProcedureStepSequence[0].ScheduledStationName=CR1'.

\b
Records: {"type":"match","model":"worklist","n":1,"dataset":{..},"ok":true},
as 'dcmtools find'. An item whose returned values contradict a filter (a
worklist server that ignored it) is left out and counted as dropped."""

_COLUMNS = {
    "worklist": [
        ("_date", "date", 8),
        ("_time", "time", 6),
        ("_modality", "mod", 4),
        ("_station", "station", 0),
        ("PatientName", "name", 20),
        ("PatientID", "patient id", 0),
        ("_animal", "species/breed", 18),
        ("ResponsiblePerson", "owner", 14),
        ("AccessionNumber", "accession", 0),
        ("_description", "procedure", 0),
    ]
}


def _human_record(record: dict[str, Any]) -> dict[str, Any]:
    """Lift the scheduled step and the animal into columns of the table."""
    from ..net.identifiers import flat_of

    data = record.get("dataset") or {}
    if data and all(len(k) == 8 for k in data):
        data = flat_of(data)
    step = data.get("ScheduledProcedureStepSequence") or [{}]
    step = step[0] if step else {}
    animal = " / ".join(
        str(v) for v in (data.get("PatientSpeciesDescription"), data.get("PatientBreedDescription")) if v
    )
    shown = {
        "_date": step.get("ScheduledProcedureStepStartDate"),
        "_time": step.get("ScheduledProcedureStepStartTime"),
        "_modality": step.get("Modality"),
        "_station": step.get("ScheduledStationAETitle"),
        "_animal": animal or None,
        "_description": step.get("ScheduledProcedureStepDescription") or data.get("RequestedProcedureDescription"),
    }
    keep = ("PatientName", "PatientID", "ResponsiblePerson", "AccessionNumber")
    return {**record, "dataset": {**shown, **{k: data.get(k) for k in keep}}}


_human = table_human(_COLUMNS, key="model", prepare=_human_record)


WORKLIST_CSV_EPILOG = csv_epilog(
    "-k", "the default return keys (above) but SpecificCharacterSet and the code sequences"
)


@app.command("worklist", epilog="\n\n".join((WORKLIST_EPILOG, WORKLIST_CSV_EPILOG, PEERS_EPILOG, EXIT_STATUS_EPILOG)))
@client_options
def worklist_command(
    peer: PeerArg,
    date: Annotated[
        str, typer.Option("--date", metavar="DATE", help="Scheduled start date or range ('any' for all).")
    ] = "today",
    modality: Annotated[
        str | None, typer.Option("--modality", metavar="MOD", help="Scheduled modality (CT, CR, US ...).")
    ] = None,
    station_aet: Annotated[
        str | None, typer.Option("--station-aet", metavar="AET", help="Scheduled station AE title.")
    ] = None,
    patient: Annotated[
        str | None, typer.Option("--patient", metavar="NAME", help="Patient name (DOE, DOE^J*).")
    ] = None,
    key: KeyOpt = None,
    limit: LimitOpt = None,
    no_defaults: NoDefaultsOpt = False,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Leave out items that contradict a filter.")] = True,
    flat: FlatOpt = False,
    table: TableArgs = TableArgs(),
    net: NetArgs = NetArgs(),
    std: StdArgs = StdArgs(),
) -> None:
    """Show a modality worklist (Modality Worklist C-FIND), as the modality would see it.

    \b
    Examples:
      dcmtools worklist PACS@127.0.0.1:4242
      dcmtools worklist pacs --modality CR --station-aet CR1 --aet CR1
      dcmtools worklist pacs --date 20240115-20240119 --patient 'SMITH^*'
      dcmtools worklist pacs --date any --flat | jq -r 'select(.type=="match") | .dataset.PatientName'
      dcmtools worklist pacs --date any --csv -k PatientName -k "ScheduledProcedureStepSequence[0].Modality" > worklist.csv
    """
    with std.run("worklist", _human) as run:
        from ..net.query import Finder
        from ..net.worklist import worklist_identifier
        from ..stream.records import DcmtoolsError

        options = net.options(run.debug)
        try:
            identifier = worklist_identifier(
                key or [],
                date=date,
                modality=modality,
                station_aet=station_aet,
                patient=patient,
                defaults=not no_defaults,
            )
        except DcmtoolsError as exc:
            raise typer.BadParameter(str(exc)) from None
        from ..net.keys import WORKLIST_KEYS
        from ..stream.tables import key_columns, plain_columns

        table.use(run, key_columns(key or []) or plain_columns(WORKLIST_KEYS), std, flat=flat)
        remote = net.peer(peer, options)
        finder = Finder(remote, identifier, options, "WORKLIST", "worklist", limit, False, check, flat)
        try:
            write_query(run, finder, "worklist", remote)
        finally:
            run.summary_extra["matches"] = finder.matches
            if finder.dropped:
                run.summary_extra["dropped"] = finder.dropped
                if not std.quiet:
                    keys = ", ".join(f"{k} ({n})" for k, n in finder.dropped_keys.items())
                    run.warn(f"left out {finder.dropped} item(s) the peer returned although they do not match: {keys}")
