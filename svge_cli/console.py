"""What the commands show a person: rich progress and tables on stderr, data on stdout.

Progress and tables go to stderr so that stdout stays clean for pipelines; both
stay quiet when stderr is not a terminal or with --quiet.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from svge_cli.storage.workspace import Workspace


@dataclass
class Ui:
    """Shared state of one invocation: the workspace and how loud to be."""

    workspace: Workspace
    debug: bool = False
    quiet: bool = False
    err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    @property
    def interactive(self) -> bool:
        return not self.quiet and self.err.is_terminal

    def note(self, message: str) -> None:
        """A one-line remark on stderr (where a checkpoint went, a fallback taken)."""
        if not self.quiet:
            self.err.print(message, markup=False, soft_wrap=True)

    def table(self, table: Table) -> None:
        if not self.quiet:
            self.err.print(table)

    @contextmanager
    def progress(self, description: str, total: float | None) -> Iterator["ProgressHandle"]:
        """A progress bar with ETA on a terminal; a no-op otherwise."""
        if not self.interactive:
            yield ProgressHandle(None, None)
            return
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.err,
            transient=False,
        )
        with bar:
            task = bar.add_task(description, total=total, status="")
            yield ProgressHandle(bar, task)


@dataclass
class ProgressHandle:
    bar: Progress | None
    task: Any

    def advance(self, n: float = 1, status: str | None = None) -> None:
        if self.bar is not None:
            kw = {"status": status} if status is not None else {}
            self.bar.update(self.task, advance=n, **kw)


def emit_json(obj: Any) -> None:
    """One JSON object on stdout, for scripts."""
    sys.stdout.write(json.dumps(obj, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def simple_table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A left-titled rich table of plain string cells, so report code need not touch rich's API.

    Args:
        title: caption printed above the table.
        columns: header of each column, left to right.
        rows: the rows, each with one value per column; values are shown via `str`.

    Returns:
        The table, ready to print.
    """
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(x) for x in r])
    return table
