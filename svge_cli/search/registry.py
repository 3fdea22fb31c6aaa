"""The strategies of `svge bo`, each registered by its own module.

A strategy module decorates one builder with `register`: its name, a line of help, its
default batch and whether it needs the space's enumeration.  The CLI's `--strategy` choices and
help, and the runner's dispatch, are read from here, so adding a strategy is one new module
(imported in `search.catalog`) plus its test.

A builder gets the `SearchContext` (workspace, space, table, objective, enumeration,
checkpoint) and the user's request, encodes what every trial shares once, and returns the
strategy of one trial given its seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svge_cli.artifacts import Checkpoint, Dataset
from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.search.objectives import Objective
from svge_cli.search.strategies import Strategy
from svge_cli.spaces import SearchSpace


@dataclass(frozen=True)
class SearchContext:
    """What a strategy is built from: the workspace's space, table, objective, cell list and checkpoint."""

    ui: Ui
    space: SearchSpace
    table: Dataset | None
    target: str | None
    objective: Objective
    pool: Dataset | None  # every cell of an enumerable space
    source: tuple[Checkpoint, Path] | None  # the checkpoint and where it lies


Builder = Callable[[SearchContext, Any], Callable[[int], Strategy]]


@dataclass(frozen=True)
class StrategyEntry:
    """A registered strategy: how the CLI offers it and how a search builds it."""

    name: str
    summary: str  # one line: `svge bo --help` and docs/bo.md
    batch: int  # cells a round proposes by default
    rank: int  # place in the CLI's list
    needs_pool: bool
    build: Builder


_ENTRIES: dict[str, StrategyEntry] = {}


def register(name: str, summary: str, batch: int, rank: int, needs_pool: bool = False) -> Callable[[Builder], Builder]:
    """Decorate a strategy's builder to offer it as `svge bo --strategy NAME`.

    Args:
        name: the strategy's name on the command line and in results files; registered once only.
        summary: one line of help, shown by `svge bo --help`.
        batch: cells a round proposes unless the user gives ``--batch``.
        rank: the strategy's place in the CLI's list, lowest first (ties by name).
        needs_pool: whether it only runs on a space that can be enumerated.

    Returns:
        The decorator, which records the builder and gives it back unchanged.
    """

    def add(build: Builder) -> Builder:
        if name in _ENTRIES:
            raise ValueError(f"strategy {name!r} registered twice")  # a programming error, at import
        _ENTRIES[name] = StrategyEntry(name, summary, batch, rank, needs_pool, build)
        return build

    return add


def entries() -> list[StrategyEntry]:
    """Every registered strategy, in the CLI's order."""
    return sorted(_ENTRIES.values(), key=lambda e: (e.rank, e.name))


def entry(name: str) -> StrategyEntry:
    if name not in _ENTRIES:
        raise SvgeError(f"unknown strategy {name!r} (known: {', '.join(e.name for e in entries())})")
    return _ENTRIES[name]
