"""EnasSpace: D-VAE's nested-list rows, ENAS validity, hashing, sampling and the default dataset."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from svge_cli.arch import Arch, ArchError
from svge_cli.artifacts import SPLIT_TEST, SPLIT_TRAIN
from svge_cli.spaces import get_space
from svge_cli.spaces.enas import EnasSpace

ROW = "[[1], [4, 0], [5, 0, 0], [0, 1, 1, 1], [2, 1, 1, 1, 1], [3, 0, 0, 0, 0, 1]]"


@pytest.fixture(scope="module")
def space() -> EnasSpace:
    return EnasSpace()


def _row(layers: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return str([[int(rng.integers(6))] + rng.integers(0, 2, i).tolist() for i in range(layers)])


def test_vocabulary_follows_enas_branch_order(space: EnasSpace) -> None:
    assert isinstance(get_space("enas"), EnasSpace)
    assert space.node_types == (
        "input",
        "output",
        "conv3x3",
        "sepconv3x3",
        "conv5x5",
        "sepconv5x5",
        "avgpool3x3",
        "maxpool3x3",
    )
    assert space.type_index("sep3") == space.type_index("sepconv3x3") == 3
    assert space.max_nodes == 8 and not space.enumerable


def test_parse_builds_dvae_graph(space: EnasSpace) -> None:
    arch = space.parse_native(ROW)
    assert arch.ops.tolist() == [0, 3, 6, 7, 2, 4, 5, 1]
    edges = {(int(i), int(j)) for i, j in zip(*np.nonzero(arch.adj))}
    chain = {(i, i + 1) for i in range(7)}
    skips = {(0, 4), (1, 4), (2, 4), (0, 5), (1, 5), (2, 5), (3, 5), (4, 6)}
    assert edges == chain | skips
    assert space.validate(arch) is None


def test_round_trip_and_hash(space: EnasSpace) -> None:
    arch = space.parse_native(ROW)
    assert space.format_native(arch) == ROW
    assert space.hash(arch) == hashlib.md5(ROW.encode()).hexdigest()
    assert space.parse_native("  " + ROW.replace(" ", "") + "\n") == arch


@pytest.mark.parametrize("layers", [1, 12, 14])
def test_rows_of_any_length_parse(space: EnasSpace, layers: int) -> None:
    text = _row(layers, seed=layers)
    arch = space.parse_native(text)
    assert arch.n_nodes == layers + 2
    assert space.format_native(arch) == text
    assert space.validate(arch, node_limit=16) is None
    if layers > 6:
        assert "more than the 8" in space.validate(arch)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[[1], [4, 0]", "not an ENAS row"),
        ("[]", "non-empty list"),
        ('{"ops": 1}', "non-empty list"),
        ("[[1], [4]]", "layer 1 must be a list"),
        ("[[1], [4, 0, 1]]", "layer 1 must be a list"),
        ("[[6]]", "op 6"),
        ("[[-1]]", "op -1"),
        ("[[1], [4, 2]]", "skip bits"),
        ("[[1], [4, true]]", "integers"),
        ("[[1.0]]", "integers"),
        ("[1, 2]", "layer 0 must be a list"),
    ],
)
def test_parse_rejects_malformed_rows(space: EnasSpace, text: str, fragment: str) -> None:
    with pytest.raises(ArchError, match=fragment):
        space.parse_native(text)


def test_validate_rejects_broken_cells(space: EnasSpace) -> None:
    good = space.parse_native(ROW)
    no_chain = good.adj.copy()
    no_chain[2, 3] = 0
    assert "does not feed node 3" in space.validate(Arch(good.ops, no_chain))
    two_into_output = good.adj.copy()
    two_into_output[3, 7] = 1
    assert "output" in space.validate(Arch(good.ops, two_into_output))
    bad_op = good.ops.copy()
    bad_op[2] = 1
    assert "layer nodes" in space.validate(Arch(bad_op, good.adj))
    assert "at least one layer" in space.validate(Arch(np.array([0, 1]), np.array([[0, 1], [0, 0]])))
    first_not_input = good.ops.copy()
    first_not_input[0] = 2
    assert "input" in space.validate(Arch(first_not_input, good.adj))
    with pytest.raises(ArchError):
        space.check(Arch(good.ops, no_chain))


def test_lower_triangular_cells_cannot_be_built() -> None:
    with pytest.raises(ArchError, match="upper triangular"):
        Arch(np.array([0, 2, 1]), np.array([[0, 1, 0], [1, 0, 1], [0, 0, 0]]))


def test_sample_is_seeded_and_valid(space: EnasSpace) -> None:
    cells = space.sample(300, seed=7)
    assert len(cells) == 300 and all(space.is_valid(c) for c in cells)
    assert [space.hash(c) for c in space.sample(300, seed=7)] == [space.hash(c) for c in cells]
    assert [space.hash(c) for c in space.sample(300, seed=8)] != [space.hash(c) for c in cells]
    ops = np.stack([c.ops[1:-1] for c in cells])
    assert set(np.unique(ops).tolist()) == set(range(2, 8))
    rows, cols = np.triu_indices(8, 2)
    skips = cols <= 6  # the 15 places a skip can be; the output column is never one
    skip_rate = np.mean([c.adj[rows[skips], cols[skips]].mean() for c in cells])
    assert 0.4 < skip_rate < 0.6
    big = space.sample(5, seed=1, layers=12)
    assert all(c.n_nodes == 14 and space.is_valid(c, node_limit=14) for c in big)


def test_default_dataset_is_distinct_split_and_deterministic(space: EnasSpace) -> None:
    ds = space.default_dataset()
    assert len(ds) == 19_020 and len(set(ds.hashes.tolist())) == 19_020
    assert (ds.split == SPLIT_TRAIN).sum() == 17_118 and (ds.split == SPLIT_TEST).sum() == 1_902
    small = space.default_dataset(seed=5, n=50)
    again = space.default_dataset(seed=5, n=50)
    assert small.hashes.tolist() == again.hashes.tolist()
    assert all(space.is_valid(a) for a in small.archs())
