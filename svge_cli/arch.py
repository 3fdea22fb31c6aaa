"""Architectures as node-labelled DAGs, and their batching into padded tensors.

Every search space speaks in `Arch`: node 0 is the input, the last node is the
output, nodes are in topological order and the adjacency is strictly upper
triangular.  Node types are indices into the space's vocabulary, where index 0
is always ``input`` and index 1 always ``output`` (D-VAE's numbering), so the
model never needs to know which space it is in beyond the vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from svge_cli.errors import SvgeError

INPUT_TYPE = 0
OUTPUT_TYPE = 1


class ArchError(SvgeError, ValueError):
    """An architecture that breaks a structural or space rule; the message says which."""


def has_cycle(adj: np.ndarray) -> bool:
    """Whether a directed graph (any node order) has a cycle: peel off nodes without predecessors."""
    edges = np.asarray(adj, dtype=bool)
    alive = np.ones(len(edges), dtype=bool)
    while alive.any():
        sources = alive & ~edges[alive].any(axis=0)
        if not sources.any():
            return True
        alive &= ~sources
    return False


@dataclass(frozen=True, eq=False)
class Arch:
    """A cell: node types ``ops`` (length n) and an n x n 0/1 adjacency matrix ``adj``."""

    ops: np.ndarray
    adj: np.ndarray

    def __post_init__(self) -> None:
        ops = np.asarray(self.ops, dtype=np.int64).reshape(-1)
        adj = np.asarray(self.adj, dtype=np.uint8)
        if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or adj.shape[0] != ops.shape[0]:
            raise ArchError(f"adjacency of shape {adj.shape} does not match {ops.shape[0]} nodes")
        if ops.shape[0] < 2:
            raise ArchError("a cell needs at least an input and an output node")
        if np.any(np.tril(adj) != 0):
            problem = "the graph has a cycle" if has_cycle(adj) else "the nodes are not in topological order"
            raise ArchError(f"{problem}: the adjacency must be strictly upper triangular")
        if np.any(adj > 1):
            raise ArchError("adjacency entries must be 0 or 1")
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "adj", adj)
        ops.setflags(write=False)
        adj.setflags(write=False)

    @property
    def n_nodes(self) -> int:
        return int(self.ops.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.adj.sum())

    def key(self) -> bytes:
        """Exact identity (same numbering, same types, same edges) for sets and dicts."""
        return self.ops.astype(np.int8).tobytes() + b"|" + np.packbits(self.adj).tobytes() + bytes([self.n_nodes])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Arch) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        edges = [(int(i), int(j)) for i, j in zip(*np.nonzero(self.adj))]
        return f"Arch(ops={self.ops.tolist()}, edges={edges})"

    def predecessors(self, v: int) -> list[int]:
        return [int(u) for u in np.nonzero(self.adj[:, v])[0]]

    def successors(self, v: int) -> list[int]:
        return [int(w) for w in np.nonzero(self.adj[v])[0]]

    def permuted(self, order: Sequence[int]) -> "Arch":
        """The same graph with node ``order[k]`` renumbered as k (must stay topological)."""
        order = np.asarray(order, dtype=np.int64)
        return Arch(self.ops[order], self.adj[np.ix_(order, order)])


def from_lists(ops: Iterable[int], adj: Iterable[Iterable[int]]) -> Arch:
    return Arch(np.asarray(list(ops)), np.asarray([list(r) for r in adj]))


def is_connected_dag(arch: Arch) -> str | None:
    """Shared structural rule: input first, output last, every node on an input->output path.

    Returns the reason the cell breaks the rule, or None when it holds.
    """
    ops, adj, n = arch.ops, arch.adj, arch.n_nodes
    if ops[0] != INPUT_TYPE:
        return "node 0 must be the input node"
    if ops[-1] != OUTPUT_TYPE:
        return "the last node must be the output node"
    if np.any(ops[1:-1] == INPUT_TYPE) or np.any(ops[1:-1] == OUTPUT_TYPE):
        return "only the first node may be input and only the last output"
    for v in range(1, n):
        if not adj[:, v].any():
            return f"node {v} has no incoming edge"
    for v in range(n - 1):
        if not adj[v].any():
            return f"node {v} has no outgoing edge"
    return None


def pad_batch(archs: Sequence[Arch], max_nodes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack cells into dense arrays: ops (B, N) padded with -1, adj (B, N, N), n_nodes (B,).

    Dense padding is the model's native input: graphs here have at most ~16 nodes,
    where batched matrix products beat edge-list scatter on a CPU.
    """
    n_max = max((a.n_nodes for a in archs), default=0)
    if max_nodes is not None:
        if n_max > max_nodes:
            raise ArchError(f"a cell has {n_max} nodes, more than the {max_nodes} allowed here")
        n_max = max_nodes
    b = len(archs)
    ops = np.full((b, n_max), -1, dtype=np.int64)
    adj = np.zeros((b, n_max, n_max), dtype=np.uint8)
    n_nodes = np.zeros(b, dtype=np.int64)
    for i, a in enumerate(archs):
        n = a.n_nodes
        ops[i, :n] = a.ops
        adj[i, :n, :n] = a.adj
        n_nodes[i] = n
    return ops, adj, n_nodes


def unpad(ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray) -> list[Arch]:
    """Inverse of `pad_batch`.

    Args:
        ops: padded node types, (B, N).
        adj: padded adjacency matrices, (B, N, N).
        n_nodes: each cell's real node count, (B,).

    Returns:
        The B cells, each cut to its own node count.
    """
    return [Arch(ops[i, : int(n)], adj[i, : int(n), : int(n)]) for i, n in enumerate(n_nodes)]


def one_hot_cells(ops: np.ndarray, adj: np.ndarray, vocab: int, width: int) -> np.ndarray:
    """Cells as flat 0/1 vectors (float32): node types one-hot by position, padding all zero, then the strictly
    upper-triangular adjacency.

    A batch narrower than `width` is padded to it, so every batch of a space has the same columns: this is
    the encoding of the NAS literature that shows what a latent space adds (for NB201, whose adjacency is
    fixed, exactly its 6 edges x 5 ops one-hot plus constant columns).

    Args:
        ops: node types, (B, N) integers padded with -1, as `pad_batch` gives them; N at most `width`.
        adj: adjacency matrices, (B, N, N), nonzero where an edge runs from row node to column node.
        vocab: number of node types; a type outside 0..vocab-1 (padding) gets an all-zero one-hot row.
        width: node slots per cell in the output, usually the space's or model's maximum node count.

    Returns:
        A (B, width * vocab + width * (width - 1) / 2) float32 array of 0s and 1s.
    """
    ops, adj = np.asarray(ops, dtype=np.int64), np.asarray(adj)
    if ops.shape[1] < width:
        extra = width - ops.shape[1]
        ops = np.pad(ops, ((0, 0), (0, extra)), constant_values=-1)
        adj = np.pad(adj, ((0, 0), (0, extra), (0, extra)))
    onehot = (ops[:, :, None] == np.arange(vocab)).reshape(len(ops), -1)
    rows, cols = np.triu_indices(width, 1)
    return np.concatenate([onehot, adj[:, rows, cols] != 0], axis=1).astype(np.float32)
