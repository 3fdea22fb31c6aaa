"""User-defined cell spaces: a JSON spec is all svge needs to sample, train, encode, decode and evaluate."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, Runner, assert_one_line_error

from svge_cli.arch import Arch, ArchError, from_lists
from svge_cli.model import ModelConfig
from svge_cli.spaces.custom import CellSpace, from_spec
from svge_cli.training import vae as vae_training

SPEC = {"name": "toy", "ops": ["conv", "pool"], "max_nodes": 4, "max_edges": 5, "single_io": True, "default_cells": 60}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "toy_space.json"


@pytest.fixture
def toy() -> CellSpace:
    return from_spec(SPEC, "test")


def chain(*ops: int) -> Arch:
    n = len(ops)
    return from_lists(ops, np.eye(n, k=1, dtype=int))


def test_spec_declares_vocabulary_limits_and_rules(toy: CellSpace) -> None:
    assert toy.node_types == ("input", "output", "conv", "pool")
    assert (toy.max_nodes, toy.max_edges, toy.size, toy.enumerable) == (4, 5, None, False)
    assert toy.validate(chain(0, 2, 3, 1)) is None
    assert "nodes" in toy.validate(chain(0, 2, 2, 3, 1))
    dangling = from_lists([0, 2, 3, 1], [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert "no outgoing edge" in toy.validate(dangling)
    loose = from_spec(SPEC | {"single_io": False}, "test")
    assert loose.validate(dangling) is None


def test_isomorphic_cells_share_a_hash(toy: CellSpace) -> None:
    a = from_lists([0, 2, 3, 1], [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    b = from_lists([0, 3, 2, 1], [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert toy.hash(a) == toy.hash(b) != toy.hash(chain(0, 2, 3, 1))


def test_sampling_gives_distinct_valid_cells_and_stops_when_the_space_runs_out(toy: CellSpace) -> None:
    cells = toy.sample(30, seed=1)
    assert len(cells) == 30 and all(toy.validate(c) is None for c in cells)
    assert len({toy.hash(c) for c in cells}) == 30
    everything = toy.sample(10_000, seed=2)  # a 4-node space holds only a few dozen cells
    assert 10 < len(everything) < 100
    assert [toy.hash(c) for c in toy.sample(30, seed=1)] == [toy.hash(c) for c in cells]  # seeded


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"name": "Toy!", "ops": ["a"], "max_nodes": 4}, ['"name"']),
        ({"name": "toy", "ops": ["a", "a"], "max_nodes": 4}, ['"ops"', "distinct"]),
        ({"name": "toy", "ops": ["input"], "max_nodes": 4}, ['"ops"']),
        ({"name": "toy", "ops": ["a"], "max_nodes": 2}, ['"max_nodes"', "from 3 to 64"]),
        ({"name": "toy", "ops": ["a"], "max_nodes": 4, "colour": 1}, ["unknown keys colour"]),
    ],
)
def test_bad_specs_name_the_problem(spec: dict, words: list[str]) -> None:
    with pytest.raises(ArchError) as err:
        from_spec(spec, "spec.json")
    assert all(w in str(err.value) for w in words)


def test_a_toy_space_trains_encodes_decodes_and_evaluates(
    svge: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vae_training, "ModelConfig", functools.partial(ModelConfig, **TINY))
    spec = tmp_path / "toy.json"
    spec.write_text(json.dumps(SPEC))
    trained = svge("train-vae", "--space", str(spec), "--epochs", "1", "--batch-size", "8")
    assert trained.code == 0, trained.stderr
    sample = svge("data", "sample", "toy", "-n", "4")  # known by name from now on
    assert sample.code == 0 and len(sample.lines) == 4
    latents = svge("encode", "-", "-o", "-", stdin=sample.out)
    assert latents.code == 0, latents.stderr
    decoded = svge("decode", "-", stdin=latents.stdout)
    assert decoded.code == 0 and len(decoded.lines) == 4
    assert all(json.loads(line)["space"] == "toy" for line in decoded.lines)
    report = svge("evaluate", "--space", "toy", "--encodes", "1", "--decodes", "1", "--prior-points", "5", "--json")
    assert report.code == 0, report.stderr
    assert json.loads(report.out)["space"] == "toy"


def test_spaces_are_added_and_listed_and_built_in_names_are_refused(svge: Runner, tmp_path: Path) -> None:
    added = svge("data", "space", "add", str(EXAMPLE))
    assert added.code == 0 and added.out.startswith("toy:")
    assert "toy" in svge("data", "space", "list").out
    clash = tmp_path / "nb101.json"
    clash.write_text(json.dumps(SPEC | {"name": "nb101"}))
    assert_one_line_error(svge("data", "space", "add", str(clash)), "built-in")
    unknown = svge("data", "sample", "nothing-here", "-n", "2")
    assert unknown.code == 2 and unknown.stderr.count("\n") == 1 and "unknown search space" in unknown.stderr
