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

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svge_cli.arch import Arch
from svge_cli.errors import SvgeError
from svge_cli.search.cluster import ClusterOptions, Executor, InlineExecutor
from svge_cli.search.driver import Driver, Engine, TrialRun, restore
from svge_cli.search.evolution import EvolutionPool, EvolutionSpace
from svge_cli.search.journal import replay
from svge_cli.search.objectives import EvaluatorObjective, Objective
from svge_cli.search.pool import onehot_features, pool_latents, zscore
from svge_cli.search.records import check_fresh, open_journal, previous_records, query_of, save_results
from svge_cli.search.results import results_path
from svge_cli.search.setup import SearchOptions, choose_objective
from svge_cli.search.strategies import (
    DEFAULT_POOL,
    PoolBO,
    RandomPool,
    RandomSpace,
    Strategy,
)
from svge_cli.search.tasks import failed, run_cell
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage import checkpoints, datasets
from svge_cli.storage.store import Dataset
from svge_cli.storage.workspace import Workspace

STRATEGIES = ("pool", "latent", "random", "evolution")
FEATURES = ("latent", "onehot")
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
    """One seed's search as the results file shows it: every query in the order its result came."""

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
    """A prepared search: how to make the strategy, turn candidates into cells and evaluate them."""

    space: SearchSpace
    request: StrategyRequest
    meta: dict[str, Any]
    results: Path
    objective: Objective
    strategy_factory: Callable[[], Strategy]
    cell: Callable[[Any], Arch]  # candidate -> cell
    candidate: Callable[[Arch], Any]  # cell -> candidate (resume)
    records: list[dict[str, Any]] | None = None  # the journal of the run being resumed

    def make_strategy(self) -> Strategy:
        return self.strategy_factory()

    def describe(self, candidate: Any) -> tuple[str, str]:
        arch = self.cell(candidate)
        return self.space.format_native(arch), self.space.hash(arch)

    def candidate_of(self, native: str) -> Any:
        return self.candidate(self.space.parse_native(native))

    @property
    def remote(self) -> bool:
        """Whether cells can be evaluated on workers (an external evaluator), not only in the driver."""
        return isinstance(self.objective, EvaluatorObjective)

    def job(self, candidate: Any) -> tuple[Callable[[Any], dict[str, Any]], Any]:
        arch = self.cell(candidate)
        if self.remote:
            return run_cell, self.objective.task(self.space, arch)
        return self._here, arch

    def _here(self, arch: Arch) -> dict[str, Any]:
        """A table lookup, surrogate or proxy, in the driver."""
        began = time.perf_counter()
        o = self.objective.evaluate(self.space, [arch])[0]
        seconds = round(time.perf_counter() - began, 4)
        if o.score is None:
            return failed("objective", o.note or "no score") | {"seconds": seconds}
        return {"ok": True, "score": float(o.score), "seconds": seconds}


def prepare(ws: Workspace, req: StrategyRequest, note: Callable[[str], None]) -> Plan:
    """Space, objective, candidates (pool or whole space) and strategy, checked against a resumed file."""
    sp = get_space(req.space)
    results = results_path(ws, sp.name, req.options.results, req.options.resume)
    table = datasets.workspace_dataset(sp, ws)
    objective, target = choose_objective(sp, table, req.options, req.seed, note)
    meta = {
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

    cell, candidate = _candidates(sp, pool)
    meta |= {"settings": settings}
    records = previous_records(results, meta, req.options.resume)
    if records is None:
        check_fresh(results, req.options.force)
    return Plan(sp, req, meta, results, objective, make_strategy, cell, candidate, records)


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


@dataclass
class RunReport:
    """What a finished run tells beyond its queries: time, and how long proposals took."""

    trials: list[TrialRecord]
    wall_seconds: float
    proposal_seconds: list[float]
    workers: int


def run(
    plan: Plan,
    cluster: ClusterOptions,
    executor: Executor | None,
    retries: int,
    on_result: Callable[[TrialRecord, dict[str, Any], dict[str, Any]], None],
    note: Callable[[str], None],
) -> RunReport:
    """Every trial to its budget on `executor` (None: in the driver); the journal and results follow every result.

    The caller connects to the cluster (`cluster.connect`) before preparing the search, so a
    scheduler that cannot be reached is the only thing the user sees; it closes the executor too.
    """
    req, records = plan.request, plan.records
    here = cluster.inline or not plan.remote
    if here and not cluster.inline:
        note(f"note: {plan.meta['objective']} scores are computed in the driver; workers serve --evaluator programs")
    if here or executor is None:
        executor, here = InlineExecutor(), True
    slots = cluster.workers if cluster.workers > 1 else None
    engine = Engine(req.budget, req.batch, retries, sync=here, slots=slots)
    logs = replay(records or [])
    seeds = range(req.seed, req.seed + req.trials)
    trials = {s: restore(plan, s, logs.get(s)) for s in sorted(set(seeds) | set(logs))}

    def save() -> None:
        save_results(plan.results, plan.meta, [asdict(_record(plan, t)) for t in trials.values()])

    def after(trial: TrialRun, record: dict[str, Any]) -> None:
        save()
        on_result(_record(plan, trial), record, driver.counts())

    began = time.perf_counter()
    with open_journal(plan.results, plan.meta, records) as journal:
        driver = Driver(plan, engine, executor, journal, after)
        save()
        driver.run([trials[s] for s in seeds])
        workers = executor.workers()
    return RunReport(
        [_record(plan, trials[s]) for s in sorted(trials)],
        time.perf_counter() - began,
        driver.proposal_seconds,
        workers,
    )


def _record(plan: Plan, trial: TrialRun) -> TrialRecord:
    queries = [query_of(r, plan.request.strategy) for r in trial.outcomes]
    return TrialRecord(trial.seed, queries, len(queries) >= plan.request.budget)


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


def run_facts(report: RunReport, seeds: range) -> dict[str, Any]:
    """Wall time, worker-seconds, cost per cell, failures by reason and proposal time of a run."""
    queries = [q for t in report.trials if t.seed in seeds for q in t.queries]
    seconds = [q["seconds"] for q in queries if q.get("seconds") is not None]
    reasons: dict[str, int] = {}
    for q in queries:
        if q["status"] == "failed":
            why = q.get("reason") or "no score"
            reasons[why] = reasons.get(why, 0) + 1
    props = report.proposal_seconds
    return {
        "wall_seconds": round(report.wall_seconds, 3),
        "worker_seconds": round(float(np.sum(seconds)), 3) if seconds else 0.0,
        "cost_per_cell": round(float(np.mean(seconds)), 4) if seconds else None,
        "workers": report.workers,
        "proposals": {
            "count": len(props),
            "median_seconds": round(float(np.median(props)), 4) if props else None,
            "max_seconds": round(float(np.max(props)), 4) if props else None,
        },
        "failures": {"count": sum(reasons.values()), "reasons": reasons},
    }
