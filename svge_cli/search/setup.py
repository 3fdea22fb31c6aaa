"""What a search is set up from: the user's options, the objective, and the latent BO's encoded cells.

Every strategy shares `SearchOptions` and `choose_objective`; `latent_problem` encodes the
training cells the paper's BO takes its latent box and start cells from (`search.latent`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from svge_cli.errors import SvgeError
from svge_cli.model import SVGe, codec
from svge_cli.model.scaling import Scaler
from svge_cli.search.latent import EncodedCells, LatentProblem, LatentSettings
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
from svge_cli.spaces import SearchSpace
from svge_cli.storage import datasets, store
from svge_cli.storage.store import Dataset
from svge_cli.storage.workspace import Workspace
from svge_cli.training.vae import held_out_split

#: at most this many cells are encoded for the latent box, the start pool and the test split
POOL_CELLS = 20_000
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


def latent_problem(
    ws: Workspace,
    sp: SearchSpace,
    ck: store.Checkpoint,
    model: SVGe,
    table: Dataset | None,
    target: str | None,
    objective: Objective,
    settings: LatentSettings,
    seed: int,
    note: Callable[[str], None],
) -> LatentProblem:
    """Encode the training cells (latent box, start cells) and the labelled test cells of a latent search."""
    if table is not None and table.split is None:
        table.split = datasets.random_split(len(table), datasets.DEFAULT_SPLIT_SEED)
    reference, train_rows = _training_cells(ws, sp, ck, table)
    rng = np.random.default_rng(seed)
    start_rows = _cap(train_rows, rng)
    labels = target_column(table, target) if (table is not None and target is not None) else None
    labelled = objective.name == "surrogate"
    available = int(np.isfinite(labels[start_rows]).sum()) if labelled else len(start_rows)
    if settings.init is not None and settings.init > available:
        raise SvgeError(f"--init {settings.init} asks for more cells than the {available:,} training cells")
    note(f"encoding {len(start_rows):,} training cells for the latent box ...")
    start = _encoded(model, reference, start_rows, labels)
    test = None
    if labels is not None and objective.name != "evaluator":
        test_rows = _cap(np.nonzero((table.split == store.SPLIT_TEST) & np.isfinite(labels))[0], rng)
        test = _encoded(model, table, test_rows, labels) if len(test_rows) > 1 else None
    return LatentProblem(
        sp,
        model,
        start.latents.min(axis=0),
        start.latents.max(axis=0),
        Scaler.fit(start.latents, axis=0),
        start,
        labelled_start=labelled,
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


def _encoded(model: SVGe, ds: Dataset, rows: np.ndarray, labels: np.ndarray | None) -> EncodedCells:
    if len(rows) == 0:
        raise SvgeError("no training cells to take the latent box from")
    mu, _ = codec.encode_arrays(model, ds.ops[rows], ds.adj[rows], ds.n_nodes[rows])
    scores = labels[rows] if labels is not None else np.full(len(rows), np.nan)
    return EncodedCells(ds, rows, scores.astype(np.float64), mu)
