"""Circles through a latent point (Fig. 2): geometry, seeding, edits between steps, decoding a walk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svge_cli.arch import from_lists
from svge_cli.errors import SvgeError
from svge_cli.explore.circle import chain_cell, circle_through, step_edits, walk
from svge_cli.model import ModelConfig, SVGe
from svge_cli.spaces import SPACES, get_space

Z0 = np.array([0.8, -1.5, 0.3, 2.0, -0.1, 0.0, 1.1, -0.7])


def chords(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(points, axis=0), axis=1)


@pytest.mark.parametrize("steps", [2, 3, 14, 36])
def test_points_are_equidistant_and_the_walk_returns_to_the_start(steps: int) -> None:
    c = circle_through(Z0, steps, seed=3)
    assert c.points.shape == (steps + 1, Z0.size) and c.steps == steps
    assert np.array_equal(c.points[0], Z0) and np.array_equal(c.points[-1], Z0)
    # every step is the same chord of the circle: 2 r sin(pi / S)
    assert np.allclose(chords(c.points), 2 * c.radius * np.sin(np.pi / steps))
    assert len({tuple(np.round(p, 9)) for p in c.points[:-1]}) == steps


def test_the_direction_is_a_unit_vector_orthogonal_to_the_start() -> None:
    c = circle_through(Z0, 14, seed=0)
    assert np.isclose(np.linalg.norm(c.u), 1) and np.isclose(c.u @ Z0, 0, atol=1e-12)
    # the walk leaves z0 along u: the first step's direction is u tilted towards the centre by pi / S
    first = (c.points[1] - Z0) / np.linalg.norm(c.points[1] - Z0)
    assert np.isclose(first @ c.u, np.cos(np.pi / 14))


def test_default_is_the_great_circle_of_the_sphere_through_the_start() -> None:
    c = circle_through(Z0, 14, seed=0)
    assert np.allclose(c.center, 0) and np.isclose(c.radius, np.linalg.norm(Z0))
    assert np.allclose(np.linalg.norm(c.points, axis=1), np.linalg.norm(Z0))


def test_a_given_radius_keeps_the_start_on_a_smaller_circle_in_the_same_plane() -> None:
    c = circle_through(Z0, 10, seed=0, radius=0.5)
    assert np.allclose(np.linalg.norm(c.points - c.center, axis=1), 0.5)
    offsets = c.points - c.center
    in_plane = np.outer(offsets @ c.e1, c.e1) + np.outer(offsets @ c.u, c.u)
    assert np.allclose(offsets, in_plane)  # nothing outside span(e1, u)
    assert np.allclose(c.center, Z0 - 0.5 * Z0 / np.linalg.norm(Z0))


def test_the_seed_picks_the_direction() -> None:
    assert np.array_equal(circle_through(Z0, 14, seed=5).points, circle_through(Z0, 14, seed=5).points)
    assert not np.allclose(circle_through(Z0, 14, seed=5).u, circle_through(Z0, 14, seed=6).u)


def test_degenerate_circles_are_refused() -> None:
    with pytest.raises(SvgeError, match="--radius"):
        circle_through(np.zeros(8), 14, seed=0)  # the great circle through the origin is a point
    with pytest.raises(SvgeError, match="at least 2 steps"):
        circle_through(Z0, 1, seed=0)
    c = circle_through(np.zeros(8), 6, seed=0, radius=1.0)  # a radius makes it a circle again
    assert np.allclose(np.linalg.norm(c.points - c.center, axis=1), 1.0)


CHAIN = from_lists([0, 2, 2, 1], [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])


def test_step_edits_count_changed_types_and_edges() -> None:
    assert step_edits(CHAIN, CHAIN) == 0
    other_op = from_lists([0, 2, 3, 1], CHAIN.adj)
    assert step_edits(CHAIN, other_op) == 1
    skip = CHAIN.adj.copy()
    skip[0, 3] = 1
    assert step_edits(CHAIN, from_lists(CHAIN.ops, skip)) == 1
    # one node fewer: outputs are aligned, so node 2 is missing (1), its edges 1 -> 2 and 2 -> out
    # are gone (2), and the edge 1 -> out is new (1); 0 -> 1 stays
    short = from_lists([0, 2, 1], [[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    assert step_edits(CHAIN, short) == step_edits(short, CHAIN) == 4


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_space_has_a_valid_chain_cell_to_start_from(name: str) -> None:
    sp = get_space(name)
    assert sp.validate(chain_cell(sp)) is None


def test_a_walk_decodes_every_step_and_ends_where_it_began() -> None:
    sp = get_space("nb101")
    torch.manual_seed(0)
    model = SVGe(ModelConfig(vocab_size=sp.vocab_size, max_nodes=sp.max_nodes, hidden=16, latent=8)).eval()
    result = walk(model, sp, chain_cell(sp), steps=6, seed=1)
    assert len(result.decoded) == 7 and result.edits[0] is None and len(result.edits) == 7
    assert result.decoded[0].arch == result.decoded[-1].arch
    assert all(e == step_edits(a.arch, b.arch) for e, a, b in zip(result.edits[1:], result.decoded, result.decoded[1:]))
