"""NB101 space: official hash, pruning, validity, native text, and the fast enumeration vs brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from svge_cli.arch import Arch, ArchError, from_lists
from svge_cli.spaces import nb101, nb101_hash
from svge_cli.spaces.nb101 import NB101Space

SPACE = NB101Space()

# Test vectors: three NAS-Bench-101 cells with their official module hashes.
KNOWN = {
    "ops=conv3x3,maxpool,conv3x3,conv3x3,conv1x1;adj=0100110/0010000/0001001/0000010/0000010/0000001/0000000": "00005c142e6f48ac74fdcf73e3439874",  # noqa: E501
    "ops=maxpool,conv3x3,conv3x3;adj=01111/00111/00010/00001/00000": "001ea832563f8d635ef7d0af25926274",
    "ops=maxpool,maxpool;adj=0110/0010/0001/0000": "001a6fcc8b38cbc515be788a86bdc804",
}
CONV3, CONV1, POOL = 2, 3, 4


def chain(*middle: int) -> Arch:
    """input -> middle ops in a line -> output."""
    n = len(middle) + 2
    return Arch(np.asarray([0, *middle, 1]), np.eye(n, k=1, dtype=np.uint8))


# ---------------------------------------------------------------- hash


@pytest.mark.parametrize("text, expected", KNOWN.items())
def test_official_hash_of_known_cells(text: str, expected: str) -> None:
    assert SPACE.hash(SPACE.parse_native(text)) == expected


def test_vectorised_hash_equals_reference() -> None:
    cells = [SPACE.parse_native(t) for t in KNOWN] + [chain(CONV3), chain(POOL, CONV1, CONV3)]
    ds = nb101.Dataset.from_archs("nb101", cells, [""] * len(cells), 7)
    assert list(nb101_hash.hash_arrays(ds.ops, ds.adj, ds.n_nodes, workers=1)) == [SPACE.hash(c) for c in cells]


def test_isomorphic_relabelling_keeps_the_hash() -> None:
    cell = SPACE.parse_native(next(iter(KNOWN)))
    # vertices 3 and 4 are not connected to each other, so swapping them keeps a topological order
    swapped = cell.permuted([0, 1, 2, 4, 3, 5, 6])
    assert swapped != cell
    assert SPACE.hash(swapped) == SPACE.hash(cell) == KNOWN[next(iter(KNOWN))]


def test_parallel_branches_in_either_order_hash_alike() -> None:
    a = from_lists([0, CONV3, POOL, 1], [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    b = from_lists([0, POOL, CONV3, 1], [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert a != b and SPACE.hash(a) == SPACE.hash(b)


def test_different_cells_hash_differently() -> None:
    assert SPACE.hash(chain(CONV3, POOL)) != SPACE.hash(chain(POOL, CONV3))
    assert SPACE.hash(chain(CONV3)) != SPACE.hash(chain(CONV1))


def test_hash_of_a_disconnected_cell_is_refused() -> None:
    with pytest.raises(ArchError, match="does not reach"):
        SPACE.hash(from_lists([0, CONV3, 1], [[0, 1, 0], [0, 0, 0], [0, 0, 0]]))


# ---------------------------------------------------------------- pruning and validity


def test_pruning_drops_dangling_vertices() -> None:
    # vertex 2 is fed by the input but feeds nothing; vertex 3 feeds the output but is not fed
    cell = from_lists(
        [0, CONV3, POOL, CONV1, 1],
        [[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    )
    pruned = SPACE.canonical(cell)
    assert pruned == chain(CONV3)
    assert SPACE.validate(cell) is None
    assert SPACE.hash(cell) == SPACE.hash(chain(CONV3))
    assert SPACE.check(cell) == chain(CONV3)


def test_canonical_leaves_full_cells_alone() -> None:
    cell = chain(CONV3, POOL)
    assert SPACE.canonical(cell) is cell


@pytest.mark.parametrize(
    "cell, message",
    [
        (from_lists([1, CONV3, 1], [[0, 1, 0], [0, 0, 1], [0, 0, 0]]), "node 0 must be the input"),
        (from_lists([0, CONV3, CONV3], [[0, 1, 0], [0, 0, 1], [0, 0, 0]]), "last node must be the output"),
        (from_lists([0, 0, 1], [[0, 1, 0], [0, 0, 1], [0, 0, 0]]), "node 1 is input"),
        (from_lists([0, 9, 1], [[0, 1, 0], [0, 0, 1], [0, 0, 0]]), "node 1 is type 9"),
        (from_lists([0, CONV3, 1], [[0, 1, 0], [0, 0, 0], [0, 0, 0]]), "does not reach the output"),
        (chain(CONV3, CONV3, CONV3, CONV3, CONV3, CONV3), "8 nodes after pruning, more than 7"),
    ],
)
def test_validation_errors(cell: Arch, message: str) -> None:
    reason = SPACE.validate(cell)
    assert reason is not None and message in reason
    with pytest.raises(ArchError, match=message):
        SPACE.check(cell)


def test_a_dense_cell_is_a_valid_dag_for_the_paper_but_not_an_nb101_cell() -> None:
    # 7 nodes, every forward edge from the input and into the output, plus the chain: 14 edges
    adj = np.eye(7, k=1, dtype=np.uint8)
    adj[0, :] = adj[:, 6] = 1
    adj[0, 0] = adj[6, 6] = 0
    dense = Arch(np.asarray([0, CONV3, CONV1, POOL, CONV3, CONV1, 1]), adj)
    assert SPACE.dag_error(dense) is None
    assert "edges after pruning, more than 9" in SPACE.validate(dense)


def test_the_papers_validity_refuses_dangling_vertices_that_pruning_would_hide() -> None:
    fed_but_feeds_nothing = from_lists([0, CONV3, POOL, 1], [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    feeds_but_not_fed = from_lists([0, CONV3, POOL, 1], [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert SPACE.validate(fed_but_feeds_nothing) is None and SPACE.validate(feeds_but_not_fed) is None
    assert SPACE.dag_error(fed_but_feeds_nothing) == "node 2 has no outgoing edge"
    assert SPACE.dag_error(feeds_but_not_fed) == "node 2 has no incoming edge"
    assert "node 1 is input" in SPACE.dag_error(from_lists([0, 0, 1], [[0, 1, 0], [0, 0, 1], [0, 0, 0]]))
    assert SPACE.dag_error(chain(CONV3, POOL)) is None


def test_node_limit_applies_after_pruning_and_can_be_raised() -> None:
    eight = chain(*[CONV3] * 6)
    assert SPACE.validate(eight, node_limit=8) is None
    adj = np.zeros((8, 8), dtype=np.uint8)
    adj[[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 7]] = 1  # vertex 6 is fed by nothing: pruned to 7 vertices
    adj[6, 7] = 1
    assert SPACE.validate(Arch(np.asarray([0, *[CONV3] * 6, 1]), adj)) is None


def test_edge_limit_applies_after_pruning() -> None:
    full = np.triu(np.ones((5, 5), dtype=np.uint8), k=1)  # 10 edges, nothing to prune
    reason = SPACE.validate(Arch(np.asarray([0, CONV3, CONV3, CONV3, 1]), full))
    assert reason is not None and "10 edges after pruning, more than 9" in reason
    # 12 edges as given, but vertices 4 and 5 dead-end: pruned to 5 vertices and 9 edges, as ModelSpec does
    adj = np.zeros((7, 7), dtype=np.uint8)
    kept = [0, 1, 2, 3, 6]
    for i, j in itertools.combinations(kept, 2):
        adj[i, j] = (i, j) != (0, 6)
    adj[[0, 1, 4], [4, 4, 5]] = 1
    cell = Arch(np.asarray([0, CONV3, CONV1, POOL, CONV3, CONV3, 1]), adj)
    assert cell.n_edges == 12
    assert SPACE.validate(cell) is None
    assert SPACE.canonical(cell).n_nodes == 5 and SPACE.canonical(cell).n_edges == 9


# ---------------------------------------------------------------- native text


@pytest.mark.parametrize("text", list(KNOWN) + ["ops=;adj=01/00"])
def test_native_round_trip(text: str) -> None:
    cell = SPACE.parse_native(text)
    assert SPACE.format_native(cell) == text
    assert SPACE.parse_native(SPACE.format_native(cell)) == cell


def test_native_round_trip_over_an_enumeration() -> None:
    for cell in SPACE.enumerate(max_vertices=4):
        assert SPACE.parse_native(SPACE.format_native(cell)) == cell


def test_native_accepts_full_names_spaces_and_explicit_input_output() -> None:
    expected = chain(CONV3, POOL)
    assert SPACE.parse_native(" ops = conv3x3-bn-relu, maxpool3x3 ; adj = 0100/0010/0001/0000 ") == expected
    assert SPACE.parse_native("adj=0100/0010/0001/0000;ops=input,conv3x3,maxpool,output") == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("ops=conv5x5;adj=010/001/000", "unknown op 'conv5x5'"),
        ("ops=conv3x3,conv3x3;adj=010/001/000", "3 rows, so ops must name 1 middle nodes, got 2"),
        ("ops=conv3x3;adj=0100/0010/0001/0000", "4 rows, so ops must name 2 middle nodes, got 1"),
        ("ops=conv3x3;adj=010/001", "row 0 has 3 entries, expected 2"),
        ("ops=conv3x3;adj=020/001/000", "column 1 is '2'; entries must be 0 or 1"),
        ("ops=conv3x3;adj=010/101/000", "row 1 has an edge to column 0: the matrix must be strictly upper triangular"),
        ("ops=conv3x3;adj=010/011/000", "row 1 has an edge to column 1"),
        ("ops=output;adj=010/001/000", "'output' cannot be a middle node"),
        ("ops=conv3x3", "lacks adj"),
        ("ops=;adj=0", "adj needs at least 2 rows"),
        ("ops=conv3x3;adj=010/001/000;ops=conv1x1", "names 'ops' twice"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", "needs 'ops=...;adj=...'"),
    ],
)
def test_native_errors(text: str, message: str) -> None:
    with pytest.raises(ArchError, match=message.replace("(", r"\(").replace("|", r"\|")):
        SPACE.parse_native(text)


def test_format_native_refuses_foreign_types() -> None:
    with pytest.raises(ArchError, match="node 1 is type 7"):
        SPACE.format_native(from_lists([0, 7, 1], [[0, 1, 0], [0, 0, 1], [0, 0, 0]]))
    with pytest.raises(ArchError, match="last node must be the output"):
        SPACE.format_native(from_lists([0, CONV3, CONV3], [[0, 1, 0], [0, 0, 1], [0, 0, 0]]))


# ---------------------------------------------------------------- enumeration


def brute_force(max_vertices: int) -> list[tuple[Arch, str]]:
    """Every upper-triangular matrix and labelling, pruned, validated, deduplicated by hash (first kept).

    Matrices come in the official generator's order: bit i + j(j-1)/2 of a counter is the edge i -> j.
    """
    kept: dict[str, Arch] = {}
    for n in range(2, max_vertices + 1):
        slots = [(i, j) for j in range(n) for i in range(j)]
        for bits in range(2 ** len(slots)):
            adj = np.zeros((n, n), dtype=np.uint8)
            for k, (i, j) in enumerate(slots):
                adj[i, j] = (bits >> k) & 1
            for labels in itertools.product((CONV3, CONV1, POOL), repeat=n - 2):
                cell = Arch(np.asarray([0, *labels, 1]), adj)
                if SPACE.validate(cell) is None:
                    kept.setdefault(SPACE.hash(cell), SPACE.canonical(cell))
    return [(a, h) for h, a in kept.items()]


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_fast_enumeration_matches_brute_force(k: int) -> None:
    fast = SPACE.enumerate_dataset(max_vertices=k)
    slow = brute_force(k)
    assert len(fast) == len(slow)
    assert list(fast.hashes) == [h for _, h in slow]  # same classes, same order
    assert list(fast.archs()) == [a for a, _ in slow]  # same representative cells


def test_enumeration_keeps_the_official_representatives() -> None:
    # the official generator keeps the first cell per hash in (vertices, bit order, labelling) order;
    # two of the test vectors are such representatives
    ds = SPACE.enumerate_dataset(max_vertices=5)
    pos = {h: i for i, h in enumerate(ds.hashes)}
    for text, h in list(KNOWN.items())[1:]:
        assert ds.arch(pos[h]) == SPACE.parse_native(text)


def test_enumeration_counts_and_layout() -> None:
    assert [len(SPACE.enumerate_dataset(max_vertices=k)) for k in (2, 3, 4, 5)] == [1, 7, 91, 2532]
    ds = SPACE.enumerate_dataset(max_vertices=4)
    assert ds.space == "nb101" and ds.ops.shape == (91, 4) and ds.adj.shape == (91, 4, 4)
    assert len(list(SPACE.enumerate(max_vertices=4))) == 91
    with pytest.raises(ArchError, match="2..7"):
        SPACE.enumerate_dataset(max_vertices=8)


def test_parallel_hashing_matches_serial() -> None:
    serial = nb101.enumerate_dataset(5, workers=1)
    parallel = nb101.enumerate_dataset(5, workers=2)
    assert list(serial.hashes) == list(parallel.hashes)


@pytest.mark.slow
def test_full_enumeration() -> None:
    ds = SPACE.enumerate_dataset()
    assert len(ds) == 423_624 and len(set(ds.hashes.tolist())) == 423_624
    assert np.bincount(ds.n_nodes).tolist() == [0, 0, 1, 6, 84, 2_441, 62_010, 359_082]
    for text, h in KNOWN.items():  # the test vectors are official representatives
        assert ds.arch(int(np.nonzero(ds.hashes == h)[0][0])) == SPACE.parse_native(text)
