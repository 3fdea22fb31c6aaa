"""User-defined cell spaces, declared in a JSON file (format in docs/spaces.md).

A researcher's own space is usually "cells of at most N nodes whose middle nodes
carry one of these operations", sometimes with an edge budget and NB101's rule
that every node lies on an input -> output path.  That is all svge needs to
sample, train on, encode, decode and search such a space.  Cells are written as
JSON lines; isomorphic cells share NAS-Bench-101's graph hash (computed on the
space's own labels), so duplicates are recognised whatever their node order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from svge_cli.arch import INPUT_TYPE, OUTPUT_TYPE, Arch, ArchError, is_connected_dag
from svge_cli.artifacts import Dataset
from svge_cli.spaces.base import SearchSpace
from svge_cli.spaces.nb101_hash import graph_hash, prune

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
RESERVED = ("input", "output")
#: cells sampled for the embedded training set unless the spec says `default_cells`
DEFAULT_CELLS = 20_000
#: sampling stops after this many draws in a row found nothing new (times the cells found so far,
#: at least MIN_FRUITLESS): the space then holds few more distinct cells, if any
DRAWS_PER_CELL = 5
MIN_FRUITLESS = 2_000
#: the most nodes a user cell may have: sampled, hashed, trained and decoded in tests up to here; a
#: training step of 32 such cells takes ~17 s on one CPU core (docs/spaces.md has the measurements)
MAX_NODES = 64
#: operations a user space may declare: node types are stored as int8, input and output included
MAX_OPS = 125


class CellSpace(SearchSpace):
    """A space of node-labelled DAG cells declared by a spec (see `from_spec`).

    Args:
        name: the space's name, as cells and files record it.
        ops: the middle nodes' operation names, in vocabulary order.
        max_nodes: the largest cell, input and output included.
        max_edges: the most edges a cell may have; None for no limit.
        single_io: every node must lie on a path from the input to the output.
        default_cells: how many cells a generated training set holds by default.
        default_target: the metric searched by default; None when the space declares none.
    """

    enumerable = False

    def __init__(
        self,
        name: str,
        ops: list[str],
        max_nodes: int,
        max_edges: int | None,
        single_io: bool,
        default_cells: int = DEFAULT_CELLS,
        default_target: str | None = None,
    ) -> None:
        self.name = name
        self.node_types = (*RESERVED, *ops)
        self.max_nodes = max_nodes
        self.max_edges = max_edges
        self.single_io = single_io
        self.default_cells = default_cells
        self.default_target = default_target
        self.description = (
            f"user space: {len(ops)} ops, <= {max_nodes} nodes"
            + (f", <= {max_edges} edges" if max_edges is not None else "")
            + (", every node on an input-output path" if single_io else "")
        )
        chain = np.eye(3, k=1, dtype=np.uint8)
        self.chain_cell = json.dumps({"space": name, "ops": [RESERVED[0], ops[0], RESERVED[1]], "adj": chain.tolist()})

    def validate(self, arch: Arch, node_limit: int | None = None) -> str | None:
        limit = node_limit or self.max_nodes
        if arch.n_nodes > limit:
            return f"the cell has {arch.n_nodes} nodes, more than {limit}"
        middle = arch.ops[1:-1]
        if np.any((middle < len(RESERVED)) | (middle >= self.vocab_size)):
            return f"middle nodes must carry one of {', '.join(self.node_types[2:])}"
        if self.max_edges is not None and arch.n_edges > self.max_edges:
            return f"the cell has {arch.n_edges} edges, more than {self.max_edges}"
        if self.single_io:
            return is_connected_dag(arch)
        if arch.ops[0] != INPUT_TYPE or arch.ops[-1] != OUTPUT_TYPE:
            return "the first node must be the input and the last the output"
        if prune(arch) is None:
            return "the output is not reachable from the input"
        return None

    def hash(self, arch: Arch) -> str:
        return graph_hash(arch.adj, arch.ops.tolist())

    def parse_native(self, text: str) -> Arch:
        """A user space's text is its JSON line (no other notation exists for it)."""
        from svge_cli.spaces.jsonline import parse_json_arch

        if not text.lstrip().startswith("{"):
            raise ArchError(f"cells of the user space {self.name} are written as JSON lines")
        return parse_json_arch(text, self)[0]

    def format_native(self, arch: Arch) -> str:
        return json.dumps({"space": self.name, "ops": self.ops_names(arch), "adj": arch.adj.tolist()})

    def sample(self, n: int, seed: int) -> list[Arch]:
        """Up to `n` distinct valid cells: uniform labelled DAGs, rejected when invalid or seen.

        Each draw picks the node count in proportion to how many labelled DAGs it
        allows, so every valid labelled matrix is equally likely; a small space may
        hold fewer than `n` distinct cells, and then (nearly) all of them come back.
        """
        rng = np.random.default_rng(seed)
        sizes = np.arange(2, self.max_nodes + 1)
        # log of 2^(k(k-1)/2) (vocab - 2)^(k - 2): the weights themselves overflow a float from ~44 nodes
        log_weights = sizes * (sizes - 1) / 2 * np.log(2.0) + (sizes - 2) * np.log(self.vocab_size - 2)
        p = np.exp(log_weights - log_weights.max())
        p /= p.sum()
        found: dict[str, Arch] = {}
        fruitless = 0
        while len(found) < n and fruitless < max(MIN_FRUITLESS, DRAWS_PER_CELL * len(found)):
            k = int(rng.choice(sizes, p=p))
            arch = self._random_cell(rng, k)
            key = None if arch is None else self.hash(arch)
            if key is None or key in found:
                fruitless += 1
                continue
            found[key], fruitless = arch, 0
        return list(found.values())

    def _random_cell(self, rng: np.random.Generator, k: int) -> Arch | None:
        ops = np.concatenate([[INPUT_TYPE], rng.integers(len(RESERVED), self.vocab_size, k - 2), [OUTPUT_TYPE]])
        adj = np.triu(rng.integers(0, 2, (k, k)), k=1).astype(np.uint8)
        arch = Arch(ops, adj)
        return arch if self.validate(arch) is None else None

    def default_dataset(self) -> Dataset:
        """The embedded training set: `default_cells` distinct sampled cells (seed 0)."""
        archs = self.sample(self.default_cells, seed=0)
        return Dataset.from_archs(
            self.name,
            archs,
            [self.hash(a) for a in archs],
            self.max_nodes,
            source=f"{len(archs):,} cells sampled from the user space {self.name}",
        )


def from_spec(spec: Any, where: str) -> CellSpace:
    """The space a parsed JSON spec declares; ArchError naming the first problem."""
    if not isinstance(spec, dict):
        raise ArchError(f"{where}: a space spec is a JSON object")
    unknown = set(spec) - {"name", "ops", "max_nodes", "max_edges", "single_io", "default_cells", "default_target"}
    if unknown:
        raise ArchError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    name, ops = spec.get("name"), spec.get("ops")
    if not isinstance(name, str) or not NAME.match(name):
        raise ArchError(f'{where}: "name" must be lower-case letters, digits, - or _ (at most 40)')
    if (
        not isinstance(ops, list)
        or not ops
        or not all(isinstance(o, str) and o for o in ops)
        or len(set(ops)) != len(ops)
        or set(ops) & set(RESERVED)
    ):
        raise ArchError(f'{where}: "ops" must be a list of distinct operation names (not input/output)')
    if len(ops) > MAX_OPS:
        raise ArchError(f'{where}: "ops" lists {len(ops)} operations, more than the {MAX_OPS} svge can store')
    max_nodes = _int(spec, "max_nodes", where, low=3, high=MAX_NODES)
    max_edges = _int(spec, "max_edges", where, low=1) if "max_edges" in spec else None
    single_io = spec.get("single_io", True)
    if not isinstance(single_io, bool):
        raise ArchError(f'{where}: "single_io" must be true or false')
    cells = _int(spec, "default_cells", where, low=2) if "default_cells" in spec else DEFAULT_CELLS
    target = spec.get("default_target")
    if target is not None and not isinstance(target, str):
        raise ArchError(f'{where}: "default_target" must be a label column name')
    return CellSpace(name, ops, max_nodes, max_edges, single_io, cells, target)


def _int(spec: dict[str, Any], key: str, where: str, low: int, high: int | None = None) -> int:
    value = spec.get(key)
    if type(value) is not int or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"from {low} to {high}"
        raise ArchError(f'{where}: "{key}" must be an integer {bound}')
    return value


def load_spec(path: Path) -> CellSpace:
    """The space declared in the JSON file at `path`."""
    try:
        spec = json.loads(path.read_text())
    except OSError as e:
        raise ArchError(f"{path}: cannot read the space spec ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArchError(f"{path}: not a JSON space spec ({e})") from None
    return from_spec(spec, str(path))
