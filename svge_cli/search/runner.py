"""`svge bo`: a search of a query budget by one strategy, journaled, saved and resumable.

Every strategy runs on the same driver (`driver`): pool search ranks every cell of an
enumerable space by a GP on their latent means (cached per checkpoint); latent is the
paper's BO, decoding q-EI points of the latent space (`latent`); random search and
regularised evolution are the baselines a researcher compares against, on the same objective.

The results file lists every query of every trial in the order its result came, with its
round, score and status; it is rewritten after each result, and ``--resume`` rebuilds the
search from the journal beside it (finished cells kept, in-flight ones sent again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from svge_cli.arch import Arch
from svge_cli.artifacts import Dataset
from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.model import checkpoints
from svge_cli.search import catalog  # noqa: F401  (every strategy registers itself)
from svge_cli.search.cluster import ClusterOptions, Executor, InlineExecutor
from svge_cli.search.driver import Driver, Engine, TrialRun, exhausted, restore
from svge_cli.search.journal import replay
from svge_cli.search.latent import DEFAULT_INIT, LatentSettings
from svge_cli.search.objectives import EvaluatorObjective, Objective
from svge_cli.search.options import SearchOptions, choose_objective
from svge_cli.search.pool_bo import LATENT
from svge_cli.search.records import (
    baseline_path,
    check_fresh,
    open_journal,
    previous_records,
    query_of,
    results_path,
    save_results,
)
from svge_cli.search.registry import SearchContext, entry
from svge_cli.search.strategies import DEFAULT_BATCH, Strategy
from svge_cli.search.tasks import failed, run_cell
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage import datasets

DEFAULT_BUDGET = 150


def default_strategy(space: SearchSpace) -> str:
    """Pool search where the space can be listed (measured best, docs/search.md), else the paper's BO."""
    return "pool" if space.enumerable else "latent"


@dataclass(frozen=True)
class StrategyRequest:
    """What the user asked `svge bo` for; `budget` None: the latent BO's init + iters x batch."""

    space: str
    strategy: str
    budget: int | None = DEFAULT_BUDGET
    batch: int = DEFAULT_BATCH
    init: int | None = None
    seed: int = 0
    trials: int = 1
    features: str = LATENT
    options: SearchOptions = SearchOptions()
    latent: LatentSettings = LatentSettings()  # --strategy latent only (its init: `init`)


@dataclass
class TrialRecord:
    """One seed's search as the results file shows it: every query in the order its result came."""

    seed: int
    queries: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    rounds: list[dict[str, Any]] | None = None  # the latent BO's rounds (points, duplicates, GP quality)

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
    strategy_factory: Callable[[int], Strategy]  # trial seed -> strategy
    cell: Callable[[Any], Arch]  # candidate -> cell
    candidate: Callable[[Arch], Any]  # cell -> candidate (resume)
    records: list[dict[str, Any]] | None = None  # the journal of the run being resumed

    @property
    def budget(self) -> int:
        assert self.request.budget is not None  # `prepare` settles it
        return self.request.budget

    def make_strategy(self, seed: int) -> Strategy:
        return self.strategy_factory(seed)

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


def prepare(ui: Ui, req: StrategyRequest) -> Plan:
    """Space, objective, candidates (pool or whole space) and strategy, checked against a resumed file.

    Everything a resumed run is checked against is settled first, so a mismatch is reported
    before anything is encoded.
    """
    ws, note = ui.workspace, ui.note
    sp = get_space(req.space)
    results = results_path(ws, sp.name, req.options.results, req.options.resume)
    table = datasets.workspace_dataset(sp, ws)
    objective, target = choose_objective(sp, table, req.options, req.seed, note)
    meta: dict[str, Any] = {
        "space": sp.name,
        "strategy": req.strategy,
        "objective": objective.name,
        "objective_description": objective.description,
        "target": target,
        "evaluator": req.options.evaluator,
        "features": req.features if req.strategy == "pool" else None,
    }
    pool = datasets.enumeration(sp, ws) if sp.enumerable else None
    strategy = entry(req.strategy)
    if strategy.needs_pool and pool is None:
        raise SvgeError(f"--strategy {req.strategy} needs a space that can be listed; {sp.name} cannot: use latent")
    source = None
    if req.strategy == "latent" or (req.strategy == "pool" and req.features != "onehot"):
        source = checkpoints.resolve(ws, sp.name, req.options.checkpoint, note)
        meta["checkpoint_fingerprint"] = source[0].fingerprint()
    if req.strategy == "latent":
        req = _settle_latent(req, objective)
        meta |= {"checkpoint": str(source[1]), "surrogate": objective.name == "surrogate"}
    assert req.budget is not None
    if pool is not None and req.budget > len(pool):
        what = f"--budget {req.budget:,}" if req.strategy != "latent" else f"a budget of {req.budget:,} queries"
        raise SvgeError(f"{what} is more than the {len(pool):,} cells of {sp.name}")
    meta["settings"] = {"budget": req.budget, "batch": req.batch, "init": req.init, "seed": req.seed}
    if req.strategy == "latent":
        meta["settings"] |= {k: v for k, v in asdict(req.latent).items() if k not in ("init", "batch")}
    records = previous_records(results, meta, req.options.resume)
    if records is None:
        check_fresh(results, req.options.force)
    context = SearchContext(ui, sp, table, target, objective, pool, source)
    cell, candidate = _candidates(sp, None if req.strategy == "latent" else pool)
    return Plan(sp, req, meta, results, objective, strategy.build(context, req), cell, candidate, records)


def baseline_request(plan: Plan) -> StrategyRequest:
    """Random search on the same objective and budget as `plan`, its results beside the search's own."""
    path = baseline_path(plan.results)
    opts = plan.request.options
    options = replace(opts, results=str(path), resume=opts.resume and path.exists())
    return replace(plan.request, strategy="random", options=options, latent=LatentSettings())


def _settle_latent(req: StrategyRequest, objective: Objective) -> StrategyRequest:
    """The paper's BO: initial cells (none queried with a surrogate, D-VAE) and budget init + iters x batch."""
    labelled = objective.name == "surrogate"  # the table's training cells are the initial data
    init = req.init if (req.init is not None or labelled) else DEFAULT_INIT
    settings = replace(req.latent, init=init, batch=req.batch)
    queried_first = 0 if labelled else init
    budget = req.budget
    if budget is None:
        budget = queried_first + (settings.iters or 0) * settings.batch
    elif budget <= queried_first:
        raise SvgeError(f"--budget {budget} leaves no queries after the {queried_first} initial cells")
    return replace(req, budget=budget, init=init, latent=settings)


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
    on_round: Callable[[int, dict[str, Any]], None] = lambda seed, note: None,
) -> RunReport:
    """Every trial to its budget on `executor` (None: in the driver); the journal and results follow every result.

    The caller connects to the cluster (`cluster.connect`) before preparing the search, so a
    scheduler that cannot be reached is the only thing the user sees; it closes the executor too.

    Args:
        plan: the prepared search (`prepare`), with the journal records of a resumed run if any.
        cluster: the user's worker options; inline (one worker, no GPUs or scheduler) runs batch by
            batch in the driver, and more than one worker sets how many cells are in flight.
        executor: the connected executor; None, or ignored when `cluster` is inline or the objective
            is not an external evaluator: cells then run in the driver.
        retries: how many times a cell whose worker was lost is sent again before it counts as failed.
        on_result: called after every result with the trial's record so far, the journal record
            of the outcome, and the progress counts (in flight, finished, failed, best, workers).
        note: shows the user a one-line message.
        on_round: called with the trial's seed and a round note the latent BO journaled.

    Returns:
        Every trial's record (those of the journal outside this run's seeds too), the wall seconds,
        the seconds each proposal took, and the number of workers at the end.
    """
    req, records = plan.request, plan.records
    here = cluster.inline or not plan.remote
    if here and not cluster.inline:
        note(f"note: {plan.meta['objective']} scores are computed in the driver; workers serve --evaluator programs")
    if here or executor is None:
        executor, here = InlineExecutor(), True
    slots = cluster.workers if cluster.workers > 1 else None
    engine = Engine(plan.budget, req.batch, retries, sync=here, slots=slots)
    logs = replay(records or [])
    seeds = range(req.seed, req.seed + req.trials)
    trials = {s: restore(plan, s, logs.get(s)) for s in sorted(set(seeds) | set(logs))}

    def save() -> None:
        save_results(plan.results, plan.meta, [asdict(_record(plan, t)) for t in trials.values()])

    def after(trial: TrialRun, record: dict[str, Any]) -> None:
        save()
        on_result(_record(plan, trial), record, driver.counts())

    def noted(trial: TrialRun, note: dict[str, Any]) -> None:
        save()  # a latent BO round that decoded to no new cell changes the file without a result
        on_round(trial.seed, note)

    began = time.perf_counter()
    with open_journal(plan.results, plan.meta, records) as journal:
        driver = Driver(plan, engine, executor, journal, after, noted)
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
    complete = not trial.pending and (trial.submitted() >= plan.budget or exhausted(trial))
    report = getattr(trial.strategy, "report", None)
    return TrialRecord(trial.seed, queries, complete, report() if report is not None else None)


def summarize(trials: list[TrialRecord], seeds: range, budget: int) -> dict[str, Any]:
    """Mean and std of the best score so far at each query count, and each trial's best cell.

    Args:
        trials: the run's trial records; those whose seed is not in `seeds` are left out.
        seeds: the trials to summarise.
        budget: queries per trial: the last query count reported, and the length of every curve
            (a finished trial that spent fewer keeps its final best, an unfinished one is unknown).

    Returns:
        ``at_queries``: per query count (10, 25, 50, ... below `budget`, then `budget`) the mean and
        std of the best score over trials, None where no trial has one yet; ``trials``: each
        trial's seed, query count, best query and latent BO rounds if any; ``best``: the best query
        of all, or None.
    """
    chosen = [t for t in trials if t.seed in seeds]
    curves = np.asarray([_curve(t, budget) for t in chosen], dtype=np.float64)
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
        "trials": [
            {"seed": t.seed, "queries": len(t.queries), "best": t.best()} | ({"rounds": t.rounds} if t.rounds else {})
            for t in chosen
        ],
        "best": overall,
    }


def _curve(trial: TrialRecord, budget: int) -> list[float]:
    """Best score after each of `budget` queries; a finished trial that spent fewer (the latent BO's
    duplicates are not queries) keeps its final best, an unfinished one is unknown (NaN) past its end."""
    curve = [np.nan if b is None else b for b in trial.best_so_far()]
    last = curve[-1] if (curve and trial.complete) else np.nan
    return curve + [last] * (budget - len(curve))


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
