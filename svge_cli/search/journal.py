"""The journal of a search run: append-only JSON lines, each record fsync'd before the driver acts on it.

The journal is the source of truth of a run (the results file is derived from it).  Records:

* ``start``  -- the first line: what search this is (space, strategy, objective, settings), so a
  ``--resume`` of another search is refused;
* ``resume`` -- a later driver took the run over;
* ``submit`` -- a cell was handed to a worker (trial seed, cell number, attempt, cell);
* ``finish`` -- its score, wall seconds, worker and any extra fields the evaluator returned;
* ``fail``   -- no score, and why (``reason``: timeout, exit status, bad answer, worker lost ...);
* ``retry``  -- a lost worker's cell goes out again (counted per cell);
* ``note``   -- what a strategy learned beyond its cells, written before they go out (the latent
  BO's selected points, duplicate and invalid decodes), given back to it on resume.

A record is written whole with one ``write`` and fsync'd, so a ``kill -9`` can at most leave a
torn last line, which `read_journal` drops: that cell was never acknowledged, and comes back
as in flight.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svge_cli.errors import SvgeError

JOURNAL_KIND = "svge-search-journal"
JOURNAL_VERSION = 1
START, RESUME, SUBMIT, FINISH, FAIL, RETRY, NOTE = "start", "resume", "submit", "finish", "fail", "retry", "note"


def journal_path(results: Path) -> Path:
    """The journal beside a results file: `bo-X.json` -> `bo-X.journal.jsonl`."""
    return results.with_name(results.stem + ".journal.jsonl")


class Journal:
    """An open journal; `append` returns only once the record is on disk."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_EXCL if fresh else 0)
        try:
            self._fd = os.open(path, flags, 0o644)
        except FileExistsError:
            raise SvgeError(f"{path}: a journal is already there (--resume to continue it)") from None
        except OSError as e:
            raise SvgeError(f"{path}: cannot write the journal ({e.strerror or e})") from None

    def append(self, record_type: str, /, **fields: Any) -> dict[str, Any]:
        record = {"type": record_type, "time": round(time.time(), 3), **fields}
        os.write(self._fd, (json.dumps(record, allow_nan=False) + "\n").encode())
        os.fsync(self._fd)
        return record

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every whole record of a journal, in order; a torn last line (a killed driver) is dropped."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SvgeError(f"{path}: cannot read the journal ({e.strerror or e})") from None
    lines = data.split(b"\n")
    records = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if n == len(lines) - 1:  # the last line, cut short by a kill
                break
            raise SvgeError(f"{path}: line {n + 1} is not a journal record") from None
        if not isinstance(rec, dict) or "type" not in rec:
            raise SvgeError(f"{path}: line {n + 1} is not a journal record")
        records.append(rec)
    if not records or records[0]["type"] != START or records[0].get("kind") != JOURNAL_KIND:
        raise SvgeError(f"{path}: not an svge search journal")
    if records[0].get("format_version") != JOURNAL_VERSION:
        raise SvgeError(f"{path}: journal format {records[0].get('format_version')}, this svge reads {JOURNAL_VERSION}")
    return records


@dataclass
class TrialLog:
    """One trial as the journal tells it: outcomes in the order they arrived, and cells still out."""

    seed: int
    done: list[dict[str, Any]] = field(default_factory=list)  # finish / fail records
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)  # cell -> its latest submit record
    attempts: dict[int, int] = field(default_factory=dict)  # cell -> submits so far
    lost: dict[int, int] = field(default_factory=dict)  # cell -> retries after a lost worker
    cells: int = 0  # cell numbers handed out
    notes: list[dict[str, Any]] = field(default_factory=list)  # the strategy's notes, in order

    def submitted(self) -> int:
        return len(self.done) + len(self.pending)


def replay(records: list[dict[str, Any]]) -> dict[int, TrialLog]:
    """Per trial seed: what finished (kept as it was) and what was in flight (to be submitted again)."""
    trials: dict[int, TrialLog] = {}
    for rec in records:
        if rec["type"] not in (SUBMIT, FINISH, FAIL, RETRY, NOTE):
            continue
        log = trials.setdefault(int(rec["trial"]), TrialLog(int(rec["trial"])))
        if rec["type"] == NOTE:
            log.notes.append(rec)
            continue
        cell = int(rec["cell"])
        if rec["type"] == SUBMIT:
            log.pending[cell] = rec
            log.attempts[cell] = log.attempts.get(cell, 0) + 1
            log.cells = max(log.cells, cell + 1)
        elif rec["type"] == RETRY:
            log.lost[cell] = log.lost.get(cell, 0) + 1
        elif cell in log.pending:  # an outcome counts once, for a cell still out
            del log.pending[cell]
            log.done.append(rec)
    return trials
