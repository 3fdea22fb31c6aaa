"""The latent BO's cells: the training latents its box and start cells come from, and its registration.

`latent_problem` encodes (at most `POOL_CELLS` of) the training cells -- the table's train
split, or without a table the checkpoint's own training rows -- for the latent box and the
start cells, and the labelled test cells for the GP's round-1 quality (`search.latent`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from svge_cli import artifacts
from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.model import SVGe, checkpoints, codec
from svge_cli.model.scaling import Scaler
from svge_cli.search.latent import DEFAULT_LATENT_BATCH, EncodedCells, LatentBO, LatentProblem, LatentSettings
from svge_cli.search.objectives import Objective, target_column
from svge_cli.search.registry import SearchContext, register
from svge_cli.search.strategies import Strategy
from svge_cli.spaces import SearchSpace
from svge_cli.storage import datasets
from svge_cli.storage.workspace import Workspace
from svge_cli.training.vae import held_out_split

#: at most this many cells are encoded for the latent box, the start cells and the test split
POOL_CELLS = 20_000


@register("latent", "the paper's BO, decoding q-EI points of the latent space into new cells", DEFAULT_LATENT_BATCH,
          rank=1)  # fmt: skip
def build_latent(ctx: SearchContext, req: Any) -> Callable[[int], Strategy]:
    """Encode the training cells once; each trial's `LatentBO` starts from its own seed's start cells."""
    assert ctx.source is not None
    ck = ctx.source[0]
    model = checkpoints.model_from_checkpoint(ck, checkpoints.pick_device(req.options.device))
    problem = latent_problem(ctx.ui.workspace, ctx.space, ck, model, ctx.table, ctx.target, ctx.objective,
                             req.latent, req.seed, ctx.ui.note)  # fmt: skip
    return lambda seed: LatentBO(problem, req.latent, seed)


def latent_problem(
    ws: Workspace,
    sp: SearchSpace,
    ck: artifacts.Checkpoint,
    model: SVGe,
    table: Dataset | None,
    target: str | None,
    objective: Objective,
    settings: LatentSettings,
    seed: int,
    note: Callable[[str], None],
) -> LatentProblem:
    """Encode the training cells (latent box, start cells) and the labelled test cells of a latent search.

    Args:
        ws: the workspace, where the checkpoint's own training rows are found when there is no table.
        sp: the search space of the cells.
        ck: the checkpoint `model` was loaded from; without a table its training rows are the cells.
        model: the trained autoencoder that encodes the cells into latent means.
        table: the labelled table whose train and test splits are used (a split is drawn and set on it
            when it has none); None: the checkpoint's training rows, without labels.
        target: the label column the start and test cells are scored by; None: no labels.
        objective: what scores the search's cells; a surrogate makes the labelled start cells the
            initial data, and an evaluator gets no test cells.
        settings: the latent BO's settings; `init` must not ask for more cells than there are.
        seed: seeds which cells are kept when there are more than POOL_CELLS.
        note: shows the user a progress line.

    Returns:
        The problem: the box spanned by the start cells' latent means, their z-scoring, the start
        cells, and the test cells (None without labels, with an evaluator, or with fewer than two).
    """
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
        test_rows = _cap(np.nonzero((table.split == artifacts.SPLIT_TEST) & np.isfinite(labels))[0], rng)
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


def _training_cells(
    ws: Workspace, sp: SearchSpace, ck: artifacts.Checkpoint, table: Dataset | None
) -> tuple[Dataset, np.ndarray]:
    """The training cells: the table's train split, or without a table the checkpoint's own training rows."""
    if table is not None:
        return table, np.nonzero(table.split == artifacts.SPLIT_TRAIN)[0]
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
