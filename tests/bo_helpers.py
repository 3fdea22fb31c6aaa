"""Fixtures shared by the BO tests: a synthetic NB201 table and a decoder whose latent space is known."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from svge_cli.artifacts import Dataset
from svge_cli.model import ModelConfig, SVGe, checkpoints
from svge_cli.model.scaling import Scaler
from svge_cli.search.latent import EncodedCells, LatentProblem
from svge_cli.spaces import get_space
from svge_cli.spaces.nb201 import ADJ, OP_OFFSET
from svge_cli.storage import store
from svge_cli.storage.workspace import Workspace

NB201 = get_space("nb201")
TARGET = "acc"


def synthetic_score(edge_ops: np.ndarray) -> np.ndarray:
    """A smooth label over NB201 cells: op indices summed, best cell = every edge avg_pool_3x3 (index 4)."""
    return 80.0 + edge_ops.sum(axis=-1) - 0.1 * (edge_ops[..., 0] - 2) ** 2


@functools.lru_cache(maxsize=1)
def _nb201_table() -> Dataset:
    ds = NB201.enumerate_dataset()
    ds.labels[TARGET] = synthetic_score(edge_ops(ds).astype(float))
    return ds


def nb201_table() -> Dataset:
    """All 15,625 cells with the synthetic label (a fresh copy: tests may change it)."""
    ds = _nb201_table()
    return ds.subset(np.arange(len(ds)))


def edge_ops(ds: Dataset) -> np.ndarray:
    return ds.ops[:, 1:7].astype(np.int64) - OP_OFFSET


class GridDecoder(torch.nn.Module):
    """A stand-in for SVGe: latent point z decodes to the cell whose 6 edge ops are round(z).

    A point with z[0] < -0.5 decodes to a broken graph (missing edge); sampled decodes
    add Gaussian noise, so repeated attempts explore neighbouring cells.
    """

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.cfg = ModelConfig(vocab_size=NB201.vocab_size, max_nodes=8, hidden=4, latent=6)

    def encode(self, ops, adj, n_nodes):
        """The inverse of greedy decoding: a cell's edge ops as its latent point (log-variance zero)."""
        mu = torch.as_tensor(ops)[:, 1:7].float() - OP_OFFSET
        return mu, torch.zeros_like(mu)

    def decode(self, z, greedy=True, max_nodes=None, generator=None):
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
        if not greedy:
            z = z + 0.7 * torch.randn(z.shape, generator=generator)
        edge = z.round().clamp(0, 4).long()
        b = len(z)
        ops = torch.cat([torch.zeros(b, 1, dtype=torch.long), edge + OP_OFFSET, torch.ones(b, 1, dtype=torch.long)], 1)
        adj = torch.as_tensor(ADJ.copy(), dtype=torch.uint8).expand(b, 8, 8).clone()
        adj[z[:, 0] < -0.5, 0, 1] = 0
        return ops.numpy(), adj.numpy(), np.full(b, 8)


def grid_problem(table: Dataset | None = None, start_cells: int = 400, seed: int = 0) -> LatentProblem:
    """A latent BO problem on the synthetic table whose latents are the cells' edge ops (the GridDecoder's inverse)."""
    table = table or nb201_table()
    rows = np.sort(np.random.default_rng(seed).choice(len(table), size=start_cells, replace=False))
    latents = edge_ops(table)[rows].astype(np.float32)
    start = EncodedCells(table, rows, table.labels[TARGET][rows], latents)
    test_rows = np.arange(0, len(table), 97)
    test = EncodedCells(
        table, test_rows, table.labels[TARGET][test_rows], edge_ops(table)[test_rows].astype(np.float32)
    )
    return LatentProblem(
        NB201,
        GridDecoder(),
        latents.min(0),
        latents.max(0),
        Scaler.fit(latents, axis=0),
        start,
        labelled_start=False,
        test=test,
    )


def score_of(native: str) -> float:
    """The synthetic label of a cell given in native text."""
    arch = NB201.parse_native(native)
    return float(synthetic_score(arch.ops[1:7].astype(float) - OP_OFFSET))


def make_workspace(root: Path, table: bool = True) -> Workspace:
    """A workspace holding a tiny untrained nb201 checkpoint and (optionally) the synthetic table."""
    ws = Workspace(root)
    torch.manual_seed(0)
    model = SVGe(ModelConfig(vocab_size=NB201.vocab_size, max_nodes=8, hidden=16, latent=8))
    path = ws.checkpoint_dir("nb201") / "tiny.h5"
    store.save_checkpoint(path, checkpoints.snapshot("nb201", model))
    ws.remember_checkpoint("nb201", path)
    if table:
        store.save_dataset(ws.dataset_path("nb201"), nb201_table())
    return ws
