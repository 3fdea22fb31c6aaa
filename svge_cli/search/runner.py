"""`svge bo --strategy pool|random|evolution`: a search of a fixed query budget, saved and resumable.

Pool search encodes every cell of an enumerable space once per checkpoint (cached in
the workspace) and ranks the unqueried cells themselves; random search and regularised
evolution are the baselines a researcher compares against, on the same objective.  The
decode-based BO of the paper (`--strategy latent`) lives in `setup` and `loop`.

The results file lists every query of every trial in order, with its round, score and
strategy; it is rewritten after each round, so Ctrl-C keeps the finished rounds and
``--resume`` replays them into the search's history and goes on exactly where it stopped
(the strategies read only the history, and each round's RNG is seeded by the history's length).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svge_cli.arch import Arch
from svge_cli.errors import SvgeError
from svge_cli.search.evolution import EvolutionPool, EvolutionSpace
from svge_cli.search.objectives import Objective
from svge_cli.search.pool import onehot_features, pool_latents, zscore
from svge_cli.search.results import load_results, results_path
from svge_cli.search.setup import SearchOptions, choose_objective
from svge_cli.search.strategies import (
    DEFAULT_POOL,
    History,
    PoolBO,
    RandomPool,
    RandomSpace,
    Round,
    Strategy,
    run_search,
)
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage import checkpoints, datasets
from svge_cli.storage.store import Dataset, write_text_lines
from svge_cli.storage.workspace import Workspace

STRATEGIES = ("pool", "latent", "random", "evolution")
FEATURES = ("latent", "onehot")
RESULTS_KIND = "svge-search-results"
RESULTS_VERSION = 1
DEFAULT_BUDGET = 150
DEFAULT_BATCH = 5


def default_strategy(space: SearchSpace) -> str:
    """Pool search where the space can be listed (measured best, docs/search.md), else the paper's BO."""
    return "pool" if space.enumerable else "latent"


@dataclass(frozen=True)
class StrategyRequest:
    """What the user asked `svge bo --strategy pool|random|evolution` for."""

    space: str
    strategy: str
    budget: int = DEFAULT_BUDGET
    batch: int = DEFAULT_BATCH
    init: int | None = None
    seed: int = 0
    trials: int = 1
    features: str = "latent"
    options: SearchOptions = SearchOptions()


@dataclass
class TrialRecord:
    """One seed's search: every query in order (native text, hash, score or None, round)."""

    seed: int
    queries: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False

    def best(self) -> dict[str, Any] | None:
        scored = [q for q in self.queries if q["score"] is not None]
        return max(scored, key=lambda q: q["score"]) if scored else None

    def best_so_far(self) -> list[float | None]:
        out, best = [], None
        for q in self.queries:
            if q["score"] is not None and (best is None or q["score"] > best):
                best = q["score"]
            out.append(best)
        return out


@dataclass
class Plan:
    """A prepared search: how to make the strategy, score cells, and turn candidates into cells."""

    space: SearchSpace
    request: StrategyRequest
    meta: dict[str, Any]
    results: Path
    trials: list[TrialRecord]
    make_strategy: Callable[[], Strategy]
    cell: Callable[[Any], Arch]  # candidate -> cell
    candidate: Callable[[Arch], Any]  # cell -> candidate (resume)
    score: Callable[[list[Any]], list[float]]


def prepare(ws: Workspace, req: StrategyRequest, note: Callable[[str], None]) -> Plan:
    """Space, objective, candidates (pool or whole space) and strategy, checked against a resumed file."""
    sp = get_space(req.space)
    results = results_path(ws, sp.name, req.options.results, req.options.resume)
    table = datasets.workspace_dataset(sp, ws)
    objective, target = choose_objective(sp, table, req.options, req.seed, note)
    meta = {
        "kind": RESULTS_KIND,
        "format_version": RESULTS_VERSION,
        "space": sp.name,
        "strategy": req.strategy,
        "objective": objective.name,
        "objective_description": objective.description,
        "target": target,
        "evaluator": req.options.evaluator,
        "features": req.features if req.strategy == "pool" else None,
    }
    settings = {"budget": req.budget, "batch": req.batch, "init": req.init, "seed": req.seed}
    pool = datasets.enumeration(sp, ws) if sp.enumerable else None
    if pool is not None and req.budget > len(pool):
        raise SvgeError(f"--budget {req.budget:,} is more than the {len(pool):,} cells of {sp.name}")
    if req.strategy == "pool":
        if pool is None:
            raise SvgeError(f"--strategy pool needs a space that can be listed; {sp.name} cannot: use latent")
        features, fingerprint = _features(ws, sp, req, pool, note)
        meta["checkpoint_fingerprint"] = fingerprint

        def make_strategy() -> Strategy:
            return PoolBO(features, **(DEFAULT_POOL | ({"init": req.init} if req.init else {})), seed=req.seed)

    elif req.strategy == "random":

        def make_strategy() -> Strategy:
            return RandomPool(len(pool)) if pool is not None else RandomSpace(sp)

    else:

        def make_strategy() -> Strategy:
            if pool is not None:
                return EvolutionPool(sp, pool, pool.hashes)
            return EvolutionSpace(sp)

    trials = _resumed(results, meta, settings) if req.options.resume else []
    cell, candidate = _candidates(sp, pool)
    return Plan(
        sp,
        req,
        meta | {"settings": settings},
        results,
        trials,
        make_strategy,
        cell,
        candidate,
        _scorer(sp, objective, cell),
    )


def _features(
    ws: Workspace, sp: SearchSpace, req: StrategyRequest, pool: Dataset, note: Callable[[str], None]
) -> tuple[np.ndarray, str | None]:
    """Z-scored latent means of every pool cell (cached per checkpoint), or one-hot cells."""
    if req.features == "onehot":
        return onehot_features(pool, sp.vocab_size).astype(np.float64), None
    ck, ck_path = checkpoints.resolve(ws, sp.name, req.options.checkpoint, note)
    began = time.perf_counter()
    lat, cached = pool_latents(ws, ck, pool, device=checkpoints.pick_device(req.options.device))
    if not cached:
        note(
            f"encoded all {len(pool):,} {sp.name} cells with {ck_path.name} in {time.perf_counter() - began:.1f} s "
            "(cached in the workspace for this checkpoint)"
        )
    return zscore(lat.mu), ck.fingerprint()


def _candidates(sp: SearchSpace, pool: Dataset | None) -> tuple[Callable[[Any], Arch], Callable[[Arch], Any]]:
    """Candidate <-> cell: pool row indices for enumerable spaces, the cells themselves otherwise."""
    if pool is None:
        return (lambda a: a), (lambda a: sp.canonical(a))
    rows = {str(h): i for i, h in enumerate(pool.hashes)}

    def candidate(arch: Arch) -> int:
        row = rows.get(sp.hash(sp.canonical(arch)))
        if row is None:
            raise SvgeError(f"cannot resume: a queried cell is not a {sp.name} cell")
        return row

    return pool.arch, candidate


def _scorer(sp: SearchSpace, objective: Objective, cell: Callable[[Any], Arch]) -> Callable[[list[Any]], list[float]]:
    def score(candidates: list[Any]) -> list[float]:
        outcomes = objective.evaluate(sp, [cell(c) for c in candidates])
        return [math.nan if o.score is None else float(o.score) for o in outcomes]

    return score


def run(plan: Plan, on_round: Callable[[TrialRecord, Round], None]) -> list[TrialRecord]:
    """Every trial to its budget; the results file is rewritten after each round."""
    req, sp = plan.request, plan.space
    done = {t.seed: t for t in plan.trials}
    for seed in range(req.seed, req.seed + req.trials):
        record = done.setdefault(seed, TrialRecord(seed))
        if record.complete:
            continue
        strategy = plan.make_strategy()
        history = _history(plan, record, strategy)
        for rnd in run_search(strategy, plan.score, req.budget, req.batch, seed, history):
            number = _last_round(record) + 1
            for c, s in zip(rnd.candidates, rnd.scores):
                arch = plan.cell(c)
                record.queries.append(
                    {
                        "arch": sp.format_native(arch),
                        "hash": sp.hash(arch),
                        "score": None if math.isnan(s) else s,
                        "round": number,
                        "strategy": req.strategy,
                    }
                )
            record.complete = len(record.queries) >= req.budget
            _save(plan, done)
            on_round(record, rnd)
        if not record.complete:  # a resumed trial that was already at its budget
            record.complete = True
            _save(plan, done)
    return [done[s] for s in sorted(done)]


def _last_round(record: TrialRecord) -> int:
    return record.queries[-1]["round"] if record.queries else 0


def _history(plan: Plan, record: TrialRecord, strategy: Strategy) -> History:
    """The saved queries as the strategy's history, so the search continues where it stopped."""
    history = History()
    for q in record.queries:
        c = plan.candidate(plan.space.parse_native(q["arch"]))
        history.add(c, strategy.key(c), math.nan if q["score"] is None else q["score"])
    return history


def _save(plan: Plan, trials: dict[int, TrialRecord]) -> None:
    doc = plan.meta | {"trials": [asdict(trials[s]) for s in sorted(trials)]}
    write_text_lines(str(plan.results), [json.dumps(doc, allow_nan=False)])


def _resumed(path: Path, meta: dict[str, Any], settings: dict[str, Any]) -> list[TrialRecord]:
    """The trials of a results file made by the same search (more trials may be asked for)."""
    doc = load_results(
        path, RESULTS_KIND, RESULTS_VERSION, "a results file of `svge bo --strategy pool|random|evolution`"
    )
    for key in ("space", "strategy", "objective", "target", "evaluator", "features"):
        if doc.get(key) != meta[key]:
            raise SvgeError(f"cannot resume: the results file has {key} {doc.get(key)!r}, this run {meta[key]!r}")
    theirs = doc.get("settings", {})
    for key in ("budget", "batch", "init"):
        if theirs.get(key) != settings[key]:
            raise SvgeError(
                f"cannot resume: the results file was made with --{key} {theirs.get(key)}, "
                f"this run asks for {settings[key]}"
            )
    try:
        return [TrialRecord(int(t["seed"]), list(t["queries"]), bool(t["complete"])) for t in doc["trials"]]
    except (KeyError, TypeError, ValueError) as e:
        raise SvgeError(f"cannot resume: damaged results file ({e})") from None


def summarize(trials: list[TrialRecord], seeds: range, budget: int) -> dict[str, Any]:
    """Mean and std of the best score so far at each query count, and each trial's best cell."""
    chosen = [t for t in trials if t.seed in seeds]
    curves = np.asarray(
        [[np.nan if b is None else b for b in t.best_so_far()] + [np.nan] * (budget - len(t.queries)) for t in chosen],
        dtype=np.float64,
    )
    marks = sorted({q for q in (10, 25, 50, 100, 150, 200, 300, 500, 1000) if q < budget} | {budget})
    at = [
        {
            "queries": q,
            "best_mean": _nanstat(np.nanmean, curves[:, q - 1]),
            "best_std": _nanstat(np.nanstd, curves[:, q - 1]),
        }
        for q in marks
    ]
    best = [t.best() for t in chosen]
    overall = max((b for b in best if b is not None), key=lambda q: q["score"], default=None)
    return {
        "at_queries": at,
        "trials": [{"seed": t.seed, "queries": len(t.queries), "best": t.best()} for t in chosen],
        "best": overall,
    }


def _nanstat(fn: Callable[[np.ndarray], float], values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(fn(finite)) if len(finite) else None
