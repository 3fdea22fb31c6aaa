"""NAS-Bench-201: a 4-node cell whose 6 edges carry one of 5 ops, seen as an 8-node DAG.

SVGe labels nodes, not edges, so each cell edge becomes a node: node 0 is the
input, nodes 1..6 are the edges (0->1), (0->2), (1->2), (0->3), (1->3), (2->3)
and node 7 is the output.  A node feeds every edge-node that leaves the cell
node it enters, so the adjacency is the same for all 15,625 cells and only the
node types vary.

Facts this module reproduces (sources: NAS-Bench-201's ``generate_meta_info``
in D-X-Y/AutoDL-Projects and ``Structure.to_unique_str`` in the same repo):

* benchmark index order: the cells in ``itertools.product`` order over the six
  edges (op order ``none, skip_connect, nor_conv_1x1, nor_conv_3x3,
  avg_pool_3x3``, last edge fastest), shuffled by ``random.seed(88)`` +
  ``random.shuffle`` -- index 0 is
  ``|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|``;
* functional equivalence (NATS-Bench's unique string with zeros considered):
  6,466 classes.

The hash of a cell is its native string itself: it is unique per cell, readable,
and is the key NAS-Bench-201's own files use.
"""

from __future__ import annotations

import functools
import itertools
import random
from typing import Iterator

import numpy as np

from svge_cli.arch import INPUT_TYPE, OUTPUT_TYPE, Arch, ArchError
from svge_cli.artifacts import Dataset
from svge_cli.spaces.base import SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: cell edges (from cell node, to cell node); edge k is DAG node k + 1
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
N_NODES = len(EDGES) + 2
OP_OFFSET = 2  # op k has node type k + 2 (0 = input, 1 = output)
N_CELLS = len(OPS) ** len(EDGES)
#: NAS-Bench-201's shuffle seed for its architecture index (generate_meta_info)
INDEX_SEED = 88
ZERO = "#"  # NATS-Bench's token for a zero tensor


def _fixed_adjacency() -> np.ndarray:
    """The DAG every cell shares, derived from EDGES so the two cannot disagree."""
    adj = np.zeros((N_NODES, N_NODES), dtype=np.uint8)
    out = N_NODES - 1
    for k, (src, dst) in enumerate(EDGES):
        if src == 0:
            adj[0, k + 1] = 1
        if dst == 3:
            adj[k + 1, out] = 1
        for m, (src2, _) in enumerate(EDGES):
            if src2 == dst:
                adj[k + 1, m + 1] = 1
    return adj


ADJ = _fixed_adjacency()
ADJ.setflags(write=False)


@functools.lru_cache(maxsize=1)
def _index_order() -> tuple[tuple[int, ...], ...]:
    """Edge-op tuples in NAS-Bench-201's index order (product order, then its seeded shuffle)."""
    cells = list(itertools.product(range(len(OPS)), repeat=len(EDGES)))
    random.Random(INDEX_SEED).shuffle(cells)
    return tuple(cells)


class NB201Space(SearchSpace):
    name = "nb201"
    node_types = ("input", "output") + OPS
    max_nodes = N_NODES
    enumerable = True
    size = N_CELLS
    chain_cell = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"
    default_target = "cifar10_valid_val"
    description = "NAS-Bench-201 cells (15,625; 6 edges x 5 ops, as 8-node DAGs)"

    # ---------------------------------------------------------------- cells

    def from_edge_ops(self, edge_ops: tuple[int, ...] | list[int]) -> Arch:
        """The DAG of a cell given its 6 edge ops (indices into OPS, in EDGES order)."""
        ops = [INPUT_TYPE] + [int(o) + OP_OFFSET for o in edge_ops] + [OUTPUT_TYPE]
        return Arch(np.asarray(ops), ADJ)

    def edge_ops(self, arch: Arch) -> list[str]:
        """Op names of the 6 cell edges, in EDGES order."""
        return [OPS[int(t) - OP_OFFSET] for t in arch.ops[1:-1]]

    def validate(self, arch: Arch, node_limit: int | None = None) -> str | None:
        # node_limit is accepted for the common interface; the cell shape is fixed.
        if arch.n_nodes != N_NODES:
            return f"an nb201 cell has {N_NODES} nodes, not {arch.n_nodes}"
        if arch.ops[0] != INPUT_TYPE or arch.ops[-1] != OUTPUT_TYPE:
            return "node 0 must be the input and node 7 the output"
        middle = arch.ops[1:-1]
        if np.any(middle < OP_OFFSET) or np.any(middle >= self.vocab_size):
            return f"edge nodes 1-6 must carry one of {', '.join(OPS)}"
        if not np.array_equal(arch.adj, ADJ):
            return "nb201 cells all share one adjacency (rows 0:{1,2,4} 1:{3,5} 2:{6} 3:{6} 4-6:{7})"
        return None

    def hash(self, arch: Arch) -> str:
        return self.format_native(arch)

    # ---------------------------------------------------------------- text

    def parse_native(self, text: str) -> Arch:
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``; inputs may come in any order within a node."""
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise ArchError(f"an nb201 string has 3 '+'-separated nodes, got {len(groups)}: {text.strip()[:80]!r}")
        chosen: dict[tuple[int, int], int] = {}
        for node, group in enumerate(groups, start=1):
            chosen.update(self._parse_node(node, group))
        return self.from_edge_ops([chosen[e] for e in EDGES])

    def _parse_node(self, node: int, group: str) -> dict[tuple[int, int], int]:
        if len(group) < 2 or group[0] != "|" or group[-1] != "|":
            raise ArchError(f"node {node} of an nb201 string must look like |op~0|...|, got {group!r}")
        found: dict[tuple[int, int], int] = {}
        for token in group[1:-1].split("|"):
            op, sep, src = token.partition("~")
            if not sep or not src.isdigit():
                raise ArchError(f"node {node}: expected op~input, got {token!r}")
            edge = (int(src), node)
            if edge not in EDGES:
                raise ArchError(f"node {node}: input {src} does not exist (inputs are 0..{node - 1})")
            if edge in found:
                raise ArchError(f"node {node}: input {src} appears twice")
            if op not in OPS:
                raise ArchError(f"unknown op {op!r} for space nb201 (known: {', '.join(OPS)})")
            found[edge] = OPS.index(op)
        if len(found) != node:
            raise ArchError(f"node {node} needs one op for each of inputs 0..{node - 1}, got {len(found)}")
        return found

    def format_native(self, arch: Arch) -> str:
        ops = dict(zip(EDGES, self.edge_ops(arch)))
        nodes = ("|" + "|".join(f"{ops[(src, dst)]}~{src}" for src in range(dst)) + "|" for dst in (1, 2, 3))
        return "+".join(nodes)

    # ---------------------------------------------------------------- enumeration

    def enumerate(self) -> Iterator[Arch]:
        """All 15,625 cells in NAS-Bench-201's index order (cell i is the benchmark's index i)."""
        for cell in _index_order():
            yield self.from_edge_ops(cell)

    def enumerate_dataset(self) -> Dataset:
        """The whole space with its benchmark `index` and `equiv_class` label columns."""
        archs = list(self.enumerate())
        labels = {
            "index": np.arange(len(archs), dtype=np.float64),
            "equiv_class": self.equivalence_classes(archs).astype(np.float64),
        }
        return Dataset.from_archs(
            self.name,
            archs,
            [self.hash(a) for a in archs],
            self.max_nodes,
            labels=labels,
            source="enumeration of nb201",
        )

    # ---------------------------------------------------------------- functional equivalence

    def equivalence_key(self, arch: Arch) -> str:
        """NATS-Bench's unique string (zeros considered): equal for cells computing the same function.

        Each cell node is the sorted sum of its incoming terms: a ``none`` edge, or
        any edge leaving a node that is exactly zero, contributes the zero token; a
        skip passes its source's expression through; any other op wraps it as
        ``(source)@op``.  As in NATS-Bench, a node whose inputs are all zero keeps
        its ``#+#`` form rather than collapsing to ``#`` -- that is the rule that
        yields the published 6,466 classes (collapsing would give 6,285).
        """
        return _unique_string(self.edge_ops(arch))

    def equivalence_class(self, arch: Arch) -> int:
        """Class id: classes are numbered by first appearance in benchmark index order."""
        return _class_ids()[self.equivalence_key(arch)]

    def equivalence_classes(self, archs: list[Arch]) -> np.ndarray:
        """Class ids of many cells (int64)."""
        ids = _class_ids()
        return np.asarray([ids[self.equivalence_key(a)] for a in archs], dtype=np.int64)


def _unique_string(edge_ops: list[str] | tuple[str, ...]) -> str:
    """NATS-Bench's unique string of a cell given its edge op names in EDGES order."""
    ops = dict(zip(EDGES, edge_ops))
    expr = {0: "0"}
    for dst in (1, 2, 3):
        expr[dst] = "+".join(sorted(_edge_term(ops[(src, dst)], expr[src]) for src in range(dst)))
    return expr[3]


def _edge_term(op: str, source: str) -> str:
    if op == "none" or source == ZERO:
        return ZERO
    if op == "skip_connect":
        return source
    return f"({source})@{op}"


@functools.lru_cache(maxsize=1)
def _class_ids() -> dict[str, int]:
    """Equivalence key -> class id over the whole space (built once, ~0.2 s)."""
    ids: dict[str, int] = {}
    for cell in _index_order():
        ids.setdefault(_unique_string([OPS[o] for o in cell]), len(ids))
    return ids
