"""The VAE training loop: seeded, resumable epoch by epoch, with periodic reconstruction checks.

The loop owns no files: after every complete epoch it hands the history to
`on_epoch`, where the caller saves a checkpoint and draws progress.  An
interruption (Ctrl-C) simply propagates between steps, so the last checkpoint
written by `on_epoch` is always a complete, consistent epoch.

Every random choice of epoch e (batch order, posterior noise) is seeded from
(seed, e) alone, so a run resumed from epoch e's checkpoint continues exactly
as the uninterrupted run would have, on the same machine.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Callable

import numpy as np
import torch

from svge_cli.evaluation.recon import reconstruction_accuracy
from svge_cli.model import SVGe, bf16_matmuls
from svge_cli.training.config import TrainConfig

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
    """The training rows of 0-based `epoch` in their seeded order (a resumed run sees the same)."""
    return np.random.default_rng([cfg.seed, epoch]).permutation(train_idx)


def batch_rows(ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows `idx`, cut to the largest graph among them: no decoder steps for padding alone."""
    n = n_nodes[idx]
    width = int(n.max())
    return ops[idx, :width], adj[idx, :width, :width], n


def _train_epoch(
    model: SVGe,
    optimizer: torch.optim.Optimizer,
    data: tuple[np.ndarray, ...],
    order: np.ndarray,
    cfg: TrainConfig,
    epoch: int,
    on_step: StepCallback | None,
) -> dict[str, float]:
    model.train()
    sums = {"loss": 0.0, "rec": 0.0, "kl": 0.0}
    steps = math.ceil(len(order) / cfg.batch_size)
    epoch_lr = optimizer.param_groups[0]["lr"]
    for step in range(steps):
        idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        if epoch * steps + step < cfg.warmup_steps:
            for group in optimizer.param_groups:
                group["lr"] = epoch_lr * (epoch * steps + step + 1) / cfg.warmup_steps
        with bf16_matmuls() if cfg.precision == "bf16" else contextlib.nullcontext():
            out = model.loss(*batch_rows(*data, idx))  # the backward pass follows the forward's dtypes
        loss = out["total"].item()
        if not math.isfinite(loss):  # before the update: the weights of the last complete epoch stay intact
            raise FloatingPointError(f"training loss became {loss} in epoch {epoch + 1}; try a lower learning rate")
        optimizer.zero_grad(set_to_none=True)
        out["total"].backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        for key, name in (("loss", "total"), ("rec", "rec"), ("kl", "kl")):
            sums[key] += out[name].item() * len(idx)
        if on_step is not None:
            on_step(epoch + 1, step, steps, loss)
    return {k: v / len(order) for k, v in sums.items()}


def open_epoch(cfg: TrainConfig, epoch: int, history: History, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Set 0-based `epoch`'s learning rate and torch seed; return its new history entry.

    Both are pure functions of the config and the past epochs, so a resumed run
    continues exactly as the uninterrupted one would.
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
) -> History:
    """Train from `start_epoch` (epochs already completed) up to cfg.epochs; return the history.

    Each entry holds epoch (1-based), loss, rec, kl (training means), lr, seconds
    and, on evaluation epochs, test_recon_greedy (a fraction).  `history` is the
    list from the checkpoint being resumed; it is extended in place.  `on_epoch`
    receives the number of completed epochs (store it as the checkpoint's epoch
    and pass it back as `start_epoch` to resume).
    """
    history = [] if history is None else history
    if len(history) != start_epoch:
        raise ValueError(f"resuming at epoch {start_epoch} needs {start_epoch} history entries, got {len(history)}")
    if len(train_idx) == 0:
        raise ValueError("no training graphs")
    data = (np.asarray(ops), np.asarray(adj), np.asarray(n_nodes))
    train_idx, test_idx = np.asarray(train_idx), np.asarray(test_idx)
    for epoch in range(start_epoch, cfg.epochs):
        began = time.perf_counter()
        entry = open_epoch(cfg, epoch, history, optimizer)
        entry.update(_train_epoch(model, optimizer, data, epoch_order(cfg, epoch, train_idx), cfg, epoch, on_step))
        if len(test_idx) and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            entry["test_recon_greedy"] = reconstruction_accuracy(model, *batch_rows(*data, test_idx), greedy=True)
        entry["seconds"] = time.perf_counter() - began
        history.append(entry)
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
    return history
