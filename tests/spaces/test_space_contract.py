"""The contract every search space keeps, written once and run for each registered space and a user space.

A new space (built in, or a JSON spec) is usable by every command when it passes these: seeded sampling
of valid cells, a hash that names a cell, both text forms round-tripping, the one-hot encoding, its
benchmark network where it has one, and its size where it can be listed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from svge_cli.arch import pad_batch
from svge_cli.networks import build
from svge_cli.networks.proxytable import has_networks
from svge_cli.spaces import SPACES, SearchSpace
from svge_cli.spaces.custom import from_spec
from svge_cli.spaces.jsonline import parse_json_arch
from svge_cli.storage.archtext import format_arch

USER_SPEC = {"name": "toy", "ops": ["conv", "pool", "skip"], "max_nodes": 5, "max_edges": 6, "default_cells": 40}
CELLS = 12


def _spaces() -> list[SearchSpace]:
    return [*SPACES.values(), from_spec(USER_SPEC, "contract test")]


@pytest.fixture(params=_spaces(), ids=lambda s: s.name)
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return request.param


def test_a_seed_draws_the_same_valid_distinct_cells(space: SearchSpace) -> None:
    cells = space.sample(CELLS, seed=3)
    assert len(cells) == CELLS
    assert all(space.validate(c) is None for c in cells)
    assert [space.hash(c) for c in cells] == [space.hash(c) for c in space.sample(CELLS, seed=3)]
    assert [space.hash(c) for c in cells] != [space.hash(c) for c in space.sample(CELLS, seed=4)]


def test_the_hash_names_a_cell(space: SearchSpace) -> None:
    cells = space.sample(CELLS, seed=0)
    hashes = [space.hash(c) for c in cells]
    assert all(isinstance(h, str) and h for h in hashes)
    assert hashes == [space.hash(space.canonical(c)) for c in cells]
    assert len(set(hashes)) > 1


def test_native_text_and_json_lines_round_trip(space: SearchSpace) -> None:
    for cell in space.sample(CELLS, seed=1):
        again = space.check(space.parse_native(space.format_native(cell)))
        assert space.hash(again) == space.hash(cell)
        line = format_arch(cell, space, "jsonl", {"score": 0.5})
        parsed, seen, extra = parse_json_arch(line, space)
        assert seen is space and extra == {"score": 0.5} and space.hash(space.check(parsed)) == space.hash(cell)
        assert json.loads(line)["space"] == space.name


def test_one_hot_cells_have_the_space_width_and_tell_cells_apart(space: SearchSpace) -> None:
    cells = space.sample(CELLS, seed=2)
    ops, adj, _ = pad_batch(cells)
    x = space.one_hot(ops, adj)
    n = space.max_nodes
    assert x.shape == (CELLS, space.vocab_size * n + n * (n - 1) // 2)
    assert set(np.unique(x)) <= {0.0, 1.0}
    distinct_hashes = len({space.hash(c) for c in cells})
    assert len({row.tobytes() for row in x}) >= min(distinct_hashes, 2)


def test_cells_with_a_benchmark_network_build_and_run(space: SearchSpace) -> None:
    if not has_networks(space):
        pytest.skip(f"{space.name} has no benchmark network")
    small = {"enas": {"out_filters": 4}, "nb101": {"stem_channels": 4}, "nb201": {"channels": 4, "n": 1}}
    net = build(space.sample(1, seed=5)[0], space, **small.get(space.name, {}))
    with torch.no_grad():
        out = net(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_a_listable_space_enumerates_its_size() -> None:
    """Only NB201 is listed here (NB101's 423,624 cells take minutes; its count is a slow test there)."""
    nb201 = SPACES["nb201"]
    assert nb201.enumerable and len(nb201.enumerate_dataset()) == nb201.size == 15_625
    assert all(not s.enumerable and s.size is None for s in _spaces() if s.name in ("enas", "toy"))
