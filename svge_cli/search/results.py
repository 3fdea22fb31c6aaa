"""The results file of a search, and its summary.

The file is JSON (layout in docs/bo.md): the run's settings, and per trial every
query with its latent point, cell (native text), score, status and round.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from svge_cli.errors import SvgeError
from svge_cli.search.loop import BO, RANDOM, Settings, Trial
from svge_cli.storage.store import write_text_lines
from svge_cli.storage.workspace import Workspace

RESULTS_KIND = "svge-bo-results"
RESULTS_VERSION = 1


def results_path(ws: Workspace, space: str, results: str | None, resume: bool) -> Path:
    """The file a search writes: the one given, the newest to resume, else a new time-stamped one."""
    if results:
        return Path(results)
    folder = ws.space_dir(space) / "bo"
    if resume:
        found = sorted(folder.glob("bo-*.json"))
        if not found:
            raise SvgeError(f"no results file in {folder} to resume; pass --results FILE")
        return found[-1]
    return folder / time.strftime("bo-%Y%m%d-%H%M%S.json")


def document(meta: dict[str, Any], settings: Settings, trials: list[Trial]) -> dict[str, Any]:
    return {
        "kind": RESULTS_KIND,
        "format_version": RESULTS_VERSION,
        **meta,
        "settings": asdict(settings),
        "trials": [t.to_dict() for t in trials],
    }


def save_results(path: Path, doc: dict[str, Any]) -> None:
    """Write the results atomically: a reader never sees half a file, an old file survives a failure."""
    write_text_lines(str(path), [json.dumps(doc, allow_nan=False)])


def load_results(
    path: Path, kind: str = RESULTS_KIND, version: int = RESULTS_VERSION, what: str = "an svge bo results file"
) -> dict[str, Any]:
    """A results file of `kind` to resume from; one-line errors for a missing, foreign or newer file."""
    if not path.is_file():
        raise SvgeError(f"{path}: no such results file to resume")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SvgeError(f"{path}: not a readable results file ({e})") from None
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise SvgeError(f"{path}: not {what}")
    if doc.get("format_version") != version:
        raise SvgeError(f"{path}: results format {doc.get('format_version')}, this svge reads {version}")
    return doc


def resumable(doc: dict[str, Any], meta: dict[str, Any], settings: Settings) -> list[Trial]:
    """The trials of a results file, after checking it was made by the same search.

    More rounds or trials than before may be asked for: finished rounds are kept
    and the search goes on from the last of them.
    """
    for key in ("space", "checkpoint_fingerprint", "objective", "target", "evaluator"):
        if doc.get(key) != meta[key]:
            raise SvgeError(f"cannot resume: the results file has {key} {doc.get(key)!r}, this run {meta[key]!r}")
    theirs = dict(doc.get("settings", {}))
    ours = asdict(settings)
    for key in ours:
        if key not in ("iters", "trials") and theirs.get(key) != ours[key]:
            raise SvgeError(
                f"cannot resume: the results file was made with {key}={theirs.get(key)!r}, "
                f"this run asks for {ours[key]!r}"
            )
    try:
        return [Trial.from_dict(t) for t in doc["trials"]]
    except (KeyError, TypeError) as e:
        raise SvgeError(f"cannot resume: damaged results file ({e})") from None


def summarize(trials: list[Trial], seeds: range) -> dict[str, Any]:
    """Per-round bests (mean and std over the trials of `seeds`), the best cell found, each trial's outcome."""
    out: dict[str, Any] = {}
    for method in (BO, RANDOM):
        chosen = [t for t in trials if t.method == method and t.seed in seeds]
        if not chosen:
            continue
        rounds = []
        for r in range(min(len(t.rounds) for t in chosen)):
            stats = [t.rounds[r] for t in chosen if len(t.rounds) > r]
            bests = [s.best for s in stats if s.best is not None]
            rounds.append(
                {
                    "round": r,
                    "trials": len(stats),
                    "queries": float(np.mean([s.queries for s in stats])),
                    "best_mean": float(np.mean(bests)) if bests else None,
                    "best_std": float(np.std(bests)) if bests else None,
                    "distinct": float(np.mean([s.distinct for s in stats])),
                }
            )
        per_trial = []
        for t in chosen:
            b = t.best()
            per_trial.append(
                {
                    "seed": t.seed,
                    "complete": t.complete,
                    "queries": len(t.spent()),
                    "distinct": len({q.hash for q in t.spent()}),
                    "best_score": None if b is None else b.score,
                    "best_arch": None if b is None else b.arch,
                    "best_round": None if b is None else b.round,
                }
            )
        overall = max((t.best() for t in chosen if t.best() is not None), key=lambda q: q.score, default=None)
        gp = [t.rounds[1].gp for t in chosen if len(t.rounds) > 1 and t.rounds[1].gp]
        out[method] = {
            "rounds": rounds,
            "trials": per_trial,
            "best": None if overall is None else {"arch": overall.arch, "score": overall.score, "round": overall.round},
            "gp_round1": _mean_dicts(gp) if gp else None,
        }
    return out


def _mean_dicts(items: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([d[k] for d in items])) for k in items[0]}
