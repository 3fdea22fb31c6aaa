"""The strategy registry: one place that the CLI's choices, defaults and docs table come from."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from svge_cli.commands.bo import bo_cmd
from svge_cli.errors import SvgeError
from svge_cli.search import registry
from svge_cli.search.catalog import STRATEGIES
from svge_cli.search.objectives import OBJECTIVE_KINDS, parse_objective

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bo.md"


def test_svge_bo_offers_exactly_the_registered_strategies() -> None:
    (option,) = [p for p in bo_cmd.params if p.name == "strategy"]
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == STRATEGIES == tuple(e.name for e in registry.entries())
    for e in registry.entries():
        assert f"{e.name} = {e.summary}" in option.help


def test_the_docs_table_lists_every_strategy_as_registered() -> None:
    rows = re.findall(r"^\| `([a-z-]+)` \| (.+?) \| (\d+) \|$", DOCS.read_text(), flags=re.M)
    assert rows == [(e.name, e.summary, str(e.batch)) for e in registry.entries()]


def test_a_name_registers_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        registry.register("pool", "again", 5, rank=9)(lambda ctx, req: None)


def test_an_unknown_strategy_is_one_clear_error() -> None:
    with pytest.raises(registry.SvgeError, match="unknown strategy 'nope'.*pool"):
        registry.entry("nope")


def test_svge_bo_offers_and_documents_every_registered_objective() -> None:
    (option,) = [p for p in bo_cmd.params if p.name == "objective"]
    kinds = list(OBJECTIVE_KINDS.values())
    assert option.metavar == "|".join(k.choice for k in kinds)
    for k in kinds:
        assert f"{k.choice} = {k.summary}" in option.help
    documented = re.findall(r"^\| `([^`]+)` \| (?:default|when)", DOCS.read_text(), flags=re.M)
    assert documented == [k.choice for k in kinds] + ["--evaluator CMD"]


@pytest.mark.parametrize(
    "value, words",
    [("nope", "not one of benchmark, surrogate, proxy:NAME"), ("proxy", "not one of"), ("benchmark:x", "not one of")],
)
def test_an_unknown_objective_is_one_clear_error(value: str, words: str) -> None:
    with pytest.raises(SvgeError, match=words):
        parse_objective(value)


def test_an_objective_argument_is_checked_by_its_kind() -> None:
    assert parse_objective("proxy:synflow") == (OBJECTIVE_KINDS["proxy"], "synflow")
    assert parse_objective("surrogate") == (OBJECTIVE_KINDS["surrogate"], None)
    with pytest.raises(SvgeError, match="unknown proxy 'vibes'"):
        parse_objective("proxy:vibes")
