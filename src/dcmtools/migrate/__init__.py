"""Migrate a whole archive from one PACS (or folder) to another, stop and resume, and prove nothing was lost.

    from dcmtools.migrate import Migration, MigrateOptions, parse_endpoint, status
    from dcmtools.net import NetOptions

    net = NetOptions(calling_aet="DCMTOOLS")
    m = Migration(parse_endpoint("OLD@10.0.0.5:104"), parse_endpoint("NEW@10.0.0.6:104"),
                  "old-to-new.journal", net, MigrateOptions(associations=2, max_attempts=3))
    for record in m.run():            # inventory, transfer, verification
        print(record)
    print(m.summary(), m.exit_status)  # 0 only when every study is verified
    print(status("old-to-new.journal"))

The steps (each in its own module):

* ``inventory``: the studies of the source into the journal (C-FIND over date
  windows split while capped; or a folder tree read with ``dicomfile``).
* ``transfer``: each study not yet sent, ``associations`` at a time, inside
  the ``window`` and under the ``rate`` (``pacing``): C-MOVE straight to the
  destination, or through us (C-MOVE to us or C-GET, then C-STORE), or to and
  from folders.  A study's state in the journal goes planned -> (retrieved)
  -> sent -> verified, or failed with its attempts and last error.
* ``verify``: per study, the series and instance counts (and SOP Instance
  UIDs with ``uids``) of both sides by C-FIND on the study's UID alone
  (QIDO-RS for a DICOMweb destination, ``parse_endpoint("https://host/dicom-web")``,
  which the transfer fills by STOW-RS).
* ``changes`` (``MigrateOptions(changes=Changes(Anonymizer(key), Editor(sets=["InstitutionName=X"])))``):
  every instance de-identified and/or edited in flight (through us); the
  journal keeps each study's new UIDs, and verification looks there.
* ``commit`` (``MigrateOptions(commit=True)``): then Storage Commitment of
  the study's instances at the destination; a study not committed is not
  verified.

The journal is ``dcmtools.stream.journal``: running the same migration again resumes
(nothing verified is transferred again; failed studies are retried while
attempts are left); kill -9 at any moment loses at most the studies in flight.
"""

from .changes import Changes
from .commit import Committer
from .endpoints import Endpoint, parse_endpoint
from .inventory import FolderInventory, PacsInventory
from .pacing import Pacer, Rate, Window
from .run import STATES, MigrateErrorCode, MigrateOptions, Migration, status
from .transfer import Transfer
from .verify import Holding, compare

__all__ = [
    "Changes",
    "Committer",
    "Endpoint",
    "FolderInventory",
    "Holding",
    "MigrateErrorCode",
    "MigrateOptions",
    "Migration",
    "Pacer",
    "PacsInventory",
    "Rate",
    "STATES",
    "Transfer",
    "Window",
    "compare",
    "parse_endpoint",
    "status",
]
