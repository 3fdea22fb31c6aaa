"""NAS-Bench-101's pruning and official graph hash, per cell and vectorised over many cells.

The hash is the official ``ModelSpec.hash_spec``: iterated MD5 of sorted in/out degrees and neighbour
hashes, seeded with each vertex's label (-1 input, -2 output, the op index for middle vertices).
`hash_arrays` computes exactly the same strings for padded arrays of cells, a batch of equal-sized cells
at a time, optionally over worker processes (the 423,624-cell enumeration hashes in seconds).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from operator import methodcaller
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from svge_cli.arch import INPUT_TYPE, OUTPUT_TYPE, Arch, ArchError

OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT_LABEL, OUTPUT_LABEL = -1, -2
FIRST_OP = 2  # node-type index of OPS[0]; the official label of a middle vertex is type - FIRST_OP

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


def chunked(adj: np.ndarray, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Same-size cells split into memory-bounded batches."""
    return [(adj[s : s + _CHUNK].astype(bool), labels[s : s + _CHUNK]) for s in range(0, adj.shape[0], _CHUNK)]


def hash_chunks(chunks: list[tuple[np.ndarray, np.ndarray]], workers: int = 1) -> np.ndarray:
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

    Args:
        ops: node types, (M, N) padded with -1; each cell input, NB101 operations, output.
        adj: adjacency matrices, (M, N, N).
        n_nodes: real node count of each cell, (M,).
        workers: processes that compute the md5 hashes; None uses every CPU this process may run on.

    Returns:
        One 32-character hex hash per cell, (M,) str, the hash NAS-Bench-101 itself gives the cell.

    Raises:
        ArchError: when a cell is not input, NAS-Bench-101 operations, output.
    """
    hashes = np.zeros(len(n_nodes), dtype="U32")
    for n in np.unique(n_nodes).tolist():
        idx = np.nonzero(n_nodes == n)[0]
        chunks = chunked(adj[idx, :n, :n], _labels_of(ops[idx, :n]))
        hashes[idx] = hash_chunks(chunks, default_workers() if workers is None else workers)
    return hashes
