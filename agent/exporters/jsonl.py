"""JSON-lines rendering of a snapshot (the `--once` output and test fixtures).

Line 1 is ``{"resource": {...}}``; then one object per point
``{"name","type","unit","attributes","value","time_unix_nano"}``; then one per event.
"""

from __future__ import annotations

import json
from typing import TextIO

from agent.catalog import CATALOG
from agent.snapshot import Snapshot


def point_records(snapshot: Snapshot) -> list[dict]:
    records = []
    for p in snapshot.points:
        spec = CATALOG[p.name]
        record = {
            "name": p.name,
            "type": spec.instrument,
            "unit": spec.unit,
            "attributes": dict(p.attributes),
            "value": p.value,
            "time_unix_nano": p.time_unix_nano,
        }
        if p.start_time_unix_nano is not None:
            record["start_time_unix_nano"] = p.start_time_unix_nano
        records.append(record)
    return records


def write_snapshot(snapshot: Snapshot, out: TextIO) -> None:
    out.write(json.dumps({"resource": snapshot.resource}, sort_keys=True) + "\n")
    for record in point_records(snapshot):
        out.write(json.dumps(record, sort_keys=True) + "\n")
    for ev in snapshot.events:
        out.write(
            json.dumps(
                {
                    "event": ev.name,
                    "severity": ev.severity.name,
                    "body": ev.body,
                    "attributes": dict(ev.attributes),
                    "time_unix_nano": ev.time_unix_nano,
                    "event_id": ev.event_id,
                },
                sort_keys=True,
            )
            + "\n"
        )
    if snapshot.source_errors:
        errors = {f"{s}/{r}": n for (s, r), n in sorted(snapshot.source_errors.items())}
        out.write(json.dumps({"source_errors": errors}, sort_keys=True) + "\n")
