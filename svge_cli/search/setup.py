"""`svge bo` from the workspace to a finished search: problem, trials, results file, summary.

The results file (`results`) is rewritten atomically after every round, so
Ctrl-C keeps every completed round, and ``svge bo --resume --results FILE``
continues from there (the same seeds give the same remaining rounds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from svge_cli.arch import Arch
from svge_cli.errors import SvgeError
from svge_cli.model import SVGe, codec
from svge_cli.model.scaling import Scaler
from svge_cli.search.loop import (
    BO,
    RANDOM,
    Pool,
    Problem,
    RoundStats,
    Settings,
    Trial,
    query_budget,
    run_bo_trial,
    run_random_trial,
)
from svge_cli.search.objectives import (
    DEFAULT_PROXY,
    PROXY_PREFIX,
    BenchmarkObjective,
    EvaluatorObjective,
    Objective,
    ProxyObjective,
    SurrogateObjective,
    covers_space,
    default_target,
    target_column,
)
from svge_cli.search.records import check_fresh
from svge_cli.search.results import document, load_results, results_path, resumable, save_results
from svge_cli.spaces import SearchSpace, get_space
from svge_cli.storage import checkpoints, datasets, store
from svge_cli.storage.store import Dataset
from svge_cli.storage.workspace import Workspace
from svge_cli.training.vae import held_out_split

#: at most this many cells are encoded for the latent box, the start pool and the test split
POOL_CELLS = 20_000
DEFAULT_INIT = 100
OBJECTIVES = ("benchmark", "surrogate", "proxy:NAME")


@dataclass(frozen=True)
class SearchOptions:
    """What every `svge bo` strategy is asked alike: the model, the objective, the results file."""

    checkpoint: str | None = None
    objective: str | None = None  # benchmark | surrogate | proxy:NAME; None: benchmark when the table covers the space
    evaluator: str | None = None
    evaluator_timeout: float | None = None
    target: str | None = None
    device: str = "auto"
    results: str | None = None
    resume: bool = False
    force: bool = False  # replace an existing results file (and its journal)


@dataclass(frozen=True)
class Request:
    """What the user asked the paper's decode-based `svge bo` (`--strategy latent`) for."""

    space: str | None
    settings: Settings
    options: SearchOptions = SearchOptions()


@dataclass
class Search:
    """A prepared search: the problem, what the results file says about it, and where it goes."""

    problem: Problem
    settings: Settings
    meta: dict[str, Any]
    results: Path
    trials: list[Trial]


# ---------------------------------------------------------------- problem


def prepare(ws: Workspace, req: Request, note: Callable[[str], None]) -> Search:
    """Resolve space, checkpoint, table and objective, and encode the cells the search needs."""
    space_name = req.space or ws.latest_space()
    if space_name is None:
        raise SvgeError("no space given and no checkpoint in the workspace: pass --space")
    sp = get_space(space_name)
    opts = req.options
    results = results_path(ws, sp.name, opts.results, opts.resume)
    previous = load_results(results) if opts.resume else None
    if previous is None:
        check_fresh(results, opts.force)
    ck, ck_path, model = checkpoints.load_model(ws, sp.name, opts.checkpoint, opts.device, note)
    table = datasets.workspace_dataset(sp, ws)
    objective, target = choose_objective(sp, table, opts, req.settings.seed, note)
    labelled_start = objective.name == "surrogate"
    settings = req.settings
    if settings.init is None and not labelled_start:
        settings = replace(settings, init=DEFAULT_INIT)
    meta = {
        "space": sp.name,
        "checkpoint": str(ck_path),
        "checkpoint_fingerprint": ck.fingerprint(),
        "objective": objective.name,
        "objective_description": objective.description,
        "surrogate": labelled_start,
        "target": target,
        "evaluator": opts.evaluator,
    }
    trials = resumable(previous, meta, settings) if previous is not None else []
    problem = _problem(ws, sp, ck, model, table, target, objective, settings, note)
    return Search(problem, settings, meta, results, trials)


def _problem(
    ws: Workspace,
    sp: SearchSpace,
    ck: store.Checkpoint,
    model: SVGe,
    table: Dataset | None,
    target: str | None,
    objective: Objective,
    settings: Settings,
    note: Callable[[str], None],
) -> Problem:
    """Encode the training cells (latent box, start pool) and the labelled test cells."""
    if table is not None and table.split is None:
        table.split = datasets.random_split(len(table), datasets.DEFAULT_SPLIT_SEED)
    reference, train_rows = _training_cells(ws, sp, ck, table)
    rng = np.random.default_rng(settings.seed)
    start_rows = _cap(train_rows, rng)
    labels = target_column(table, target) if (table is not None and target is not None) else None
    available = int(np.isfinite(labels[start_rows]).sum()) if objective.name == "surrogate" else len(start_rows)
    if settings.init is not None and settings.init > available:
        raise SvgeError(f"--init {settings.init} asks for more cells than the {available:,} training cells")
    note(f"encoding {len(start_rows):,} training cells for the latent box ...")
    start = _pool(model, reference, start_rows, labels)
    test = None
    if labels is not None and objective.name != "evaluator":
        test_rows = _cap(np.nonzero((table.split == store.SPLIT_TEST) & np.isfinite(labels))[0], rng)
        test = _pool(model, table, test_rows, labels) if len(test_rows) > 1 else None
    return Problem(
        sp,
        model,
        objective,
        start.latents.min(axis=0),
        start.latents.max(axis=0),
        Scaler.fit(start.latents, axis=0),
        start,
        labelled_start=objective.name == "surrogate",
        random_cells=_random_cells(ws, sp, table, target, objective),
        test=test,
    )


def choose_objective(
    sp: SearchSpace, table: Dataset | None, opts: SearchOptions, seed: int, note: Callable[[str], None]
) -> tuple[Objective, str | None]:
    """The objective asked for, or the default: benchmark when the table covers the space, else surrogate.

    With neither a table nor an
    evaluator, a zero-cost proxy stands in (`DEFAULT_PROXY`), and the objective says so.
    """
    if opts.objective is not None and opts.objective.startswith(PROXY_PREFIX):
        if opts.evaluator is not None:
            raise SvgeError("--evaluator is an objective of its own: drop --objective")
        proxy = ProxyObjective(opts.objective.removeprefix(PROXY_PREFIX), seed)
        return proxy, opts.objective
    if opts.evaluator is not None:
        if opts.objective is not None:
            raise SvgeError("--evaluator is an objective of its own: drop --objective")
        if opts.target is not None and (table is None or opts.target not in table.labels):
            columns = ", ".join(table.labels) if table is not None else f"no {sp.name} table imported"
            raise SvgeError(
                f"--target {opts.target!r} is not a column of the benchmark table ({columns}); "
                "with --evaluator the score is the evaluator's answer: drop --target"
            )
        return EvaluatorObjective(opts.evaluator, opts.evaluator_timeout), opts.target
    if table is None:
        if opts.objective is not None:
            raise SvgeError(
                f"--objective {opts.objective} needs a labelled {sp.name} dataset in the workspace: import a "
                f"benchmark table (`svge data import {sp.name} FILE`), or score cells with --evaluator CMD"
            )
        note(
            f"note: no {sp.name} benchmark table imported and no --evaluator: scoring cells with the zero-cost "
            f"proxy {DEFAULT_PROXY} (import a table or pass --evaluator CMD for accuracies)"
        )
        return ProxyObjective(DEFAULT_PROXY, seed), PROXY_PREFIX + DEFAULT_PROXY
    target = opts.target or default_target(sp, table)
    complete = covers_space(sp, table, target)
    name = opts.objective or ("benchmark" if complete else "surrogate")
    if name == "benchmark":
        if not complete:
            note(
                f"note: the table does not label every {sp.name} cell; cells missing from it are reported "
                "and get no score"
            )
        return BenchmarkObjective(table, target), target
    note(f"objective: SURROGATE predictions of {target!r} (the {sp.name} table is a sample of the space)")
    return SurrogateObjective(table, target, sp.vocab_size, seed), target


def _training_cells(
    ws: Workspace, sp: SearchSpace, ck: store.Checkpoint, table: Dataset | None
) -> tuple[Dataset, np.ndarray]:
    """The training cells: the table's train split, or without a table the checkpoint's own training rows."""
    if table is not None:
        return table, np.nonzero(table.split == store.SPLIT_TRAIN)[0]
    ds, train_rows, _ = held_out_split(ws, sp, ck, None)
    return ds, train_rows


def _cap(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(rows, size=POOL_CELLS, replace=False)) if len(rows) > POOL_CELLS else rows


def _pool(model: SVGe, ds: Dataset, rows: np.ndarray, labels: np.ndarray | None) -> Pool:
    if len(rows) == 0:
        raise SvgeError("no training cells to take the latent box from")
    mu, _ = codec.encode_arrays(model, ds.ops[rows], ds.adj[rows], ds.n_nodes[rows])
    scores = labels[rows] if labels is not None else np.full(len(rows), np.nan)
    return Pool(ds, rows, scores.astype(np.float64), mu)


def _random_cells(
    ws: Workspace, sp: SearchSpace, table: Dataset | None, target: str | None, objective: Objective
) -> Callable[[int, int, set[str]], list[Arch]]:
    """How random search draws cells: table rows for a benchmark, else the space (enumerated or sampled)."""
    if objective.name == "benchmark":
        rows = np.nonzero(np.isfinite(target_column(table, target)))[0]
        return _draw_rows(table, rows)
    if sp.enumerable:
        ds = datasets.enumeration(sp, ws)
        return _draw_rows(ds, np.arange(len(ds)))

    def sample(count: int, seed: int, exclude: set[str]) -> list[Arch]:
        out: dict[str, Arch] = {}
        rounds = 0
        while len(out) < count and rounds < 100:
            for a in sp.sample(2 * (count - len(out)), seed + rounds):
                h = sp.hash(a)
                if h not in exclude and h not in out and len(out) < count:
                    out[h] = a
            rounds += 1
        return list(out.values())

    return sample


def _draw_rows(ds: Dataset, rows: np.ndarray) -> Callable[[int, int, set[str]], list[Arch]]:
    def draw(count: int, seed: int, exclude: set[str]) -> list[Arch]:
        order = np.random.default_rng(seed).permutation(rows)
        picked = [i for i in order[: count + len(exclude)] if ds.hashes[i] not in exclude][:count]
        return [ds.arch(int(i)) for i in picked]

    return draw


# ---------------------------------------------------------------- the run


def run(search: Search, on_round: Callable[[Trial, RoundStats], None]) -> list[Trial]:
    """Every trial (BO, then random search at its query counts), saving the results after each round."""
    trials, settings = search.trials, search.settings

    def after_round(trial: Trial, stats: RoundStats) -> None:
        save_results(search.results, document(search.meta, settings, trials))
        on_round(trial, stats)

    for t in range(settings.trials):
        seed = settings.seed + t
        bo = run_bo_trial(search.problem, settings, _trial(trials, seed, BO), after_round)
        if settings.random_baseline:
            run_random_trial(search.problem, query_budget(bo), _trial(trials, seed, RANDOM), after_round)
    save_results(search.results, document(search.meta, settings, trials))
    return trials


def _trial(trials: list[Trial], seed: int, method: str) -> Trial:
    for t in trials:
        if t.seed == seed and t.method == method:
            return t
    trials.append(Trial(seed, method))
    return trials[-1]
