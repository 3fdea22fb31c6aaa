"""What every `svge bo` strategy is asked alike: the user's options and the objective they choose.

`choose_objective` turns `--objective` (one of `objectives.OBJECTIVE_KINDS`), `--evaluator`
and the workspace's table into the objective a search scores cells with, defaulting to the
table when it labels every cell, a surrogate fitted on it when it is a sample, and a
zero-cost proxy without either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.search.objectives import (
    DEFAULT_PROXY,
    OBJECTIVE_KINDS,
    PROXY_PREFIX,
    BenchmarkObjective,
    EvaluatorObjective,
    Objective,
    ObjectiveInputs,
    ProxyObjective,
    SurrogateObjective,
    covers_space,
    default_target,
    parse_objective,
)
from svge_cli.spaces import SearchSpace


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

    Args:
        sp: the space searched.
        table: the workspace's labelled table of the space, if one is imported.
        opts: the user's `--objective`, `--evaluator` and `--target`.
        seed: the search's seed (proxies and the surrogate are seeded).
        note: where the choice is explained to the user.

    Returns:
        The objective, and the label it maximises (the proxy's name for a proxy).
        With neither a table nor an evaluator, a zero-cost proxy stands in
        (`DEFAULT_PROXY`), and the objective says so.
    """
    kind, argument = parse_objective(opts.objective) if opts.objective is not None else (None, None)
    if opts.evaluator is not None and kind is not None:
        raise SvgeError("--evaluator is an objective of its own: drop --objective")
    if kind is not None and not kind.needs_table:
        return kind.build(ObjectiveInputs(sp, table, None, seed, argument)), opts.objective
    if opts.evaluator is not None:
        if opts.target is not None and (table is None or opts.target not in table.labels):
            columns = ", ".join(table.labels) if table is not None else f"no {sp.name} table imported"
            raise SvgeError(
                f"--target {opts.target!r} is not a column of the benchmark table ({columns}); "
                "with --evaluator the score is the evaluator's answer: drop --target"
            )
        return EvaluatorObjective(opts.evaluator, opts.evaluator_timeout), opts.target
    if table is None:
        if kind is not None:
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
    kind = kind or OBJECTIVE_KINDS[BenchmarkObjective.name if complete else SurrogateObjective.name]
    if kind.name == BenchmarkObjective.name and not complete:
        note(
            f"note: the table does not label every {sp.name} cell; cells missing from it are reported and get no score"
        )
    if kind.name == SurrogateObjective.name:
        note(f"objective: SURROGATE predictions of {target!r} (the {sp.name} table is a sample of the space)")
    return kind.build(ObjectiveInputs(sp, table, target, seed)), target
