"""ENAS macro space as D-VAE uses it ("final_structures6"): a chain of layers with skips.

A native row is D-VAE's nested list ``[[op_0], [op_1, s_0], [op_2, s_0, s_1], ...]``.
Layer i is DAG node i + 1 with type ``op_i + 2``; node i always feeds node i + 1,
node j also feeds node i + 1 when ``s_j == 1`` (j = 0 is the input node, as in
D-VAE's ``decode_ENAS_to_igraph``), and the last layer feeds the output.

Op order 0..5 (ENAS's ``general_child._enas_layer`` branches, and the labels of
D-VAE's ``util.add_node`` for types 2..7): conv 3x3, separable conv 3x3,
conv 5x5, separable conv 5x5, avg pool 3x3, max pool 3x3.  D-VAE's short labels
(conv3, sep3, conv5, sep5, avg3, max3) are accepted as aliases.

The hash is the md5 of the native row: the row spells out every op and edge,
so two rows are the same cell exactly when their strings are equal.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from svge_cli.arch import INPUT_TYPE, OUTPUT_TYPE, Arch, ArchError
from svge_cli.artifacts import SPLIT_TEST, SPLIT_TRAIN, Dataset
from svge_cli.spaces.base import SearchSpace

OPS = ("conv3x3", "sepconv3x3", "conv5x5", "sepconv5x5", "avgpool3x3", "maxpool3x3")
DVAE_LABELS = ("conv3", "sep3", "conv5", "sep5", "avg3", "max3")
OP_OFFSET = 2  # op k has node type k + 2 (0 = input, 1 = output)
DEFAULT_LAYERS = 6
#: size of the embedded default dataset: as many cells as D-VAE trains and tests on
DEFAULT_CELLS = 19_020
TRAIN_SHARE = 0.9


class EnasSpace(SearchSpace):
    name = "enas"
    node_types = ("input", "output") + OPS
    max_nodes = DEFAULT_LAYERS + 2
    enumerable = False
    chain_cell = "[[1], [1, 0], [1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]"
    default_target = "ws_acc"
    layered = True
    description = "ENAS macro cells (D-VAE's final_structures6: 6 layers, 6 ops, skip connections)"

    def aliases(self) -> dict[str, str]:
        return dict(zip(DVAE_LABELS, OPS))

    # ---------------------------------------------------------------- rows <-> Arch

    def from_row(self, row: Any) -> Arch:
        """The DAG of a decoded D-VAE row (a list of lists of ints); ArchError naming what is wrong."""
        if not isinstance(row, list) or not row:
            raise ArchError("an ENAS row is a non-empty list of layers like [[1], [4, 0], ...]")
        n = len(row) + 2
        ops = np.empty(n, dtype=np.int64)
        ops[0], ops[-1] = INPUT_TYPE, OUTPUT_TYPE
        adj = np.zeros((n, n), dtype=np.uint8)
        for i, layer in enumerate(row):
            op, skips = _split_layer(i, layer)
            ops[i + 1] = op + OP_OFFSET
            adj[:i, i + 1] = skips
            adj[i, i + 1] = 1
        adj[n - 2, n - 1] = 1
        return Arch(ops, adj)

    def to_row(self, arch: Arch) -> list[list[int]]:
        """D-VAE's nested list for a cell (the inverse of `from_row` on valid cells)."""
        layers = arch.n_nodes - 2
        return [[int(arch.ops[i + 1]) - OP_OFFSET] + [int(b) for b in arch.adj[:i, i + 1]] for i in range(layers)]

    def parse_native(self, text: str) -> Arch:
        try:
            row = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ArchError(
                f"not an ENAS row (expected a nested list like [[1], [4, 0], ...]): {text.strip()[:80]!r}"
            ) from None
        return self.from_row(row)

    def format_native(self, arch: Arch) -> str:
        return json.dumps(self.to_row(arch))

    # ---------------------------------------------------------------- rules

    def validate(self, arch: Arch, node_limit: int | None = None) -> str | None:
        n, ops, adj = arch.n_nodes, arch.ops, arch.adj
        limit = node_limit or self.max_nodes
        if n > limit:
            return f"{n} nodes, more than the {limit} allowed (pass a larger node limit for bigger cells)"
        if n < 3:
            return "an ENAS cell needs at least one layer between input and output"
        if ops[0] != INPUT_TYPE or ops[-1] != OUTPUT_TYPE:
            return "node 0 must be the input and the last node the output"
        middle = ops[1:-1]
        if np.any(middle < OP_OFFSET) or np.any(middle >= self.vocab_size):
            return f"layer nodes must carry one of {', '.join(OPS)}"
        broken = [i for i in range(n - 1) if not adj[i, i + 1]]
        if broken:
            return f"node {broken[0]} does not feed node {broken[0] + 1} (ENAS layers form a chain)"
        if adj[:, n - 1].sum() != 1:
            return "the output must be fed by the last layer only"
        return None

    def hash(self, arch: Arch) -> str:
        return hashlib.md5(self.format_native(arch).encode()).hexdigest()

    # ---------------------------------------------------------------- sampling

    def sample(self, n: int, seed: int, layers: int = DEFAULT_LAYERS) -> list[Arch]:
        """`n` cells with i.i.d. uniform ops and skip bits (duplicates possible, as in ENAS).

        Args:
            n: how many cells to draw.
            seed: seeds the draw.
            layers: operation nodes per cell (input and output come on top); at least 1.

        Returns:
            The cells, `layers` + 2 nodes each.
        """
        return _draw(np.random.default_rng(seed), n, layers)

    def default_dataset(self, seed: int = 0, n: int = DEFAULT_CELLS) -> Dataset:
        """`n` distinct sampled 6-layer cells, first 90% train, rest test (the embedded default).

        D-VAE's file repeats some cells; here duplicates are drawn again instead, so
        no cell sits in both train and test.  The draws are i.i.d., so taking the
        first 90% as the training set is already a random split.
        """
        rng = np.random.default_rng(seed)
        cells: dict[bytes, Arch] = {}
        while len(cells) < n:
            for arch in _draw(rng, n - len(cells), DEFAULT_LAYERS):
                cells.setdefault(arch.key(), arch)
        archs = list(cells.values())
        split = np.full(n, SPLIT_TEST, dtype=np.int8)
        split[: int(TRAIN_SHARE * n)] = SPLIT_TRAIN
        return Dataset.from_archs(
            self.name,
            archs,
            [self.hash(a) for a in archs],
            self.max_nodes,
            split=split,
            source=f"enas: {n} uniform samples, seed {seed}",
        )


def _split_layer(i: int, layer: Any) -> tuple[int, list[int]]:
    """(op, skip bits) of entry i, checking its length and values."""
    if not isinstance(layer, list) or len(layer) != i + 1:
        raise ArchError(f"layer {i} must be a list [op, {i} skip bits], got {layer!r}")
    if any(type(v) is not int for v in layer):
        raise ArchError(f"layer {i} must hold integers, got {layer!r}")
    op, skips = layer[0], layer[1:]
    if not 0 <= op < len(OPS):
        raise ArchError(f"layer {i}: op {op} is not one of 0..{len(OPS) - 1}")
    if any(b not in (0, 1) for b in skips):
        raise ArchError(f"layer {i}: skip bits must be 0 or 1, got {skips}")
    return op, skips


def _draw(rng: np.random.Generator, n: int, layers: int) -> list[Arch]:
    """`n` random cells: ops uniform over the 6, each possible skip present with probability 1/2."""
    if layers < 1:
        raise ArchError("an ENAS cell needs at least one layer")
    size = layers + 2
    ops = np.empty((n, size), dtype=np.int64)
    ops[:, 0], ops[:, -1] = INPUT_TYPE, OUTPUT_TYPE
    ops[:, 1:-1] = rng.integers(0, len(OPS), size=(n, layers)) + OP_OFFSET
    # skips may join node j to layer node k when 2 <= k <= layers and j <= k - 2
    rows, cols = np.triu_indices(size, k=2)
    keep = cols <= layers
    rows, cols = rows[keep], cols[keep]
    adj = np.zeros((n, size, size), dtype=np.uint8)
    adj[:, rows, cols] = rng.integers(0, 2, size=(n, rows.size), dtype=np.uint8)
    chain = np.arange(size - 1)
    adj[:, chain, chain + 1] = 1
    return [Arch(ops[b], adj[b]) for b in range(n)]
