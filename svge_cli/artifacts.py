"""The in-memory form of what svge stores: cells with labels (`Dataset`), encoded cells (`Latents`) and
model states (`Checkpoint`).

They sit at the bottom, beside `arch.py`, so that search spaces can build datasets and every layer can
pass them around without importing the HDF5 code in `svge_cli.storage.store` that reads and writes them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from svge_cli.arch import Arch, pad_batch
from svge_cli.errors import StoreError

SPLIT_TRAIN, SPLIT_TEST = 0, 1


@dataclass
class Dataset:
    """Architectures of one space as padded arrays, with label columns and a split.

    Arrays rather than Arch objects: the full NB101 space (423,624 cells) must fit
    comfortably in memory and feed the model without per-cell Python work.
    """

    space: str
    ops: np.ndarray  # (M, N) int8, padded with -1
    adj: np.ndarray  # (M, N, N) uint8
    n_nodes: np.ndarray  # (M,) int16
    hashes: np.ndarray  # (M,) str
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # column -> (M,) float64, NaN = unknown
    split: np.ndarray | None = None  # (M,) int8: SPLIT_TRAIN / SPLIT_TEST
    source: str = ""
    #: what an importer wants the user to know (rows it merged ...); not stored in the file
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.ops.shape[0])

    @classmethod
    def from_archs(
        cls, space: str, archs: list[Arch], hashes: list[str], max_nodes: int | None = None, **kw: Any
    ) -> "Dataset":
        """Build a dataset from Arch cells, padding them to common arrays with `pad_batch`.

        Args:
            space: name of the search space the cells belong to.
            archs: the cells, one row each, in order.
            hashes: one identifying hash per cell, aligned with `archs`.
            max_nodes: pad every cell to this many nodes; None pads to the largest cell given.
            **kw: further `Dataset` fields (labels, split, source ...), passed through.

        Returns:
            The dataset, ops as int8 and n_nodes as int16.
        """
        ops, adj, n = pad_batch(archs, max_nodes)
        return cls(space, ops.astype(np.int8), adj, n.astype(np.int16), np.asarray(hashes, dtype=str), **kw)

    def arch(self, i: int) -> Arch:
        n = int(self.n_nodes[i])
        return Arch(self.ops[i, :n], self.adj[i, :n, :n])

    def archs(self, idx: np.ndarray | None = None) -> Iterator[Arch]:
        for i in range(len(self)) if idx is None else idx:
            yield self.arch(int(i))

    def subset(self, idx: np.ndarray) -> "Dataset":
        return Dataset(
            self.space,
            self.ops[idx],
            self.adj[idx],
            self.n_nodes[idx],
            self.hashes[idx],
            {k: v[idx] for k, v in self.labels.items()},
            None if self.split is None else self.split[idx],
            self.source,
        )

    def split_indices(self, which: int) -> np.ndarray:
        if self.split is None:
            raise StoreError("the dataset has no train/test split")
        return np.nonzero(self.split == which)[0]


@dataclass
class Latents:
    """Posterior parameters of encoded cells, with the cells themselves for round trips."""

    space: str
    mu: np.ndarray  # (M, D) float32
    logvar: np.ndarray  # (M, D) float32
    hashes: np.ndarray  # (M,) str, "" where unknown (e.g. points that came from BO)
    checkpoint: str = ""  # fingerprint of the checkpoint that encoded them
    ops: np.ndarray | None = None
    adj: np.ndarray | None = None
    n_nodes: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.mu.shape[0])


@dataclass
class Checkpoint:
    """Everything needed to rebuild and resume a model: config, weights, optimizer, history."""

    space: str
    config: dict[str, Any]
    state: dict[str, np.ndarray]
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    optimizer: bytes = b""  # torch.save of the optimizer state dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # split, latent stats, label scaling ...
    meta: dict[str, Any] = field(default_factory=dict)  # small JSON facts: dataset source, label target ...

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        for k in sorted(self.state):
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.state[k]).tobytes())
        return h.hexdigest()[:16]
