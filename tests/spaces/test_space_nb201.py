"""NB201Space: the fixed 8-node DAG, native strings, benchmark index order, functional classes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from svge_cli.arch import Arch, ArchError
from svge_cli.spaces import get_space
from svge_cli.spaces.nb201 import ADJ, NB201Space

# facts NAS-Bench-201's own generator asserts about its index order
INDEX_FACTS = {
    0: "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    9: "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    123: "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
}
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space()


@pytest.fixture(scope="module")
def enumeration(space: NB201Space):
    return space.enumerate_dataset()


def test_registry_and_vocabulary(space: NB201Space) -> None:
    assert isinstance(get_space("nb201"), NB201Space)
    assert space.node_types == (
        "input",
        "output",
        "none",
        "skip_connect",
        "nor_conv_1x1",
        "nor_conv_3x3",
        "avg_pool_3x3",
    )
    assert space.max_nodes == 8 and space.enumerable


def test_fixed_adjacency_rows() -> None:
    rows = {i: set(np.nonzero(ADJ[i])[0].tolist()) for i in range(7)}
    assert rows == {0: {1, 2, 4}, 1: {3, 5}, 2: {6}, 3: {6}, 4: {7}, 5: {7}, 6: {7}}
    assert not ADJ[7].any()


def test_parse_places_edges_in_order(space: NB201Space) -> None:
    arch = space.parse_native(RESNET)
    names = [space.node_types[t] for t in arch.ops]
    assert names == ["input", "nor_conv_3x3", "none", "nor_conv_3x3", "skip_connect", "none", "skip_connect", "output"]
    assert np.array_equal(arch.adj, ADJ)
    assert space.validate(arch) is None


def test_round_trip_and_hash(space: NB201Space) -> None:
    for text in INDEX_FACTS.values():
        arch = space.parse_native(text)
        assert space.format_native(arch) == text
        assert space.hash(arch) == text


def test_parse_accepts_any_input_order_within_a_node(space: NB201Space) -> None:
    shuffled = "|nor_conv_3x3~0|+|nor_conv_3x3~1|none~0|+|skip_connect~2|none~1|skip_connect~0|"
    assert space.format_native(space.parse_native(shuffled)) == RESNET


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("|none~0|+|none~0|none~1|", "3 '+'-separated"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|conv_7x7~2|", "unknown op"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "needs one op for each"),
        ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "appears twice"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "does not exist"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "op~input"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must look like"),
        ("", "3 '+'-separated"),
    ],
)
def test_parse_rejects_malformed_strings(space: NB201Space, text: str, fragment: str) -> None:
    with pytest.raises(ArchError, match=re.escape(fragment)):
        space.parse_native(text)


def test_validate_rejects_other_shapes(space: NB201Space) -> None:
    good = space.parse_native(RESNET)
    assert space.validate(good, node_limit=20) is None  # node_limit is accepted, shape stays fixed
    seven = Arch(good.ops[:7], good.adj[:7, :7])
    assert "8 nodes" in space.validate(seven)
    extra_edge = good.adj.copy()
    extra_edge[0, 3] = 1
    assert "adjacency" in space.validate(Arch(good.ops, extra_edge))
    bad_ops = good.ops.copy()
    bad_ops[3] = 0  # an input node in the middle
    assert "edge nodes" in space.validate(Arch(bad_ops, good.adj))
    out_of_range = good.ops.copy()
    out_of_range[2] = 7
    assert "edge nodes" in space.validate(Arch(out_of_range, good.adj))
    swapped = good.ops.copy()
    swapped[[0, 7]] = [1, 0]
    assert "input" in space.validate(Arch(swapped, good.adj))
    with pytest.raises(ArchError):
        space.check(seven)


def test_enumeration_follows_the_benchmark_index(space: NB201Space, enumeration) -> None:
    assert len(enumeration) == 15_625
    assert len(set(enumeration.hashes.tolist())) == 15_625
    for index, text in INDEX_FACTS.items():
        assert enumeration.hashes[index] == text
    assert np.array_equal(enumeration.labels["index"], np.arange(15_625))
    assert all(space.is_valid(enumeration.arch(i)) for i in range(0, 15_625, 97))


def test_functional_classes_number_6466(space: NB201Space, enumeration) -> None:
    classes = enumeration.labels["equiv_class"]
    assert len(np.unique(classes)) == 6_466
    assert classes.min() == 0 and classes.max() == 6_465
    assert classes[0] == 0  # classes are numbered by first appearance in index order


def test_equivalence_rules(space: NB201Space) -> None:
    key = lambda s: space.equivalence_key(space.parse_native(s))  # noqa: E731
    # node 1's op is irrelevant when every path through it is cut by 'none'
    a = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    b = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert key(a) == key(b)
    assert space.equivalence_class(space.parse_native(a)) == space.equivalence_class(space.parse_native(b))
    # a skip passes its input through, so it matches a direct conv on the same input
    c = "|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|"
    d = "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"
    assert key(c) == key(d)
    # sums do not depend on which input carries which term
    e = "|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    f = "|skip_connect~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"
    assert key(e) == key(f)
    assert key(a) != key(c)
    # the rule is NATS-Bench's syntactic one: a sum nested behind a zero term stays a different string
    g = "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|skip_connect~2|"
    h = "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|skip_connect~1|skip_connect~2|"
    assert key(g) != key(h)


def test_sample_draws_distinct_cells(space: NB201Space) -> None:
    cells = space.sample(50, seed=3)
    assert len({space.hash(c) for c in cells}) == 50
    assert [space.hash(c) for c in space.sample(50, seed=3)] == [space.hash(c) for c in cells]
