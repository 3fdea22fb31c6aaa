"""Growing cells by one node: the single-insertion family, the paper's family, ranking and growth."""

from __future__ import annotations

import numpy as np
import pytest
from cells import NB101_BEST, NB101_TINY

from svge_cli.arch import Arch, from_lists
from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.explore.extrapolate import (
    best_labelled,
    grow,
    growth_rules,
    paper_family,
    single_insertions,
)
from svge_cli.spaces import get_space

NB101 = get_space("nb101")
ENAS = get_space("enas")

BEST = NB101.parse_native(NB101_BEST)
TINY = NB101.parse_native(NB101_TINY)


def edges_count(arch: Arch) -> int:
    return int(arch.adj.sum())


def by_edges(cells: list[Arch]) -> np.ndarray:
    """A stand-in for the regressor: more edges, higher score."""
    return np.array([edges_count(c) for c in cells], dtype=float)


def by_edges_then_first_op(cells: list[Arch]) -> np.ndarray:
    """Like `by_edges`, ties broken by the first layer's op, so the two best cells differ."""
    return by_edges(cells) + 0.01 * np.array([int(c.ops[1]) for c in cells])


def flat(cells: list[Arch]) -> np.ndarray:
    return np.zeros(len(cells))


def test_single_insertions_of_a_three_node_cell_worked_by_hand() -> None:
    """input -> A (conv3x3) -> output, new node X of op t in {conv3x3, conv1x1, maxpool}.

    X at position 1 (between input and A) reads from the input and feeds a non-empty subset
    of {A, output}: (a) X->A, (b) X->out, (c) X->A and X->out.  X at position 2 (between A
    and output) reads from a non-empty subset of {input, A} and feeds the output:
    (d) in->X, (e) A->X, (f) in->X and A->X.  That is 6 wirings x 3 ops = 18 candidates,
    all valid.  (b) and (d) are the same cell: X and A in parallel.  When t is conv3x3
    like A, (c) and (f) are the same cell too: the triangle in->{A, X} with one of them
    feeding the other, both feeding the output.  So 3 x 5 - 1 = 14 distinct cells.
    """
    family = single_insertions(growth_rules(NB101), TINY)
    assert family.candidates == 18 and family.valid == 18
    assert len(family) == 14 and len(set(family.hashes)) == 14
    assert all(c.n_nodes == 4 and NB101.validate(c) is None for c in family.cells)


def test_enas_layers_go_in_before_the_last_layer_only() -> None:
    """input -> L -> output: a new layer X before L must chain in->X->L (in->L stays as a skip);
    after L it would need L->X->out, but L->out stays and the output may have one input only.
    One wiring per op: 6 cells, each [[t], [op_L, 1]]."""
    seed = ENAS.parse_native("[[2]]")
    family = single_insertions(growth_rules(ENAS), seed)
    assert len(family) == 6
    assert sorted(ENAS.format_native(c) for c in family.cells) == [f"[[{t}], [2, 1]]" for t in range(6)]


@pytest.mark.parametrize("layers", [2, 3, 4])
def test_enas_valid_insertions_follow_the_closed_form(layers: int) -> None:
    """Position p of L: the chain edges are fixed, 2^(p-1) sets of skips in and 2^(L-p) out: 6 L 2^(L-1)."""
    seed = ENAS.sample(1, seed=layers, layers=layers)[0]
    family = single_insertions(growth_rules(ENAS), seed)
    assert family.valid == 6 * layers * 2 ** (layers - 1)
    assert all(ENAS.validate(c, layers + 3) is None for c in family.cells)


def test_the_best_nb101_cell_has_958_single_insertions_once_the_edge_limit_is_lifted() -> None:
    """3 ops x sum over positions p = 1..6 of (2^p - 1)(2^(7-p) - 1) wirings = 3 x 522 = 1,566 candidates."""
    family = single_insertions(growth_rules(NB101), BEST)
    assert (family.candidates, family.valid, len(family)) == (1566, 1566, 958)
    assert min(edges_count(c) for c in family.cells) == 11  # so the 9-edge limit would keep none


def test_keeping_the_nb101_edge_limit_leaves_the_best_cell_nothing_to_grow() -> None:
    assert len(single_insertions(growth_rules(NB101, max_edges=9), BEST)) == 0
    with pytest.raises(SvgeError, match="edges"):
        grow(growth_rules(NB101, max_edges=9), BEST, 8, flat)


def test_growth_rules_leave_the_registered_space_alone() -> None:
    rules = growth_rules(NB101)
    assert rules.max_edges > 1000 and NB101.max_edges == 9 and get_space("nb101").max_edges == 9
    assert growth_rules(ENAS) is ENAS
    with pytest.raises(SvgeError, match="no edge limit"):
        growth_rules(ENAS, max_edges=9)


def test_the_paper_family_of_the_best_cell_holds_384_systematic_cells() -> None:
    family = paper_family(growth_rules(NB101), BEST, random_cells=20, rng=np.random.default_rng(0))
    assert family.parts == {"output side": 192, "input side": 192, "random": 20}
    assert len(family) == 404 and len(set(family.hashes)) == 404
    output_side, input_side = family.cells[:192], family.cells[192:384]
    # the old output became an op feeding the new output, which may also read from nodes 0..5
    assert all(c.n_nodes == 8 and c.adj[6, 7] == 1 and np.array_equal(c.adj[:7, :7], BEST.adj) for c in output_side)
    assert {tuple(c.adj[:6, 7]) for c in output_side} == {tuple(s) for s in np.ndindex(*[2] * 6)}
    # the old input became an op behind a new input, which may also feed nodes 2..7
    assert all(c.adj[0, 1] == 1 and np.array_equal(c.adj[1:, 1:], BEST.adj) for c in input_side)
    assert all(NB101.validate(c, 8) is not None for c in family.cells)  # every one breaks the 9-edge limit
    assert all(growth_rules(NB101).validate(c, 8) is None for c in family.cells)


def test_the_paper_family_has_1384_cells_by_default() -> None:
    family = paper_family(growth_rules(NB101), BEST)
    assert len(family) == 1384 and family.parts["random"] == 1000


def test_grow_ranks_the_last_family_by_score() -> None:
    ranked = grow(growth_rules(NB101), TINY, 4, by_edges)
    assert len(ranked.family) == 14 and ranked.step_sizes == [14]
    scores = [s for _, s in ranked.top(14)]
    assert scores == sorted(scores, reverse=True) and scores[0] == 5  # the triangle has the most edges
    assert len(ranked.top(3)) == 3


def test_grow_by_several_layers_keeps_the_best_cell_of_each_step() -> None:
    seed = ENAS.parse_native("[[0], [1, 1]]")
    ranked = grow(growth_rules(ENAS), seed, 6, by_edges)
    assert [c.n_nodes for c in ranked.path] == [4, 5] and len(ranked.step_sizes) == 2
    assert all(c.n_nodes == 6 and ENAS.validate(c, 6) is None for c in ranked.family.cells)
    # the last family grew from the best cell of the first step: each holds it with one layer more
    step_one = single_insertions(growth_rules(ENAS), seed)
    assert max(edges_count(c) for c in step_one.cells) == edges_count(ranked.path[1])


def test_a_wider_beam_grows_the_union_of_the_best_cells_families() -> None:
    seed = ENAS.parse_native("[[0], [1, 1]]")
    greedy = grow(growth_rules(ENAS), seed, 6, by_edges_then_first_op, beam=1)
    wide = grow(growth_rules(ENAS), seed, 6, by_edges_then_first_op, beam=2)
    first_two = [c for c, _ in grow(growth_rules(ENAS), seed, 5, by_edges_then_first_op).top(2)]
    union = {ENAS.hash(c) for cell in first_two for c in single_insertions(growth_rules(ENAS), cell).cells}
    assert set(wide.family.hashes) == union and set(greedy.family.hashes) < union


def test_large_families_are_sampled_to_the_limit_with_the_seed() -> None:
    rules = growth_rules(ENAS)
    seed = ENAS.sample(1, seed=0, layers=5)[0]
    a = single_insertions(rules, seed, limit=100, rng=np.random.default_rng(1))
    b = single_insertions(rules, seed, limit=100, rng=np.random.default_rng(1))
    assert a.sampled and a.valid == 480 and 90 <= len(a) <= 100 and a.hashes == b.hashes
    assert not single_insertions(rules, seed, limit=480).sampled


def test_grow_refuses_what_it_cannot_do() -> None:
    with pytest.raises(SvgeError, match="already has 7 nodes"):
        grow(growth_rules(NB101), BEST, 7, flat)
    with pytest.raises(SvgeError, match="exactly one node"):
        grow(growth_rules(NB101), BEST, 9, flat, family="paper")
    with pytest.raises(SvgeError, match="non-finite"):
        grow(growth_rules(NB101), TINY, 4, lambda cells: np.full(len(cells), np.nan))  # a broken predictor
    with pytest.raises(SvgeError, match="8 nodes"):
        grow(
            growth_rules(get_space("nb201")),
            get_space("nb201").parse_native("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"),
            9,
            flat,
        )


def test_best_labelled_skips_unknown_values() -> None:
    cells = [TINY, BEST, from_lists([0, 3, 1], TINY.adj)]
    ds = Dataset.from_archs(
        "nb101", cells, [NB101.hash(c) for c in cells], 7, labels={"val_acc_108": np.array([0.9, np.nan, 0.93])}
    )
    arch, value = best_labelled(ds, "val_acc_108")
    assert arch == cells[2] and value == 0.93
    with pytest.raises(SvgeError, match="no label column 'acc'"):
        best_labelled(ds, "acc")
    ds.labels["val_acc_108"][:] = np.nan
    with pytest.raises(SvgeError, match="no cell"):
        best_labelled(ds, "val_acc_108")
