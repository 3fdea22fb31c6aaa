"""NAS-Bench-101 cells: pruning, validity, the official graph hash, native text, enumeration.

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

import hashlib
import itertools
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from operator import methodcaller
from typing import Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from svge_cli.arch import INPUT_TYPE, OUTPUT_TYPE, Arch, ArchError
from svge_cli.artifacts import Dataset
from svge_cli.spaces.base import SearchSpace
from svge_cli.training.config import LAPTOP, paper_config

OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
SHORT = {"conv3x3": "conv3x3-bn-relu", "conv1x1": "conv1x1-bn-relu", "maxpool": "maxpool3x3"}
MAX_NODES = 7
MAX_EDGES = 9
FIRST_OP = 2  # node-type index of OPS[0]; the official label of a middle vertex is type - FIRST_OP
INPUT_LABEL, OUTPUT_LABEL = -1, -2
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_CHUNK = 8192  # cells hashed per vectorised batch (bounds memory to ~100 MB)


# ---------------------------------------------------------------- pruning and the official hash


def prune(arch: Arch) -> Arch | None:
    """The cell without vertices off every input->output path; None if the input misses the output."""
    n = arch.n_nodes
    reach_in, reach_out = _reachable(arch.adj.tolist())
    if not reach_in[n - 1]:
        return None
    keep = [v for v in range(n) if reach_in[v] and reach_out[v]]
    if len(keep) == n:
        return arch
    return Arch(arch.ops[keep], arch.adj[np.ix_(keep, keep)])


def _reachable(adj: list[list[int]]) -> tuple[list[bool], list[bool]]:
    """Which vertices the input reaches, and which reach the output.

    One pass each way suffices: the vertices are in topological order.
    """
    n = len(adj)
    reach_in, reach_out = [False] * n, [False] * n
    reach_in[0], reach_out[n - 1] = True, True
    for v in range(1, n):
        reach_in[v] = any(reach_in[u] and adj[u][v] for u in range(v))
    for v in range(n - 2, -1, -1):
        reach_out[v] = any(reach_out[w] and adj[v][w] for w in range(v + 1, n))
    return reach_in, reach_out


def official_labels(ops: np.ndarray) -> list[int]:
    """Node types -> the labels the official hash uses (-1 input, -2 output, 0/1/2 ops)."""
    labels = []
    for t in ops.tolist():
        if t == INPUT_TYPE:
            labels.append(INPUT_LABEL)
        elif t == OUTPUT_TYPE:
            labels.append(OUTPUT_LABEL)
        elif FIRST_OP <= t < FIRST_OP + len(OPS):
            labels.append(t - FIRST_OP)
        else:
            raise ArchError(f"node type {t} is not a NAS-Bench-101 node type")
    return labels


def graph_hash(adj: np.ndarray, labels: Sequence[int]) -> str:
    """The official NAS-Bench-101 fingerprint of one labelled DAG (reference implementation)."""
    n = len(labels)
    md5 = hashlib.md5
    out_deg, in_deg = adj.sum(1).tolist(), adj.sum(0).tolist()
    preds = [np.nonzero(adj[:, v])[0].tolist() for v in range(n)]
    succs = [np.nonzero(adj[v])[0].tolist() for v in range(n)]
    hashes = [md5(str((out_deg[v], in_deg[v], int(labels[v]))).encode()).hexdigest() for v in range(n)]
    for _ in range(n):
        hashes = [
            md5(
                (
                    "".join(sorted(hashes[u] for u in preds[v]))
                    + "|"
                    + "".join(sorted(hashes[w] for w in succs[v]))
                    + "|"
                    + hashes[v]
                ).encode()
            ).hexdigest()
            for v in range(n)
        ]
    return md5(str(sorted(hashes)).encode()).hexdigest()


# ---------------------------------------------------------------- vectorised hash (same n per batch)


def _digests_to_hex(digests: list[bytes]) -> np.ndarray:
    """Raw md5 digests -> (U, 32) uint8 lowercase hex, as hexdigest() would spell them."""
    raw = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 16)
    out = np.empty((raw.shape[0], 32), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out


def _md5_all(buf: np.ndarray, starts: list[int], ends: list[int]) -> list[bytes]:
    """md5 digest of each buf[start:end]; the loop runs in C (map), not in Python bytecode."""
    pieces = map(memoryview(buf).__getitem__, map(slice, starts, ends))
    return list(map(methodcaller("digest"), map(hashlib.md5, pieces)))


def _initial_hashes(adj: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(G * n, 32) hex of md5(str((out_degree, in_degree, label))) per vertex."""
    triples = np.stack([adj.sum(2), adj.sum(1), labels], axis=-1).reshape(-1, 3).astype(np.int64)
    uniq, inverse = np.unique(triples, axis=0, return_inverse=True)
    table = _digests_to_hex([hashlib.md5(str(tuple(int(x) for x in t)).encode()).digest() for t in uniq])
    return table[inverse.reshape(-1)]


class _Messages:
    """Byte layout of one iteration's messages, fixed for a batch of same-size cells.

    Vertex v's message is ``sorted in-hashes | sorted out-hashes | own hash``; its
    length depends only on its degrees, so the positions of the separators and of
    every hash slot are fixed and only which hash fills which slot changes between
    iterations.  Filling a flat buffer by index avoids padded arrays.
    """

    def __init__(self, adj: np.ndarray) -> None:
        g, n = adj.shape[:2]
        self.adj = adj.astype(np.float32)  # float matmul is exact for these counts and uses BLAS
        indeg, outdeg = adj.sum(1).ravel().astype(np.int64), adj.sum(2).ravel().astype(np.int64)
        lengths = 32 * (indeg + outdeg + 1) + 2
        ends = np.cumsum(lengths)
        starts = ends - lengths
        in_bar = starts + 32 * indeg
        out_bar = in_bar + 1 + 32 * outdeg
        self.buf = np.empty(int(ends[-1]), dtype=np.uint8)
        self.buf[in_bar] = self.buf[out_bar] = ord("|")
        # overlapping 32-byte windows: window i is buf[i:i + 32], so a hash lands with one row write
        self.windows = as_strided(self.buf, shape=(self.buf.size - 31, 32), strides=(1, 1), writeable=True)
        self.edges = np.nonzero(adj)  # (cell, u, v) per edge u -> v
        eg, eu, ev = self.edges
        self.src = np.concatenate([eg * n + eu, eg * n + ev, np.arange(g * n)])
        self.base = np.concatenate([starts[eg * n + ev], in_bar[eg * n + eu] + 1, out_bar + 1])
        self.bounds = starts.tolist(), ends.tolist()

    def fill(self, hexes: np.ndarray) -> np.ndarray:
        """The flat message buffer for the current per-vertex hashes (G * n, 32)."""
        g, n = self.adj.shape[:2]
        order = np.argsort(hexes.view("S32").reshape(g, n), axis=1, kind="stable")
        rank = np.argsort(order, axis=1)  # distinct even for equal hashes, so slots never clash
        earlier = (rank[:, None, :] < rank[:, :, None]).astype(np.float32)  # [g, a, b]: b ranks before a
        slot_in = np.matmul(earlier, self.adj)[self.edges]  # earlier in-neighbours of v than u
        slot_out = np.matmul(self.adj, earlier.transpose(0, 2, 1))[self.edges]  # earlier out-neighbours of u than v
        slots = np.concatenate([slot_in, slot_out, np.zeros(g * n, dtype=slot_in.dtype)])
        self.windows[self.base + 32 * slots.astype(np.int64)] = hexes[self.src]
        return self.buf


def _fingerprints(hexes: np.ndarray, n: int) -> np.ndarray:
    """md5 of str(sorted(hashes)) per cell, i.e. of "['h1', 'h2', ...]"."""
    g = hexes.shape[0] // n
    ordered = np.sort(np.ascontiguousarray(hexes).view("S32").reshape(g, n), axis=1).view(np.uint8).reshape(g, n, 32)
    quote, sep = np.full((g, n, 1), ord("'"), np.uint8), np.frombuffer(b", ", np.uint8)
    items = np.concatenate([quote, ordered, quote, np.broadcast_to(sep, (g, n, 2))], axis=2).reshape(g, -1)[:, :-2]
    text = np.concatenate([np.full((g, 1), ord("["), np.uint8), items, np.full((g, 1), ord("]"), np.uint8)], axis=1)
    width = text.shape[1]
    digests = _md5_all(text.ravel(), list(range(0, g * width, width)), list(range(width, g * width + 1, width)))
    return np.asarray([d.hex() for d in digests], dtype="U32")


def _hash_chunk(adj: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Official hashes of cells that all have the same vertex count (no pruning)."""
    n = adj.shape[1]
    hexes = _initial_hashes(adj, labels)
    messages = _Messages(adj)
    for _ in range(n):
        hexes = _digests_to_hex(_md5_all(messages.fill(hexes), *messages.bounds))
    return _fingerprints(hexes, n)


def _chunks(adj: np.ndarray, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Same-size cells split into memory-bounded batches."""
    return [(adj[s : s + _CHUNK].astype(bool), labels[s : s + _CHUNK]) for s in range(0, adj.shape[0], _CHUNK)]


def _hash_chunks(chunks: list[tuple[np.ndarray, np.ndarray]], workers: int = 1) -> np.ndarray:
    """Hashes of every batch, concatenated in order; md5 is CPU-bound, so batches may go to processes.

    "spawn" rather than fork: the caller may hold threads (torch), which fork cannot copy safely.
    """
    if workers > 1 and len(chunks) > 2:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            parts = list(pool.map(_hash_chunk, *zip(*chunks)))
    else:
        parts = [_hash_chunk(a, lab) for a, lab in chunks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype="U32")


def default_workers() -> int:
    """Processes for hashing: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _labels_of(ops: np.ndarray) -> np.ndarray:
    """Official labels of same-size cells (C, n), refusing cells that are not input-ops-output."""
    ops = ops.astype(np.int64)
    middle = ops[:, 1:-1]
    if (
        (ops[:, 0] != INPUT_TYPE).any()
        or (ops[:, -1] != OUTPUT_TYPE).any()
        or ((middle < FIRST_OP) | (middle >= FIRST_OP + len(OPS))).any()
    ):
        raise ArchError("a cell is not input, NAS-Bench-101 operations, output")
    labels = ops - FIRST_OP
    labels[:, 0], labels[:, -1] = INPUT_LABEL, OUTPUT_LABEL
    return labels


def hash_arrays(ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Official hashes of padded, already pruned cells (a `Dataset`'s arrays), vectorised.

    Pruning is not repeated here: callers pass canonical cells, as stored in datasets.
    """
    hashes = np.zeros(len(n_nodes), dtype="U32")
    for n in np.unique(n_nodes).tolist():
        idx = np.nonzero(n_nodes == n)[0]
        chunks = _chunks(adj[idx, :n, :n], _labels_of(ops[idx, :n]))
        hashes[idx] = _hash_chunks(chunks, default_workers() if workers is None else workers)
    return hashes


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
    chunks = [chunk for a, lab in blocks for chunk in _chunks(a, lab)]
    hashes = _hash_chunks(chunks, default_workers() if workers is None else workers)
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
