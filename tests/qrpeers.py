"""Query/retrieve peers for the tests: DCMTK dcmqrscp, wlmscpfs, storescp, Orthanc (with worklists),
and the test archive (a human, a dog and a cat) and worklist items they are filled with.

Every peer runs on 127.0.0.1 with free ports and is stopped by PID (``peers.running``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peers
import pydicom
from peers import PEER_ENV, REPO, free_port, require
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

UID_ROOT = "1.2.826.0.1.3680043.10.1420.9."


def uid(name: str) -> str:
    return generate_uid(prefix=UID_ROOT, entropy_srcs=[name])


# ------------------------------------------------------------- the archive
PATIENTS = {
    "H001": {"PatientName": "DOE^JOHN", "PatientBirthDate": "19600101", "PatientSex": "M"},
    "VET042": {
        "PatientName": "SMITH^REX",
        "PatientBirthDate": "20190301",
        "PatientSex": "M",
        "PatientSpeciesDescription": "Canine",
        "PatientBreedDescription": "Beagle",
        "ResponsiblePerson": "SMITH^JOHN",
        "ResponsiblePersonRole": "OWNER",
    },
    "VET077": {
        "PatientName": "JONES^TOM",
        "PatientBirthDate": "20200615",
        "PatientSex": "M",
        "PatientSpeciesDescription": "Feline",
        "PatientBreedDescription": "Siamese",
        "ResponsiblePerson": "JONES^MARY",
        "ResponsiblePersonRole": "OWNER",
    },
}
# (patient, study name, date, accession, description, [(series name, modality, source, count)])
STUDIES = [
    ("H001", "ct-chest", "20240110", "ACC100", "CT chest", [("ct", "CT", "CT_small.dcm", 3)]),
    ("H001", "mr-head", "20240301", "ACC101", "MR head", [("mr", "MR", "MR_small.dcm", 2)]),
    (
        "VET042",
        "thorax",
        "20240115",
        "ACC042",
        "Thorax",
        [("ct", "CT", "CT_small.dcm", 2), ("mr", "MR", "MR_small.dcm", 1)],
    ),
    ("VET077", "abdomen", "20240116", "ACC077", "Abdomen", [("mr", "MR", "MR_small.dcm", 1)]),
]


@dataclass
class Archive:
    files: list[Path]
    by_uid: dict[str, Path] = field(default_factory=dict)

    def study_uid(self, study: str) -> str:
        return uid(f"study/{study}")

    def series_uid(self, study: str, series: str) -> str:
        return uid(f"series/{study}/{series}")


def build_archive(folder: Path) -> Archive:
    """The test archive: 9 uncompressed instances of 3 patients, 4 studies, 5 series."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    by_uid = {}
    for patient, study, date, accession, description, series_list in STUDIES:
        for number, (series, modality, source, count) in enumerate(series_list, 1):
            for instance in range(1, count + 1):
                ds = pydicom.dcmread(get_testdata_file(source))
                for keyword in ("OtherPatientIDs", "OtherPatientIDsSequence", "PatientAge", "PatientWeight"):
                    if keyword in ds:
                        delattr(ds, keyword)
                ds.PatientID = patient
                for keyword, value in PATIENTS[patient].items():
                    setattr(ds, keyword, value)
                ds.StudyInstanceUID = uid(f"study/{study}")
                ds.StudyDate = date
                ds.StudyTime = "101500"
                ds.AccessionNumber = accession
                ds.StudyID = accession[-3:]
                ds.StudyDescription = description
                ds.ReferringPhysicianName = "WELBY^MARCUS"
                ds.SeriesInstanceUID = uid(f"series/{study}/{series}")
                ds.SeriesNumber = number
                ds.SeriesDescription = f"{description} {modality}"
                ds.Modality = modality
                ds.InstanceNumber = instance
                sop = uid(f"instance/{study}/{series}/{instance}")
                ds.SOPInstanceUID = sop
                ds.file_meta.MediaStorageSOPInstanceUID = sop
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                path = folder / f"{patient}-{study}-{series}-{instance}.dcm"
                ds.save_as(path, enforce_file_format=True)
                files.append(path)
                by_uid[sop] = path
    return Archive(files, by_uid)


def same_instance(received: Path, original: Path) -> bool:
    """The datasets are equal element by element (pixel data after decoding when the encodings differ).

    Data Set Trailing Padding (FFFC,FFFC) does not count: DCMTK drops it when it sends a file."""
    a = pydicom.dcmread(received)
    b = pydicom.dcmread(original)
    if a.file_meta.TransferSyntaxUID != b.file_meta.TransferSyntaxUID:
        import numpy as np

        if "PixelData" in b:
            if not np.array_equal(a.pixel_array, b.pixel_array):
                return False
            del a.PixelData
            del b.PixelData
    tags_a = {e.tag for e in a if e.tag.group != 0x0002 and e.tag != 0xFFFCFFFC}
    tags_b = {e.tag for e in b if e.tag.group != 0x0002 and e.tag != 0xFFFCFFFC}
    if tags_a != tags_b:
        return False
    return all(a[tag].value == b[tag].value for tag in tags_a)


# ------------------------------------------------------------- worklist items
def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


WORKLIST = [
    # name, patient, species (description, code, meaning), breed, owner, date, time, modality, station, description
    (
        "dog",
        "SMITH^REX",
        "VET042",
        ("Canine", "448771007", "Canis lupus familiaris"),
        ("Beagle", "44650008", "Beagle dog breed"),
        "SMITH^JOHN",
        "20240115",
        "0900",
        "CR",
        "CR1",
        "Thorax 2 views",
    ),
    (
        "cat",
        "JONES^TOM",
        "VET077",
        ("Feline", "448169003", "Felis catus"),
        ("Siamese", "13294000", "Siamese cat breed"),
        "JONES^MARY",
        "20240115",
        "1030",
        "US",
        "US1",
        "Abdomen ultrasound",
    ),
    ("human", "DOE^JOHN", "H001", None, None, None, "20240116", "1400", "CR", "CR1", "Chest PA"),
]


def worklist_item(name: str) -> Dataset:
    entry = next(e for e in WORKLIST if e[0] == name)
    _, patient, patient_id, species, breed, owner, date, tm, modality, station, description = entry
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = patient
    ds.PatientID = patient_id
    ds.PatientBirthDate = PATIENTS[patient_id]["PatientBirthDate"]
    ds.PatientSex = PATIENTS[patient_id]["PatientSex"]
    if species:
        ds.PatientSpeciesDescription = species[0]
        ds.PatientSpeciesCodeSequence = [code(species[1], "SCT", species[2])]
        ds.PatientBreedDescription = breed[0]
        ds.PatientBreedCodeSequence = [code(breed[1], "SCT", breed[2])]
        registration = Dataset()
        registration.BreedRegistrationNumber = f"REG-{patient_id}"
        registration.BreedRegistryCodeSequence = [code("109200", "DCM", "America Kennel Club")]
        ds.BreedRegistrationSequence = [registration]
        ds.ResponsiblePerson = owner
        ds.ResponsiblePersonRole = "OWNER"
        ds.ResponsibleOrganization = "Happy Paws Clinic"
        ds.PatientSexNeutered = "ALTERED"
    ds.AccessionNumber = f"WL-{name}"
    ds.ReferringPhysicianName = "VET^ANNA"
    ds.RequestedProcedureID = f"RP-{name}"
    ds.RequestedProcedureDescription = description
    ds.StudyInstanceUID = uid(f"wl/{name}")
    step = Dataset()
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = tm
    step.Modality = modality
    step.ScheduledPerformingPhysicianName = "VET^ANNA"
    step.ScheduledProcedureStepDescription = description
    step.ScheduledProcedureStepID = f"SPS-{name}"
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def write_worklist(folder: Path, as_json: tuple[str, ...] = ()) -> list[Path]:
    """The three items as .wl files (and, for names in ``as_json``, as DICOM JSON instead)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for entry in WORKLIST:
        ds = worklist_item(entry[0])
        if entry[0] in as_json:
            path = folder / f"{entry[0]}.json"
            path.write_text(json.dumps(ds.to_json_dict()))
        else:
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
            ds.file_meta.MediaStorageSOPInstanceUID = uid(f"wlfile/{entry[0]}")
            path = folder / f"{entry[0]}.wl"
            ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# ------------------------------------------------------------- peers
def storescu(port: int, aet: str, files: list[Path]) -> None:
    require("storescu")
    result = subprocess.run(
        ["storescu", "-aec", aet, "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        env=PEER_ENV,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@dataclass
class Peer:
    peer: str  # AET@127.0.0.1:PORT
    port: int
    aet: str
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def dcmqrscp(tmp: Path, hosts: dict[str, tuple[str, int]], files: list[Path] = ()) -> Iterator[Peer]:
    """DCMTK dcmqrscp (fork mode) knowing ``hosts`` ({name: (AET, port)}), filled with ``files`` by C-STORE."""
    require("dcmqrscp", "storescu")
    port = free_port()
    db = tmp / f"qrscp-{port}"
    (db / "QRSCP").mkdir(parents=True)
    table = "\n".join(f"{name} = ({aet}, 127.0.0.1, {p})" for name, (aet, p) in hosts.items())
    config = db / "dcmqrscp.cfg"
    config.write_text(f"""NetworkTCPPort = {port}
MaxPDUSize = 16384
MaxAssociations = 16
HostTable BEGIN
{table}
HostTable END
AETable BEGIN
QRSCP {db / "QRSCP"} RW (200, 1024mb) ANY
AETable END
""")
    with peers.dcmtk("dcmqrscp", "-c", str(config), port=port, log=db / "dcmqrscp.log"):
        if files:
            storescu(port, "QRSCP", list(files))
        yield Peer(f"QRSCP@127.0.0.1:{port}", port, "QRSCP", {"log": db / "dcmqrscp.log"})


@contextlib.contextmanager
def wlmscpfs(tmp: Path, items: Path) -> Iterator[Peer]:
    """DCMTK wlmscpfs answering from the .wl files of ``items`` (copied into its data folder)."""
    require("wlmscpfs")
    port = free_port()
    db = tmp / f"wlm-{port}"
    folder = db / "WLMSCP"
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    for path in items.glob("*.wl"):
        (folder / path.name).write_bytes(path.read_bytes())
    with peers.dcmtk("wlmscpfs", "-dfp", str(db), str(port), port=port, log=db / "wlmscpfs.log"):
        yield Peer(f"WLMSCP@127.0.0.1:{port}", port, "WLMSCP")


@contextlib.contextmanager
def storescp(tmp: Path, aet: str = "THIRD") -> Iterator[Peer]:
    """DCMTK storescp accepting every transfer syntax, writing into its own folder."""
    port = free_port()
    out = tmp / f"storescp-{port}"
    with peers.storescp(out, "+xa", aet=aet, log=tmp / f"storescp-{port}.log", port=port):
        yield Peer(f"{aet}@127.0.0.1:{port}", port, aet, {"out": out})


@contextlib.contextmanager
def orthanc(
    tmp: Path,
    modalities: dict[str, tuple[str, int]],
    files: list[Path] = (),
    worklist: Path | None = None,
    config_extra: dict[str, Any] | None = None,
    *,
    dicomweb: bool = False,
    users: dict[str, str] | None = None,
    lua: str | None = None,
    commitment: Sequence[str] = (),
) -> Iterator[Peer]:
    """Orthanc with its ModalityWorklists plugin; ``modalities`` ({name: (AET, port)}) may C-MOVE,
    and are C-MOVE destinations; those named in ``commitment`` may also ask it for Storage Commitment
    (it reports to them on a new association); filled with ``files`` through its REST API; ``config_extra``
    is merged into its configuration (e.g. ``{"LimitFindResults": 2}``); ``dicomweb``, ``users``,
    ``lua``: see ``peers.orthanc``.  ``extra`` holds http, process, config and (with dicomweb) url."""
    config: dict[str, Any] = {
        "DicomAlwaysAllowFindWorklist": True,
        "DicomScuTimeout": 10,
        "DicomModalities": peers.orthanc_modalities(modalities, commitment),
        **(config_extra or {}),
    }
    with peers.orthanc(tmp, config, files=files, worklist=worklist, dicomweb=dicomweb, users=users, lua=lua) as server:
        extra: dict[str, Any] = {"http": server.http, "process": server.process, "config": server.config}
        if server.url:
            extra["url"] = server.url
        yield Peer(server.peer, server.port, server.aet, extra)


@contextlib.contextmanager
def listen(
    tmp: Path,
    *,
    aet: str = "LISTEN",
    files: list[Path] = (),
    worklist: Path | None = None,
    peers_file: Path | None = None,
    store: Path | None = None,
    extra: tuple[str, ...] = (),
) -> Iterator[Peer]:
    """``dcmtools listen`` with a store (filled with ``files`` by DCMTK storescu) and worklist items."""
    args = list(extra)
    if worklist is not None:
        args += ["--worklist-dir", str(worklist)]
    if peers_file is not None:
        args += ["--peers", str(peers_file)]
    with peers.listen(tmp, *args, aet=aet, store=store) as server:
        if files:
            storescu(server.port, aet, list(files))
        yield Peer(server.peer, server.port, aet, {"store": server.store, "log": server.log})


@contextlib.contextmanager
def orthanc_to_listen(tmp: Path, files: list[Path], store: Path | None = None) -> Iterator[tuple[Peer, Peer, int]]:
    """A migration through us: Orthanc holding ``files`` as the source, ``dcmtools listen`` (storing under
    ``store``) as the destination, both knowing us as DCMTOOLS on a free port; yields (source, destination,
    our port)."""
    port = free_port()
    us = {"me": ("DCMTOOLS", port)}
    with (
        orthanc(tmp, us, files) as source,
        listen(tmp, peers_file=peers_toml(tmp / "peers.toml", us), store=store) as dest,
    ):
        yield source, dest, port


@contextlib.contextmanager
def dcmqrscp_to_orthanc(
    tmp: Path, files: list[Path], modalities: dict[str, tuple[str, int]], commitment: Sequence[str] = ()
) -> Iterator[tuple[Peer, Peer]]:
    """A migration from DCMTK dcmqrscp holding ``files`` to Orthanc (``modalities`` and ``commitment``: see
    ``orthanc``), which dcmqrscp knows as a C-MOVE destination; yields (source, destination)."""
    with (
        orthanc(tmp, modalities, commitment=commitment) as dest,
        dcmqrscp(tmp, {"orthanc": ("ORTHANC", dest.port)}, files) as source,
    ):
        yield source, dest


def peers_toml(path: Path, entries: dict[str, tuple[str, int]]) -> Path:
    path.write_text(
        "".join(
            f'[{name}]\naet = "{aet}"\nhost = "127.0.0.1"\nport = {port}\n\n' for name, (aet, port) in entries.items()
        )
    )
    return path


# ------------------------------------------------------------- DCMTK's answers
def findscu(
    peer: Peer, keys: list[str], model: str, out: Path, worklist: bool = False, aet: str = "DCMTOOLS"
) -> list[dict[str, Any]]:
    """DCMTK findscu's matches (-X extracted, read back as DICOM JSON model); calling AE title ``aet``
    (Orthanc answers only the AE titles it knows)."""
    require("findscu")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    flag = "-W" if worklist else ("-P" if model == "patient" else "-S")
    args = ["findscu", flag, "-aet", aet, "-aec", peer.aet, "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    result = subprocess.run(
        [*args, "127.0.0.1", str(peer.port)], capture_output=True, text=True, env=PEER_ENV, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [read_json(path) for path in sorted(out.glob("rsp*.dcm"))]


def read_json(path: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "src"))
    from dcmtools.dicom import jsonmodel, reader

    return jsonmodel.to_json_model(reader.read(path).dataset, jsonmodel.JsonOptions(bulk_uri=False))


def canonical(dataset: dict[str, Any], drop: tuple[str, ...] = (), empty: bool = True) -> str:
    """A dataset as a comparable string: sorted, without the tags in ``drop`` (8-digit keys)
    and, unless ``empty``, without empty elements."""

    def clean(ds: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for key, element in sorted(ds.items()):
            if key in drop:
                continue
            element = dict(element)
            if element.get("vr") == "SQ":
                element["Value"] = [clean(item) for item in element.get("Value") or []]
                if not element["Value"]:
                    element.pop("Value")
            if not empty and "Value" not in element and "InlineBinary" not in element:
                continue
            out[key] = element
        return out

    return json.dumps(clean(dataset), sort_keys=True)


def answer_set(datasets: list[dict[str, Any]], drop: tuple[str, ...] = (), empty: bool = True) -> list[str]:
    return sorted(canonical(ds, drop, empty) for ds in datasets)


records = peers.records
