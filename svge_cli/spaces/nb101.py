"""NAS-Bench-101 cells: validity, native text, enumeration (pruning and the official hash: `nb101_hash`).

A cell is a DAG of at most 7 vertices and 9 edges whose middle vertices are
``conv3x3-bn-relu``, ``conv1x1-bn-relu`` or ``maxpool3x3``.  As in the official
``ModelSpec``, a cell is pruned before use (vertices not on an input->output path
are removed) and the vertex and edge limits apply to the pruned cell, so a cell
with dangling vertices is valid when its pruned form is.

Native text
-----------
NAS-Bench-101 has no official one-line string, so svge defines one::

    ops=conv3x3,maxpool,conv1x1;adj=0110/0001/0001/0000

``ops`` lists the middle vertices in order (full names or the short aliases
``conv3x3``, ``conv1x1``, ``maxpool``; empty for the bare input->output cell);
a list that also names ``input`` first and ``output`` last is accepted too.
``adj`` is the full n x n matrix, one row of n ``0``/``1`` characters per
vertex, rows separated by ``/``, strictly upper triangular.  Parsing keeps the
cell as written; `SearchSpace.check` prunes and validates it.

Enumeration
-----------
The official generator walks every full DAG (each vertex but the output has an
out-edge, each but the input an in-edge) with <= 9 edges in increasing bit
order, with every labelling in ``itertools.product`` order, and keeps the first
cell per hash.  Hashing ~1.3M labelled graphs in Python is slow, so
`enumerate_dataset` picks the same first cells exactly by group theory: the
first structure of each unlabeled isomorphism class, and per structure the
labellings that are lexicographically smallest in their orbit under the
structure's automorphisms.  Only those 423,624 cells are hashed, vectorised
over cells, and the hashes are checked to be distinct, so deduplicating by
isomorphism and by hash agree (the hash has no collisions in this space).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Iterator

import numpy as np

from svge_cli.arch import INPUT_TYPE, OUTPUT_TYPE, Arch, ArchError
from svge_cli.artifacts import Dataset
from svge_cli.spaces.base import SearchSpace
from svge_cli.spaces.nb101_hash import (
    FIRST_OP,
    INPUT_LABEL,
    OPS,
    OUTPUT_LABEL,
    chunked,
    default_workers,
    graph_hash,
    hash_chunks,
    official_labels,
    prune,
)
from svge_cli.train_config import LAPTOP, paper_config

SHORT = {"conv3x3": "conv3x3-bn-relu", "conv1x1": "conv1x1-bn-relu", "maxpool": "maxpool3x3"}
MAX_NODES = 7
MAX_EDGES = 9


# ---------------------------------------------------------------- enumeration


def _full_dags(n: int) -> np.ndarray:
    """Every full DAG on n vertices with <= MAX_EDGES edges, in the official bit order.

    Bit x + y(y-1)/2 of the counter is the edge x -> y (x < y).
    """
    ys, xs = zip(*[(y, x) for y in range(n) for x in range(y)])
    bits = np.arange(2 ** len(xs), dtype=np.uint32)
    edges = np.unpackbits(bits.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")[:, : len(xs)]
    edges = edges[edges.sum(1) <= MAX_EDGES]
    adj = np.zeros((edges.shape[0], n, n), dtype=np.uint8)
    adj[:, list(xs), list(ys)] = edges
    full = adj[:, :-1, :].any(2).all(1) & adj[:, :, 1:].any(1).all(1)
    return adj[full]


def _middle_perms(n: int) -> np.ndarray:
    """Every vertex permutation fixing input and output (identity first)."""
    return np.asarray([(0, *p, n - 1) for p in itertools.permutations(range(1, n - 1))], dtype=np.int64)


def _perm_codes(adj: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """(S, P) integer code of each structure relabelled by each permutation."""
    n = adj.shape[1]
    permuted = adj[:, perms[:, :, None], perms[:, None, :]].reshape(adj.shape[0], len(perms), n * n)
    packed = np.packbits(permuted, axis=-1)
    packed = np.concatenate([packed, np.zeros(packed.shape[:2] + (8 - packed.shape[2],), np.uint8)], axis=-1)
    return packed.view(np.uint64)[..., 0]


def _first_labellings(automorphisms: np.ndarray, n: int) -> np.ndarray:
    """Labellings (product order) that come first in their orbit under the automorphisms."""
    labellings = np.asarray(list(itertools.product(range(len(OPS)), repeat=n - 2)), dtype=np.int64)
    labellings = labellings.reshape(len(OPS) ** (n - 2), n - 2)
    weights = len(OPS) ** np.arange(n - 3, -1, -1, dtype=np.int64)
    rank = np.arange(len(labellings))
    smallest = np.min([labellings[:, p[1:-1] - 1] @ weights for p in automorphisms], axis=0)
    return labellings[smallest == rank]


def _unique_cells(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(adj (C, n, n), official labels (C, n)) of the first cell of every hash class with n vertices."""
    structures = _full_dags(n)
    perms = _middle_perms(n)
    codes = _perm_codes(structures, perms)
    _, first = np.unique(codes.min(1), return_index=True)
    adjs, labels = [], []
    for s in np.sort(first):
        automorphisms = perms[codes[s] == codes[s, 0]]
        middle = _first_labellings(automorphisms, n)
        adjs.append(np.broadcast_to(structures[s], (len(middle), n, n)))
        labels.append(
            np.concatenate(
                [np.full((len(middle), 1), INPUT_LABEL), middle, np.full((len(middle), 1), OUTPUT_LABEL)], axis=1
            )
        )
    return np.concatenate(adjs), np.concatenate(labels)


def enumerate_dataset(max_vertices: int = MAX_NODES, workers: int | None = None) -> Dataset:
    """Every unique cell with at most `max_vertices` (2..7) vertices, with official hashes.

    Cells come in the official generator's order and are its representatives.
    Hashing runs on `workers` processes (default: every available CPU).
    """
    if not 2 <= max_vertices <= MAX_NODES:
        raise ArchError(f"NAS-Bench-101 enumeration needs 2..{MAX_NODES} vertices, got {max_vertices}")
    blocks = [_unique_cells(n) for n in range(2, max_vertices + 1)]
    m = sum(len(a) for a, _ in blocks)
    ops = np.full((m, max_vertices), -1, dtype=np.int8)
    adj = np.zeros((m, max_vertices, max_vertices), dtype=np.uint8)
    n_nodes = np.zeros(m, dtype=np.int16)
    start = 0
    for a, lab in blocks:
        c, n = lab.shape
        rows = slice(start, start + c)
        ops[rows, :n] = lab + FIRST_OP
        ops[rows, 0], ops[rows, n - 1] = INPUT_TYPE, OUTPUT_TYPE
        adj[rows, :n, :n] = a
        n_nodes[rows] = n
        start += c
    chunks = [chunk for a, lab in blocks for chunk in chunked(a, lab)]
    hashes = hash_chunks(chunks, default_workers() if workers is None else workers)
    if len(np.unique(hashes)) != m:
        raise RuntimeError("NAS-Bench-101 hash collision between non-isomorphic cells; enumeration is unsound")
    return Dataset("nb101", ops, adj, n_nodes, hashes, source=f"enumeration (<= {max_vertices} vertices)")


# ---------------------------------------------------------------- native text


def _parse_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.strip().split(";"):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in ("ops", "adj"):
            raise ArchError(f"NB101 text needs 'ops=...;adj=...', got part {part.strip()!r}")
        if key in fields:
            raise ArchError(f"NB101 text names {key!r} twice")
        fields[key] = value.strip()
    missing = [k for k in ("ops", "adj") if k not in fields]
    if missing:
        raise ArchError(f"NB101 text lacks {' and '.join(missing)} (expected 'ops=...;adj=...')")
    return fields


def _parse_adj(text: str) -> np.ndarray:
    rows = [r.strip() for r in text.split("/")]
    n = len(rows)
    if n < 2:
        raise ArchError("adj needs at least 2 rows (the input and the output)")
    adj = np.zeros((n, n), dtype=np.uint8)
    for i, row in enumerate(rows):
        if len(row) != n:
            raise ArchError(f"adj row {i} has {len(row)} entries, expected {n} (one per row)")
        for j, ch in enumerate(row):
            if ch not in "01":
                raise ArchError(f"adj row {i} column {j} is {ch!r}; entries must be 0 or 1")
            if ch == "1" and j <= i:
                raise ArchError(f"adj row {i} has an edge to column {j}: the matrix must be strictly upper triangular")
            adj[i, j] = ch == "1"
    return adj


# ---------------------------------------------------------------- the space


class NB101Space(SearchSpace):
    """NAS-Bench-101 (Ying et al. 2019): 423,624 unique cells of <= 7 vertices and <= 9 edges."""

    name = "nb101"
    node_types = ("input", "output") + OPS
    max_nodes = MAX_NODES
    max_edges = MAX_EDGES
    enumerable = True
    size = 423_624
    chain_cell = (
        "ops=conv3x3,conv3x3,conv3x3,conv3x3,conv3x3;adj=0100000/0010000/0001000/0000100/0000010/0000001/0000000"
    )
    default_target = "val_acc_108"
    # batch 32 rather than the paper's 128: 4x the updates per epoch; 8 epochs on a 50k subset
    # reached 96.65% greedy reconstruction (docs/results.md); the whole space is --limit 423624
    default_schedule = replace(LAPTOP, epochs=8, eval_every=2)
    paper_schedule = paper_config(batch_size=128)
    default_train_limit = 50_000
    description = "NAS-Bench-101 cells: <= 7 nodes, <= 9 edges, conv3x3 / conv1x1 / maxpool (423,624 cells)"

    def aliases(self) -> dict[str, str]:
        return dict(SHORT)

    def canonical(self, arch: Arch) -> Arch:
        """The pruned cell (unchanged when the input does not reach the output; validate says so)."""
        pruned = prune(arch)
        return arch if pruned is None else pruned

    def validate(self, arch: Arch, node_limit: int | None = None) -> str | None:
        """Reason the cell is invalid, or None.

        Node types are checked on the cell as given (every middle vertex must be an
        operation); as in the official ModelSpec, vertex and edge limits apply after
        pruning, so dangling vertices do not count.
        """
        reason = self._type_error(arch)
        if reason is not None:
            return reason
        pruned = prune(arch)
        if pruned is None:
            return "the input does not reach the output"
        limit = node_limit or self.max_nodes
        if pruned.n_nodes > limit:
            return f"the cell has {pruned.n_nodes} nodes after pruning, more than {limit}"
        if pruned.n_edges > self.max_edges:
            return f"the cell has {pruned.n_edges} edges after pruning, more than {self.max_edges}"
        return None

    def dag_error(self, arch: Arch) -> str | None:
        """The paper's validity: the node types are right and every vertex lies on an input-output path.

        This is the authors' check (their evaluation code: one input, one output,
        acyclic, no vertex without an incoming edge but the input, none without an
        outgoing edge but the output) and it is what the paper's 79.16% counts.  It is
        stricter than `validate` about dangling vertices (no pruning) and looser
        about the budget: a cell with more than 9 edges is a valid DAG, not an NB101 cell.
        """
        reason = self._type_error(arch)
        if reason is not None:
            return reason
        last = arch.n_nodes - 1
        for v in range(arch.n_nodes):
            if v > 0 and not arch.adj[:, v].any():
                return f"node {v} has no incoming edge"
            if v < last and not arch.adj[v].any():
                return f"node {v} has no outgoing edge"
        return None

    def _type_error(self, arch: Arch) -> str | None:
        """Why the node types are not input, operations, output; None when they are."""
        ops = arch.ops
        if ops[0] != INPUT_TYPE:
            return "node 0 must be the input node"
        if ops[-1] != OUTPUT_TYPE:
            return "the last node must be the output node"
        for v, t in enumerate(ops[1:-1].tolist(), start=1):
            if not FIRST_OP <= t < FIRST_OP + len(OPS):
                name = self.node_types[t] if 0 <= t < self.vocab_size else f"type {t}"
                return f"node {v} is {name}; middle nodes must be one of {', '.join(OPS)}"
        return None

    def hash(self, arch: Arch) -> str:
        """Official NAS-Bench-101 hash of the pruned cell (the key in the benchmark files)."""
        pruned = prune(arch)
        if pruned is None:
            raise ArchError("the input does not reach the output, so the cell has no NAS-Bench-101 hash")
        return graph_hash(pruned.adj, official_labels(pruned.ops))

    def parse_native(self, text: str) -> Arch:
        fields = _parse_fields(text)
        adj = _parse_adj(fields["adj"])
        names = [s.strip() for s in fields["ops"].split(",")] if fields["ops"] else []
        if len(names) == adj.shape[0] and names and names[0] == "input" and names[-1] == "output":
            names = names[1:-1]
        if len(names) != adj.shape[0] - 2:
            raise ArchError(
                f"adj has {adj.shape[0]} rows, so ops must name {adj.shape[0] - 2} middle nodes, got {len(names)}"
            )
        middle = []
        for name in names:
            t = self.type_index(name)
            if t < FIRST_OP:
                raise ArchError(f"op {name!r} cannot be a middle node (use one of {', '.join(SHORT)})")
            middle.append(t)
        return Arch(np.asarray([INPUT_TYPE, *middle, OUTPUT_TYPE]), adj)

    def format_native(self, arch: Arch) -> str:
        reason = self._type_error(arch)
        if reason is not None:
            raise ArchError(reason)
        short = {full: s for s, full in SHORT.items()}
        names = [short[self.node_types[t]] for t in arch.ops[1:-1].tolist()]
        rows = "/".join("".join(str(int(x)) for x in row) for row in arch.adj)
        return f"ops={','.join(names)};adj={rows}"

    def enumerate(self, max_vertices: int = MAX_NODES) -> Iterator[Arch]:
        """Every unique cell (423,624 at 7 vertices), as the official generator keeps them."""
        yield from enumerate_dataset(max_vertices).archs()

    def enumerate_dataset(self, max_vertices: int = MAX_NODES) -> Dataset:
        """The enumeration as arrays with official hashes, without building an Arch per cell."""
        return enumerate_dataset(max_vertices)
