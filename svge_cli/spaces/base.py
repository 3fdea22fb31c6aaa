"""What every search space provides: vocabulary, validity, hashing, native text, enumeration."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from typing import Iterator

import numpy as np

from svge_cli.arch import Arch, ArchError, one_hot_cells
from svge_cli.artifacts import Dataset
from svge_cli.train_config import LAPTOP, TrainConfig, paper_config


class SearchSpace(ABC):
    """A search space is data (vocabulary, node limit) plus a few pure functions.

    ``node_types[0]`` is ``"input"`` and ``node_types[1]`` is ``"output"``; the rest
    are the operations, in the order their indices are stored in files and tensors.
    """

    name: str
    node_types: tuple[str, ...]
    max_nodes: int
    #: True when `enumerate` lists the whole space (NB101, NB201); False for sampled spaces (ENAS).
    enumerable: bool
    #: short description for `svge --help` and `svge data info`
    description: str
    #: unique cells in the space, None when it is too large to list
    size: int | None = None
    #: edge limit of a cell, None when the space has none
    max_edges: int | None = None
    #: a simple cell in native text: the default start of a circle ("flat net")
    chain_cell: str
    #: the label column searches and fine-tuning maximise unless --target says otherwise
    default_target: str | None = None
    #: `svge train-vae`'s schedule, the paper's, and the size of the default training subset (None: all)
    default_schedule: TrainConfig = LAPTOP
    paper_schedule: TrainConfig = paper_config(batch_size=32)
    default_train_limit: int | None = None
    #: cells are a chain of layers (ENAS): a depth in layers is nodes - 2
    layered: bool = False

    @property
    def vocab_size(self) -> int:
        return len(self.node_types)

    def type_index(self, name: str) -> int:
        """Index of an op name; accepts the names in `node_types` and `aliases`."""
        name = self.aliases().get(name, name)
        try:
            return self.node_types.index(name)
        except ValueError:
            raise ArchError(
                f"unknown op {name!r} for space {self.name} (known: {', '.join(self.node_types)})"
            ) from None

    def aliases(self) -> dict[str, str]:
        """Other spellings of op names that text input may use."""
        return {}

    @abstractmethod
    def validate(self, arch: Arch, node_limit: int | None = None) -> str | None:
        """The reason `arch` is not a valid cell of this space, or None when it is.

        `node_limit` replaces the space's own node limit (extrapolation to larger
        cells keeps every other rule of the space).
        """

    def is_valid(self, arch: Arch, node_limit: int | None = None) -> bool:
        return self.validate(arch, node_limit) is None

    def dag_error(self, arch: Arch) -> str | None:
        """Why a decoded `arch` is not a valid DAG in the paper's sense (Table I validity), or None.

        The paper counts decodes that are computation graphs of the space's node types.
        Where a cell's shape is fixed (ENAS, NB201, most user spaces) that is the
        space's own rule; NB101 relaxes it (see its override).
        """
        return self.validate(self.canonical(arch))

    def check(self, arch: Arch, node_limit: int | None = None) -> Arch:
        """`arch` in canonical form, or ArchError naming the broken rule."""
        arch = self.canonical(arch)
        reason = self.validate(arch, node_limit)
        if reason is not None:
            raise ArchError(reason)
        return arch

    def canonical(self, arch: Arch) -> Arch:
        """The form used for training and lookup (NB101 prunes dangling vertices)."""
        return arch

    @abstractmethod
    def hash(self, arch: Arch) -> str:
        """Canonical hash: equal for cells that the space considers the same cell."""

    @abstractmethod
    def parse_native(self, text: str) -> Arch:
        """Parse the space's native string; ArchError when it is malformed."""

    @abstractmethod
    def format_native(self, arch: Arch) -> str:
        """The space's native string for a valid cell."""

    def enumerate(self) -> Iterator[Arch]:
        """Every unique cell of the space (only when `enumerable`)."""
        raise ArchError(f"space {self.name} cannot be enumerated; sample it instead")

    def enumerate_dataset(self) -> Dataset:
        """The enumeration as a dataset with its hash column (spaces may add label columns)."""
        archs = list(self.enumerate())
        return Dataset.from_archs(self.name, archs, [self.hash(a) for a in archs], self.max_nodes)

    def default_dataset(self) -> Dataset:
        """The embedded training set used when nothing was imported: the whole space by default."""
        return self.enumerate_dataset()

    def one_hot(self, ops: np.ndarray, adj: np.ndarray) -> np.ndarray:
        """Padded cells as the space's one-hot encoding (`arch.one_hot_cells` at the space's width)."""
        return one_hot_cells(ops, adj, self.vocab_size, self.max_nodes)

    def sample(self, n: int, seed: int) -> list[Arch]:
        """`n` distinct cells drawn uniformly from the enumeration (spaces that cannot be listed override it)."""
        return draw_cells(self._listing, n, seed)

    @functools.cached_property
    def _listing(self) -> Dataset:
        """The enumeration, built once per process for draws (NB101's takes seconds to hash); read only."""
        return self.enumerate_dataset()

    def ops_names(self, arch: Arch) -> list[str]:
        return [self.node_types[int(t)] if 0 <= int(t) < self.vocab_size else f"?{int(t)}" for t in arch.ops]


def draw_cells(ds: Dataset, n: int, seed: int) -> list[Arch]:
    """`n` distinct cells of `ds` drawn uniformly (all of them, shuffled, when it holds fewer): the one
    random draw of every listable space, from its enumeration or from the workspace's cached copy.

    Args:
        ds: the cells to draw from, usually a space's full enumeration.
        n: how many cells to draw.
        seed: seeds the draw; the same seed and dataset give the same cells in the same order.

    Returns:
        min(n, len(ds)) distinct cells, in random order.
    """
    idx = np.random.default_rng(seed).choice(len(ds), size=min(n, len(ds)), replace=False)
    return list(ds.archs(idx))
