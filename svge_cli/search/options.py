"""What every `svge bo` strategy is asked alike: the user's options and the objective they choose.

`choose_objective` turns `--objective`, `--evaluator` and the workspace's table into the
objective a search scores cells with, defaulting to the table when it labels every cell,
a surrogate fitted on it when it is a sample, and a zero-cost proxy without either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.search.objectives import (
    DEFAULT_PROXY,
    PROXY_PREFIX,
    BenchmarkObjective,
    EvaluatorObjective,
    Objective,
    ProxyObjective,
    SurrogateObjective,
    covers_space,
    default_target,
)
from svge_cli.spaces import SearchSpace

OBJECTIVES = ("benchmark", "surrogate", "proxy:NAME")


@dataclass(frozen=True)
class SearchOptions:
    """What every `svge bo` strategy is asked alike: the model, the objective, the results file."""

    checkpoint: str | None = None
    objective: str | None = None  # benchmark | surrogate | proxy:NAME; None: benchmark when the table covers the space
    evaluator: str | None = None
    evaluator_timeout: float | None = None
    target: str | None = None
    device: str = "auto"
    results: str | None = None
    resume: bool = False
    force: bool = False  # replace an existing results file (and its journal)


def choose_objective(
    sp: SearchSpace, table: Dataset | None, opts: SearchOptions, seed: int, note: Callable[[str], None]
) -> tuple[Objective, str | None]:
    """The objective asked for, or the default: benchmark when the table covers the space, else surrogate.

    With neither a table nor an
    evaluator, a zero-cost proxy stands in (`DEFAULT_PROXY`), and the objective says so.
    """
    if opts.objective is not None and opts.objective.startswith(PROXY_PREFIX):
        if opts.evaluator is not None:
            raise SvgeError("--evaluator is an objective of its own: drop --objective")
        proxy = ProxyObjective(opts.objective.removeprefix(PROXY_PREFIX), seed)
        return proxy, opts.objective
    if opts.evaluator is not None:
        if opts.objective is not None:
            raise SvgeError("--evaluator is an objective of its own: drop --objective")
        if opts.target is not None and (table is None or opts.target not in table.labels):
            columns = ", ".join(table.labels) if table is not None else f"no {sp.name} table imported"
            raise SvgeError(
                f"--target {opts.target!r} is not a column of the benchmark table ({columns}); "
                "with --evaluator the score is the evaluator's answer: drop --target"
            )
        return EvaluatorObjective(opts.evaluator, opts.evaluator_timeout), opts.target
    if table is None:
        if opts.objective is not None:
            raise SvgeError(
                f"--objective {opts.objective} needs a labelled {sp.name} dataset in the workspace: import a "
                f"benchmark table (`svge data import {sp.name} FILE`), or score cells with --evaluator CMD"
            )
        note(
            f"note: no {sp.name} benchmark table imported and no --evaluator: scoring cells with the zero-cost "
            f"proxy {DEFAULT_PROXY} (import a table or pass --evaluator CMD for accuracies)"
        )
        return ProxyObjective(DEFAULT_PROXY, seed), PROXY_PREFIX + DEFAULT_PROXY
    target = opts.target or default_target(sp, table)
    complete = covers_space(sp, table, target)
    name = opts.objective or ("benchmark" if complete else "surrogate")
    if name == "benchmark":
        if not complete:
            note(
                f"note: the table does not label every {sp.name} cell; cells missing from it are reported "
                "and get no score"
            )
        return BenchmarkObjective(table, target), target
    note(f"objective: SURROGATE predictions of {target!r} (the {sp.name} table is a sample of the space)")
    return SurrogateObjective(table, target, sp.vocab_size, seed), target
