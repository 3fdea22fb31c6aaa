"""The run folder of a search: its journal, its results file, and resuming.

* the journal (`journal`) is the truth: every submission and outcome, fsync'd;
* the results file (``kind: svge-search-results``, docs/search.md) is derived from it and
  rewritten atomically after every finished evaluation: per trial every query in the order
  its result arrived, with ``arch``, ``hash``, ``score`` (null when it failed), ``status``
  (``queried`` / ``failed``), the ``reason`` of a failure, wall ``seconds`` and ``worker``.

A results file written before journals existed is resumed by turning its queries into a journal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from svge_cli.errors import SvgeError
from svge_cli.search.journal import (
    FAIL,
    FINISH,
    JOURNAL_KIND,
    JOURNAL_VERSION,
    RESUME,
    START,
    SUBMIT,
    Journal,
    journal_path,
    read_journal,
)
from svge_cli.storage.store import write_text_lines
from svge_cli.storage.workspace import Workspace

RESULTS_KIND = "svge-search-results"
RESULTS_VERSION = 1
QUERIED, FAILED = "queried", "failed"
#: the results of the decode-based BO before it became a strategy of the driver (svge < 0.7)
OLD_BO_KIND = "svge-bo-results"
SAME_SEARCH = ("space", "strategy", "objective", "target", "evaluator", "features", "checkpoint_fingerprint")
SAME_SETTINGS = ("budget", "batch", "init", "iters", "inducing", "attempts")
#: a random-search baseline's results sit beside the search's own: `NAME.random.json`
BASELINE_SUFFIX = ".random"
#: outcome fields the results file carries over from the journal when present
CARRIED = ("device", "failure", "reason", "exit", "stderr", "extra", "attempt")


def results_path(ws: Workspace, space: str, results: str | None, resume: bool) -> Path:
    """The file a search writes: the one given, the newest to resume, else a new time-stamped one.

    Args:
        ws: the workspace whose ``<space>/bo`` folder holds the searches' results.
        space: name of the search space.
        results: the path given by ``--results``; None or empty: chosen in the workspace.
        resume: pick the newest ``bo-*.json`` of the folder (random-search baselines left out).

    Returns:
        The results path; with neither `results` nor `resume`, a new ``bo-YYYYmmdd-HHMMSS.json``
        that is not created here.

    Raises:
        SvgeError: when asked to resume but the folder holds no results file.
    """
    if results:
        return Path(results)
    folder = ws.space_dir(space) / "bo"
    if resume:
        found = sorted(p for p in folder.glob("bo-*.json") if not p.stem.endswith(BASELINE_SUFFIX))
        if not found:
            raise SvgeError(f"no results file in {folder} to resume; pass --results FILE")
        return found[-1]
    return folder / time.strftime("bo-%Y%m%d-%H%M%S.json")


def baseline_path(results: Path) -> Path:
    """Where the random-search baseline of the search in `results` keeps its results."""
    return results.with_name(results.stem + BASELINE_SUFFIX + results.suffix)


def query_of(record: dict[str, Any], strategy: str) -> dict[str, Any]:
    """A journal outcome as one query of the results file."""
    ok = record["type"] == FINISH
    q = {
        "arch": record["arch"],
        "hash": record["hash"],
        "score": record.get("score") if ok else None,
        "status": QUERIED if ok else FAILED,
        "round": record.get("round", 0),
        "strategy": strategy,
        "cell": record.get("cell"),
        "seconds": record.get("seconds"),
        "worker": record.get("worker"),
    }
    return q | {k: record[k] for k in CARRIED if k in record}


def save_results(path: Path, meta: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    """Write the results file atomically: kind, format version, the run's fields and its trials.

    Args:
        path: the results file, replaced whole (the old one survives a failed write).
        meta: the run's header (space, strategy, objective, settings, ...), written at top level.
        trials: one JSON-ready dict per trial (a `TrialRecord` as a dict), under ``trials``.
    """
    doc = {"kind": RESULTS_KIND, "format_version": RESULTS_VERSION, **meta, "trials": trials}
    write_text_lines(str(path), [json.dumps(doc, allow_nan=False)])


def check_fresh(results: Path, force: bool) -> None:
    """A new run never overwrites a results file (or its journal) unless told to."""
    journal = journal_path(results)
    if not force and (results.exists() or journal.exists()):
        raise SvgeError(f"{results} already exists: --resume to continue that search, --force to replace it")
    if force:
        journal.unlink(missing_ok=True)


def previous_records(results: Path, meta: dict[str, Any], resume: bool) -> list[dict[str, Any]] | None:
    """The records of the run to resume, checked to be the same search; nothing is written here.

    None for a fresh run.  A results file from before journals exists is read as the journal
    it would have written.

    Args:
        results: the results file of the run; its journal lies beside it.
        meta: this run's header, which the journal's start record (or the old results file) must
            match on the search and its settings (`check_same`).
        resume: whether the run continues an earlier one; False returns None without reading anything.

    Returns:
        The journal's records in order, starting with its start record, or None for a fresh run.

    Raises:
        SvgeError: when the earlier run was a different search, or its file cannot be read.
    """
    if not resume:
        return None
    path = journal_path(results)
    if path.exists():
        records = read_journal(path)
        check_same(records[0], meta, f"journal {path.name}")
        return records
    return _from_results(results, meta)


def open_journal(results: Path, meta: dict[str, Any], records: list[dict[str, Any]] | None) -> Journal:
    """The run's journal, opened for appending: new (with its start record), continued, or converted.

    Args:
        results: the results file of the run; the journal lies beside it.
        meta: this run's header, written into the start record of a new journal.
        records: what `previous_records` returned: None starts a new journal (one already there
            is an error); records without a journal file are written as its first records.

    Returns:
        The open journal (a context manager that closes it); a resumed one ends with a resume record.
    """
    path = journal_path(results)
    if records is None:
        journal = Journal(path, fresh=True)
        journal.append(START, kind=JOURNAL_KIND, format_version=JOURNAL_VERSION, **meta)
        return journal
    fresh = not path.exists()
    journal = Journal(path, fresh=fresh)
    if fresh:  # converting an old results file: its queries become the journal's first records
        for rec in records:
            journal.append(rec["type"], **{k: v for k, v in rec.items() if k not in ("type", "time")})
    journal.append(RESUME)
    return journal


def check_same(header: dict[str, Any], meta: dict[str, Any], what: str) -> None:
    """Refuse to resume a run whose search or settings differ from this one's.

    Args:
        header: the earlier run's header: its journal's start record or its old results file.
        meta: this run's header; its ``settings`` must be present.
        what: names the earlier run's file in the error message, e.g. ``journal bo-X.journal.jsonl``.

    Raises:
        SvgeError: naming the first field of `SAME_SEARCH` or `SAME_SETTINGS` that differs.
    """
    for key in SAME_SEARCH:
        if header.get(key) != meta.get(key):
            raise SvgeError(f"cannot resume: the {what} has {key} {header.get(key)!r}, this run {meta.get(key)!r}")
    theirs, ours = header.get("settings", {}), meta["settings"]
    for key in SAME_SETTINGS:
        if theirs.get(key) != ours.get(key):
            raise SvgeError(
                f"cannot resume: the {what} was made with --{key} {theirs.get(key)}, this run asks for {ours.get(key)}"
            )


def _from_results(results: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Journal records (start, then submit + outcome per query) from a results file without a journal."""
    doc = load_results(results)
    check_same(doc, meta, "results file")
    records = [{"type": START, "kind": JOURNAL_KIND, "format_version": JOURNAL_VERSION, **meta}]
    try:
        for t in doc["trials"]:
            for n, q in enumerate(t["queries"]):
                cell = {"trial": int(t["seed"]), "cell": n, "round": q["round"], "arch": q["arch"], "hash": q["hash"]}
                records.append({"type": SUBMIT, **cell, "attempt": 1})
                if q["score"] is None:
                    why = q.get("reason") or q.get("note") or "no score"
                    records.append({"type": FAIL, **cell, "reason": why, **_measured(q)})
                else:
                    records.append({"type": FINISH, **cell, "score": float(q["score"]), **_measured(q)})
    except (KeyError, TypeError, ValueError) as e:
        raise SvgeError(f"cannot resume: damaged results file ({e})") from None
    return records


def _measured(query: dict[str, Any]) -> dict[str, Any]:
    return {k: query[k] for k in ("seconds", "worker") if query.get(k) is not None}


def load_results(path: Path) -> dict[str, Any]:
    """A results file to resume from; one-line errors for a missing, foreign, older or newer file."""
    if not path.is_file():
        raise SvgeError(f"{path}: no such results file to resume")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise SvgeError(f"{path}: not a readable results file ({e})") from None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind == OLD_BO_KIND:
        raise SvgeError(
            f"{path}: results of the decode-based BO of an earlier svge, which kept no journal; this version "
            "cannot continue it: start a new search (the file is left as it is)"
        )
    if kind != RESULTS_KIND:
        raise SvgeError(f"{path}: not a results file of `svge bo`")
    if doc.get("format_version") != RESULTS_VERSION:
        raise SvgeError(f"{path}: results format {doc.get('format_version')}, this svge reads {RESULTS_VERSION}")
    return doc
