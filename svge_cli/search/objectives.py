"""What a proposed cell scores: a benchmark table, an external evaluator, or a surrogate regressor.

Every objective answers a batch of cells with one `Outcome` per cell, in order.
A cell that could not be scored (missing from the table, an evaluator that
crashed, timed out or answered nonsense) gets ``score=None`` and a note saying
why: the search records it and goes on, and no score already obtained is lost.

The evaluator protocol (see examples/evaluator.py and `tasks`): the command is
started once per cell, without a shell; it reads the cell as one JSON line on
stdin (the cell as ``svge encode`` reads it, plus ``"native"``, the space's own
string) and writes one answer on stdout: a number, or a JSON object with a
finite ``score`` and any other fields.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from svge_cli.arch import Arch, one_hot_cells, pad_batch
from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.model.regressor import Regressor
from svge_cli.model.scaling import Scaler
from svge_cli.search.tasks import CellTask, run_cell
from svge_cli.spaces import SearchSpace
from svge_cli.storage.archtext import format_arch

DEFAULT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Outcome:
    score: float | None
    note: str | None = None  # why there is no score, or where it came from
    extra: dict | None = None  # what else an evaluator answered (its cost, say)


class Objective(Protocol):
    name: str  # benchmark | evaluator | surrogate
    description: str  # one line for tables and results files

    def evaluate(self, space: SearchSpace, archs: Sequence[Arch]) -> list[Outcome]: ...


def default_target(space: SearchSpace, table: Dataset) -> str:
    """The space's usual column when the table has it, else the table's only label column."""
    want = space.default_target
    if want in table.labels:
        return want
    if len(table.labels) == 1:
        return next(iter(table.labels))
    raise SvgeError(f"which label column to maximise? pass --target (columns: {', '.join(table.labels) or 'none'})")


def target_column(table: Dataset, target: str) -> np.ndarray:
    if target not in table.labels:
        raise SvgeError(f"the dataset has no label column {target!r} (columns: {', '.join(table.labels) or 'none'})")
    return table.labels[target]


def covers_space(space: SearchSpace, table: Dataset, target: str) -> bool:
    """Whether the table labels every cell of the space, so that lookups can stand in for training.

    Args:
        space: the search space; one of unknown size is never covered.
        table: the benchmark table whose rows are counted by distinct canonical hash.
        target: the label column; only rows with a finite value in it count.

    Returns:
        True when the table has a finite `target` for at least as many distinct cells as the space holds.
    """
    if space.size is None:
        return False
    labelled = np.isfinite(target_column(table, target))
    return len(np.unique(table.hashes[labelled])) >= space.size


def lookup_table(table: Dataset, target: str) -> dict[str, float]:
    """Canonical hash -> score for every row with a finite score (NaN cells are left out)."""
    values = target_column(table, target)
    keep = np.isfinite(values)
    return dict(zip(table.hashes[keep].tolist(), values[keep].tolist()))


# ---------------------------------------------------------------- benchmark


@dataclass
class BenchmarkObjective:
    """Scores looked up in an imported benchmark table by the cell's canonical hash."""

    table: Dataset
    target: str
    name: str = "benchmark"
    scores: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.scores = lookup_table(self.table, self.target)

    @property
    def description(self) -> str:
        return f"benchmark table lookup of {self.target!r} ({len(self.scores):,} cells)"

    def evaluate(self, space: SearchSpace, archs: Sequence[Arch]) -> list[Outcome]:
        out = []
        for arch in archs:
            score = self.scores.get(space.hash(arch))
            out.append(
                Outcome(score)
                if score is not None
                else Outcome(None, f"not in the benchmark table (no {self.target!r} for this cell)")
            )
        return out


# ---------------------------------------------------------------- zero-cost proxy

PROXY_PREFIX = "proxy:"
#: the proxy a search falls back on without a table or an evaluator: the best single proxy on
#: NB201 in Abdelfattah et al. (2021) and in docs/networks.md, data-free, ~10+ cells/s on a CPU
DEFAULT_PROXY = "synflow"


@dataclass
class ProxyObjective:
    """A zero-cost proxy of each cell's network at initialisation (`svge_cli.networks.proxies`)."""

    proxy: str
    seed: int = 0
    name: str = "proxy"

    def __post_init__(self) -> None:
        from svge_cli.networks.proxies import check_proxy

        check_proxy(self.proxy)

    @property
    def description(self) -> str:
        return f"zero-cost proxy {self.proxy} of each cell's untrained network (a proxy, not an accuracy)"

    def evaluate(self, space: SearchSpace, archs: Sequence[Arch]) -> list[Outcome]:
        from svge_cli.networks.proxies import proxy_scores

        scores = proxy_scores(space, list(archs), self.proxy, self.seed)
        return [Outcome(float(s)) if np.isfinite(s) else Outcome(None, f"{self.proxy} is not finite") for s in scores]


# ---------------------------------------------------------------- external evaluator


@dataclass
class EvaluatorObjective:
    """An external program: cells as JSON lines on stdin, one score per line on stdout."""

    command: str
    timeout: float | None = DEFAULT_TIMEOUT  # seconds per cell; None = no limit
    name: str = "evaluator"
    argv: list[str] = field(init=False)

    def __post_init__(self) -> None:
        try:
            self.argv = shlex.split(self.command)
        except ValueError as e:
            raise SvgeError(f"--evaluator {self.command!r}: cannot split into words ({e})") from None
        if not self.argv:
            raise SvgeError("--evaluator needs a command")
        if shutil.which(self.argv[0]) is None:
            raise SvgeError(f"--evaluator: cannot start {self.argv[0]!r} (no such program, or not executable)")

    @property
    def description(self) -> str:
        return f"external evaluator `{self.command}`"

    def task(self, space: SearchSpace, arch: Arch) -> CellTask:
        """The task that evaluates one cell (on a worker, or here)."""
        line = format_arch(arch, space, "jsonl", {"native": space.format_native(arch)})
        return CellTask(tuple(self.argv), line, self.timeout)

    def evaluate(self, space: SearchSpace, archs: Sequence[Arch]) -> list[Outcome]:
        """One start of the evaluator per cell, here and in turn."""
        return [outcome_of(run_cell(self.task(space, a))) for a in archs]


def outcome_of(result: dict) -> Outcome:
    """A task's answer as an objective's outcome."""
    if result["ok"]:
        return Outcome(result["score"], extra=result.get("extra") or None)
    return Outcome(None, result["reason"])


# ---------------------------------------------------------------- surrogate


SURROGATE_HIDDEN = 128
SURROGATE_EPOCHS = 300
SURROGATE_LR = 3e-3


@dataclass
class SurrogateObjective:
    """A regressor fitted on the labelled table scores cells the table lacks; table cells keep their label.

    The regressor (an MLP on one-hot node types and adjacency bits) deliberately does
    not use the VAE's latent space, so BO cannot simply exploit its own features.
    Every score it produces is marked as a surrogate prediction.
    """

    table: Dataset
    target: str
    vocab: int
    seed: int = 0
    name: str = "surrogate"
    scores: dict[str, float] = field(init=False)
    width: int = field(init=False)

    def __post_init__(self) -> None:
        self.scores = lookup_table(self.table, self.target)
        self.width = self.table.adj.shape[1]
        values = target_column(self.table, self.target)
        keep = np.isfinite(values)
        if keep.sum() < 2:
            raise SvgeError(f"the surrogate needs labelled cells, and {self.target!r} has {int(keep.sum())}")
        feats = one_hot_cells(self.table.ops[keep], self.table.adj[keep], self.vocab, self.width)
        self._net, self._scale = _fit_mlp(feats, values[keep], self.seed)

    @property
    def description(self) -> str:
        return (
            f"SURROGATE predictions of {self.target!r} (an MLP fitted on {len(self.scores):,} labelled cells; "
            "cells in the table keep their label)"
        )

    def evaluate(self, space: SearchSpace, archs: Sequence[Arch]) -> list[Outcome]:
        if not archs:
            return []
        known = [self.scores.get(space.hash(a)) for a in archs]
        ops, adj, _ = pad_batch(list(archs), self.width)
        with torch.no_grad():
            pred = self._net(torch.as_tensor(one_hot_cells(ops, adj, self.vocab, self.width))).numpy()
        pred = self._scale.inverse(pred)
        return [
            Outcome(k, "label from the table") if k is not None else Outcome(float(p), "surrogate prediction")
            for k, p in zip(known, pred)
        ]


def _fit_mlp(feats: np.ndarray, values: np.ndarray, seed: int) -> tuple[Regressor, Scaler]:
    """svge's MLP regressor (two hidden layers of SURROGATE_HIDDEN) trained on standardised targets in
    mini-batches (seconds for ~20k cells)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    scale = Scaler.fit(values)
    x = torch.as_tensor(feats)
    y = torch.as_tensor(scale.forward(values), dtype=torch.float32)
    net = Regressor(x.shape[1], (SURROGATE_HIDDEN, SURROGATE_HIDDEN))
    opt = torch.optim.Adam(net.parameters(), lr=SURROGATE_LR, weight_decay=1e-5)
    batch = 512
    for _ in range(SURROGATE_EPOCHS):
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
    return net.eval(), scale


# ---------------------------------------------------------------- the registry of `--objective`


@dataclass(frozen=True)
class ObjectiveInputs:
    """What an objective named by `--objective` is built from."""

    space: SearchSpace
    table: Dataset | None
    target: str | None
    seed: int
    argument: str | None = None  # NAME of `proxy:NAME`


@dataclass(frozen=True)
class ObjectiveKind:
    """An objective `svge bo --objective` offers: its name, its help, and how it is built."""

    name: str
    summary: str  # `svge bo --help`
    needs_table: bool  # a labelled table of the space in the workspace
    build: Callable[[ObjectiveInputs], Objective]
    argument: str | None = None  # the metavar of `name:ARGUMENT`, for objectives that take one

    @property
    def choice(self) -> str:
        return f"{self.name}:{self.argument}" if self.argument else self.name


OBJECTIVE_KINDS: dict[str, ObjectiveKind] = {
    kind.name: kind
    for kind in (
        ObjectiveKind(
            "benchmark",
            "look cells up in the imported table",
            True,
            lambda c: BenchmarkObjective(c.table, c.target),
        ),
        ObjectiveKind(
            "surrogate",
            "a regressor fitted on it",
            True,
            lambda c: SurrogateObjective(c.table, c.target, c.space.vocab_size, c.seed),
        ),
        ObjectiveKind(
            PROXY_PREFIX.rstrip(":"),
            "a zero-cost proxy of the cell's network (`svge score --help` lists them)",
            False,
            lambda c: ProxyObjective(c.argument, c.seed),
            argument="NAME",
        ),
    )
}


def parse_objective(value: str) -> tuple[ObjectiveKind, str | None]:
    """The kind and argument `--objective VALUE` names; SvgeError for an unknown one or a bad argument."""
    name, _, argument = value.partition(":")
    kind = OBJECTIVE_KINDS.get(name)
    if kind is None or bool(kind.argument) != bool(argument):
        raise SvgeError(f"{value!r} is not one of {', '.join(k.choice for k in OBJECTIVE_KINDS.values())}")
    if name == ProxyObjective.name:
        from svge_cli.networks.proxies import check_proxy

        check_proxy(argument)
    return kind, argument or None
