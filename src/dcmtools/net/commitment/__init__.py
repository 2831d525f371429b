"""Storage Commitment Push Model (PS3.4 Annex J): asking an archive whether it keeps instances, and answering.

The requester (SCU, ``dcmtools commit``)::

    from dcmtools.net import NetOptions, parse_peer
    from dcmtools.net.commitment import commit

    for record in commit(parse_peer("PACS@10.0.0.5:104"), ["study/"], NetOptions(), wait=60, port=11113):
        print(record["sop_instance_uid"], record["state"])      # committed, failed, pending ...

* The SOP Class and Instance UIDs of each input come from the file (its first
  elements, read with ``dcmtools.dicom.reader``) or from an upstream record
  (``send``, ``listen``, a query match: ``sop_class_uid``/``sop_instance_uid``
  or the dataset's (0008,0016)/(0008,0018)).
* Every ``batch`` instances make one transaction: one N-ACTION (Request
  Storage Commitment, action type 1) on the well-known SOP instance
  1.2.840.10008.1.20.1.1, with a new Transaction UID that is tracked until its
  N-EVENT-REPORT comes.
* The report is accepted on the association of the request (kept open while
  waiting) and, with ``port``, on new associations the archive opens to us
  (our AE title ``options.calling_aet`` on that port; the SCP role for the
  Storage Commitment Push Model SOP class is accepted).
* One record per instance: ``state`` committed (``ok``), failed (the failure
  reason decoded, e.g. 0x0112 no such object instance), pending (no report
  within ``wait`` seconds after the last request, with the likely cause), or
  not_requested (the association failed before its request went out).

The archive side (``dcmtools listen``): ``CommitmentSCP`` answers N-ACTION
requests for what a ``StorageSCP`` has stored (the store's index, ``index.py``) and
sends the report the way the requester asks: on its association while it is
still open, or on a new association to a configured address (``report``:
auto, same, new).
"""

from __future__ import annotations

from .common import (
    DEFAULT_BATCH,
    DEFAULT_WAIT,
    EVENT_ALL_COMMITTED,
    EVENT_FAILURES,
    FAILURE_REASONS,
    REQUEST_ACTION,
    STORAGE_COMMITMENT,
    SYNTAXES,
    WELL_KNOWN_INSTANCE,
    failure_words,
)
from .exchange import Exchanges
from .inputs import Reference, read_reference, reference_for, uids_from_record
from .scp import REPORT_MODES, CommitmentSCP
from .scu import CommitmentSCU, Transaction, commit

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_WAIT",
    "EVENT_ALL_COMMITTED",
    "EVENT_FAILURES",
    "FAILURE_REASONS",
    "REPORT_MODES",
    "REQUEST_ACTION",
    "STORAGE_COMMITMENT",
    "SYNTAXES",
    "WELL_KNOWN_INSTANCE",
    "CommitmentSCP",
    "CommitmentSCU",
    "Exchanges",
    "Reference",
    "Transaction",
    "commit",
    "failure_words",
    "read_reference",
    "reference_for",
    "uids_from_record",
]
