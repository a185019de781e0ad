"""The results file of a sweep: one JSON object a line, appended as each point finishes.

A record is keyed by the point (config axes, sizing workloads, workload or board, clock and
seed) and the hash of the sources its measure depends on
(:func:`sim.sweep.measures.source_hash`). A sweep skips the points whose key already has a
finished record, so an interrupted or partly failed sweep resumes where it stopped, and a
code change reruns only the measures whose sources changed. Failed records (their one-line
``error``) are run again next time. Every line is flushed and synced as it is written; a
last line cut short by a crash is ignored on reading.

Besides point records the file holds one ``{"sweep": ...}`` line per run (the boards and
clocks the spec named), which ``--report`` reads back.
"""

import hashlib
import json
import os
from pathlib import Path

from .spec import Point

__all__ = ["ResultStore", "record_key"]


def record_key(point_ident: str, source: str) -> str:
    """The key of a point (:meth:`~sim.sweep.spec.Point.ident`) measured by sources with
    hash ``source``."""
    return hashlib.sha256(f"{point_ident}\0{source}".encode()).hexdigest()[:24]


class ResultStore:
    """Append-only JSON-lines results at ``path`` (created with its folder on first write)."""

    def __init__(self, path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        """Every complete record, oldest first."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue                     # a line cut short by a crash
        return out

    def finished(self) -> set[str]:
        """Keys with a successful record."""
        return {r["key"] for r in self.read() if r.get("status") == "ok" and "key" in r}

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True) + "\n"
        with open(self.path, "a+b") as f:
            # A previous writer killed mid-line left no newline: start on a fresh line.
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())

    def latest(self) -> list[dict]:
        """Per point, its newest point record (whatever code measured it)."""
        newest = {}
        for r in self.read():
            if "point" in r:
                try:                             # fields added since default as they did
                    ident = Point.from_dict(r["point"]).ident()
                except (TypeError, KeyError):
                    ident = json.dumps(r["point"], sort_keys=True)
                newest[ident] = r
        return list(newest.values())

    def context(self) -> dict:
        """The newest ``sweep`` line (boards and clocks of the last run), or ``{}``."""
        found = [r["sweep"] for r in self.read() if "sweep" in r]
        return found[-1] if found else {}
