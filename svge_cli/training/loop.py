"""The VAE training loop: seeded, resumable epoch by epoch, with periodic reconstruction checks.

The loop owns no files: after every complete epoch it hands the history to
`on_epoch`, where the caller saves a checkpoint and draws progress.  An
interruption (Ctrl-C) simply propagates between steps, so the last checkpoint
written by `on_epoch` is always a complete, consistent epoch.

Every random choice of epoch e is seeded from (seed, e) alone: the batch order,
and the posterior noise of each cell (from its index too, `noise.cell_noise`).
A run resumed from epoch e's checkpoint continues exactly as the uninterrupted
run would have, on the same machine, and on several processes (`distributed`)
every step trains on the same cells with the same noise as on one.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from svge_cli.evaluation.recon import reconstruction_accuracy
from svge_cli.model import SVGe, bf16_matmuls
from svge_cli.train_config import TrainConfig
from svge_cli.training.distributed import Group
from svge_cli.training.noise import cell_noise

PLATEAU_FACTOR, PLATEAU_PATIENCE, PLATEAU_THRESHOLD = 0.1, 10, 1e-4

History = list[dict[str, Any]]
StepCallback = Callable[[int, int, int, float], None]  # epoch (1-based), step, steps per epoch, loss
EpochCallback = Callable[[int, History], None]  # completed epochs (1-based epoch just finished), history


def make_optimizer(model: SVGe, lr: float) -> torch.optim.Optimizer:
    """Adam (the paper's optimizer); the fused single-kernel variant where torch has it."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr)


def learning_rate(cfg: TrainConfig, epoch: int, history: History) -> float:
    """The rate for 0-based `epoch`, a pure function of the config and the past epochs' losses.

    Deriving it from the history (rather than from a scheduler object) makes a
    resumed run use exactly the rate the uninterrupted run would have used.

    Args:
        cfg: the schedule: base rate, kind (constant, cosine or plateau) and number of epochs.
        epoch: the 0-based epoch the rate is for.
        history: the entries of the completed epochs; the plateau schedule reads the losses of the first `epoch`.

    Returns:
        The learning rate of `epoch`.
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "cosine":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * epoch / max(cfg.epochs, 1)))
    lr, best, bad = cfg.lr, math.inf, 0
    for entry in history[:epoch]:
        loss = entry["loss"]
        if loss < best * (1 - PLATEAU_THRESHOLD):
            best, bad = loss, 0
        else:
            bad += 1
            if bad > PLATEAU_PATIENCE:
                lr, bad = lr * PLATEAU_FACTOR, 0
    return lr


def epoch_order(cfg: TrainConfig, epoch: int, train_idx: np.ndarray) -> np.ndarray:
    """The training rows of 0-based `epoch` in their seeded order (a resumed run sees the same).

    Args:
        cfg: the schedule whose seed, with `epoch`, seeds the shuffle.
        epoch: the 0-based epoch.
        train_idx: the dataset rows trained on.

    Returns:
        A permutation of `train_idx`.
    """
    return np.random.default_rng([cfg.seed, epoch]).permutation(train_idx)


def batch_rows(ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows `idx`, cut to the largest graph among them: no decoder steps for padding alone.

    Args:
        ops: node types of every cell, (M, N) padded with -1.
        adj: adjacency of every cell, (M, N, N), 0/1.
        n_nodes: real node count of every cell, (M,).
        idx: the rows of the batch, (B,).

    Returns:
        The batch's ops (B, W), adj (B, W, W) and n_nodes (B,), W being the largest node count among them.
    """
    n = n_nodes[idx]
    width = int(n.max())
    return ops[idx, :width], adj[idx, :width, :width], n


class LossOf(nn.Module):
    """`model.loss` as the forward pass: DistributedDataParallel averages the gradients of forward calls."""

    def __init__(self, model: SVGe) -> None:
        super().__init__()
        self.model = model

    def forward(self, ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray, eps: np.ndarray) -> dict:
        """The model's loss on one batch.

        Args:
            ops: the batch's node types, (B, N) padded with -1.
            adj: the batch's adjacency matrices, (B, N, N), 0/1.
            n_nodes: the real node count of each cell, (B,).
            eps: standard normal posterior noise, (B, latent), one row per cell.

        Returns:
            What `SVGe.loss` gives: the scalar terms total, rec, kl, node_loss and edge_loss, and mu and logvar.
        """
        return self.model.loss(ops, adj, n_nodes, eps)


def step_rows(batch: np.ndarray, group: Group) -> tuple[np.ndarray, float]:
    """This rank's cells of a global batch, and the weight that makes the ranks' average the batch mean.

    A rank left without a cell by a short last batch still joins the gradient
    average, with one cell at weight zero.
    """
    mine = group.shard(batch)
    if len(mine) == 0:
        return batch[:1], 0.0
    return mine, len(mine) * group.world / len(batch)


def _train_epoch(
    net: nn.Module,
    model: SVGe,
    optimizer: torch.optim.Optimizer,
    data: tuple[np.ndarray, ...],
    order: np.ndarray,
    cfg: TrainConfig,
    epoch: int,
    on_step: StepCallback | None,
    group: Group,
) -> dict[str, float]:
    model.train()
    sums = np.zeros(3)
    steps = math.ceil(len(order) / cfg.batch_size)
    epoch_lr = optimizer.param_groups[0]["lr"]
    for step in range(steps):
        batch = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        if epoch * steps + step < cfg.warmup_steps:
            for param_group in optimizer.param_groups:
                param_group["lr"] = epoch_lr * (epoch * steps + step + 1) / cfg.warmup_steps
        mine, weight = step_rows(batch, group)
        eps = cell_noise(cfg.seed, epoch, mine, model.cfg.latent)
        with bf16_matmuls() if cfg.precision == "bf16" else contextlib.nullcontext():
            out = net(*batch_rows(*data, mine), eps)  # the backward pass follows the forward's dtypes
        counted = len(mine) if weight else 0
        batch_sums = group.sum([out[name].item() * counted for name in ("total", "rec", "kl")])
        loss = float(batch_sums[0]) / len(batch)
        if not math.isfinite(loss):  # before the update: the weights of the last complete epoch stay intact
            raise FloatingPointError(f"training loss became {loss} in epoch {epoch + 1}; try a lower learning rate")
        optimizer.zero_grad(set_to_none=True)
        (out["total"] * weight).backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        sums += batch_sums
        if on_step is not None:
            on_step(epoch + 1, step, steps, loss)
    return dict(zip(("loss", "rec", "kl"), (float(v) / len(order) for v in sums)))


def test_reconstruction(model: SVGe, data: tuple[np.ndarray, ...], test_idx: np.ndarray, group: Group) -> float:
    """Greedy reconstruction accuracy of the test cells, each rank decoding its share.

    Args:
        model: the VAE that encodes and decodes the cells.
        data: ops, adj and n_nodes of the whole dataset, as `batch_rows` takes them.
        test_idx: the rows scored, split over the ranks.
        group: the processes sharing the work; their hits are summed.

    Returns:
        The fraction of the test cells that greedy decoding gives back exactly, over all ranks.
    """
    mine = group.shard(test_idx)
    hits = round(reconstruction_accuracy(model, *batch_rows(*data, mine), greedy=True) * len(mine)) if len(mine) else 0
    total_hits, total = group.sum([hits, len(mine)])
    return float(total_hits / total)


def open_epoch(cfg: TrainConfig, epoch: int, history: History, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Set 0-based `epoch`'s learning rate and torch seed; return its new history entry.

    Both are pure functions of the config and the past epochs, so a resumed run
    continues exactly as the uninterrupted one would.

    Args:
        cfg: the schedule: learning rate settings and the seed.
        epoch: the 0-based epoch about to start.
        history: the entries of the completed epochs, which the plateau schedule reads.
        optimizer: the optimizer whose parameter groups get the epoch's rate.

    Returns:
        The epoch's new history entry, holding its 1-based epoch and lr so far.
    """
    lr = learning_rate(cfg, epoch, history)
    for group in optimizer.param_groups:
        group["lr"] = lr
    torch.manual_seed(int(np.random.default_rng([cfg.seed, epoch, 1]).integers(2**62)))
    return {"epoch": epoch + 1, "lr": lr}


def fit(
    model: SVGe,
    optimizer: torch.optim.Optimizer,
    ops: np.ndarray,
    adj: np.ndarray,
    n_nodes: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    cfg: TrainConfig,
    start_epoch: int = 0,
    history: History | None = None,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
    group: Group | None = None,
) -> History:
    """Train from `start_epoch` (epochs already completed) up to cfg.epochs; return the history.

    Each entry holds epoch (1-based), loss, rec, kl (training means), lr, seconds
    and, on evaluation epochs, test_recon_greedy (a fraction).  `history` is the
    list from the checkpoint being resumed; it is extended in place.  `on_epoch`
    receives the number of completed epochs (store it as the checkpoint's epoch
    and pass it back as `start_epoch` to resume).  With `group` (several
    processes) `batch_size` is the global batch: each rank trains on its share
    under DistributedDataParallel, and the history holds the means over all ranks.

    Args:
        model: the VAE, trained in place.
        optimizer: the optimizer of the model's parameters (its restored state when resuming).
        ops: node types of every cell, (M, N) padded with -1.
        adj: adjacency of every cell, (M, N, N), 0/1.
        n_nodes: real node count of every cell, (M,).
        train_idx: the rows trained on; must not be empty.
        test_idx: the rows whose greedy reconstruction is checked every cfg.eval_every epochs and after
            the last; empty skips the check.
        cfg: the schedule: epochs, batch size, learning rate, seed, precision and the like.
        start_epoch: the number of epochs already completed; `history` must hold as many entries.
        history: the resumed run's entries, extended in place; None starts a fresh list.
        on_step: called after every step with the 1-based epoch, the 0-based step, the steps per epoch
            and the batch loss.
        on_epoch: called after every epoch with the number of completed epochs and the history.
        group: the processes training together; None trains in this process alone.

    Returns:
        The history, one entry per completed epoch (the `history` list itself when one was given).
    """
    group = group or Group()
    history = [] if history is None else history
    if len(history) != start_epoch:
        raise ValueError(f"resuming at epoch {start_epoch} needs {start_epoch} history entries, got {len(history)}")
    if len(train_idx) == 0:
        raise ValueError("no training graphs")
    data = (np.asarray(ops), np.asarray(adj), np.asarray(n_nodes))
    train_idx, test_idx = np.asarray(train_idx), np.asarray(test_idx)
    net = group.wrap(LossOf(model))
    for epoch in range(start_epoch, cfg.epochs):
        began = time.perf_counter()
        entry = open_epoch(cfg, epoch, history, optimizer)
        order = epoch_order(cfg, epoch, train_idx)
        entry.update(_train_epoch(net, model, optimizer, data, order, cfg, epoch, on_step, group))
        if len(test_idx) and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            entry["test_recon_greedy"] = test_reconstruction(model, data, test_idx, group)
        entry["seconds"] = time.perf_counter() - began
        history.append(entry)
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
    return history
