"""A circle through the latent point of a cell, and what changes from step to step on it (Fig. 2).

Construction
------------
Let z0 be the start cell's latent mean, e1 = z0 / |z0| its direction, and u a
unit vector drawn at random (seeded) and made orthogonal to z0 by one
Gram-Schmidt step.  With radius r the circle is

    c = z0 - r * e1                      (its centre)
    z(theta) = c + r * (cos(theta) * e1 + sin(theta) * u)

It lies in the plane through c spanned by e1 and u, passes through z0 at
theta = 0 and leaves it in the direction u, orthogonal to z0.  The default
radius r = |z0| puts the centre at the origin: z(theta) = cos(theta) z0 +
sin(theta) |z0| u is then the great circle through z0 of the sphere |z| = |z0|,
the construction of D-VAE's circle experiment that the SVGe paper repeats.
A walk of S steps takes theta_k = 2 pi k / S for k = 0..S: S + 1 points whose
consecutive distances are all 2 r sin(pi / S), the last one equal to the first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from svge_cli.arch import Arch
from svge_cli.errors import SvgeError
from svge_cli.memory import ARCH_BYTES, ensure_fits
from svge_cli.model import SVGe, codec
from svge_cli.spaces import SearchSpace

#: norms below this count as zero: the direction of such a point is noise
_TINY = 1e-8


def chain_cell(space: SearchSpace) -> Arch:
    """The default start of a circle: the space's simple chain cell (D-VAE's "flat net" for ENAS)."""
    return space.check(space.parse_native(space.chain_cell))


@dataclass(frozen=True)
class Circle:
    """The circle's centre and radius, its plane (e1, u) and the walked points (S + 1, D)."""

    center: np.ndarray
    radius: float
    e1: np.ndarray
    u: np.ndarray
    points: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.points) - 1


def orthogonal_direction(z0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random unit vector orthogonal to z0 (any unit vector when z0 is zero)."""
    z0 = np.asarray(z0, dtype=np.float64)
    if z0.size < 2:
        raise SvgeError("a circle needs a latent space of at least 2 dimensions")
    norm = np.linalg.norm(z0)
    while True:
        g = rng.standard_normal(z0.shape)
        if norm > _TINY:
            g -= (g @ z0) / norm**2 * z0
        length = np.linalg.norm(g)
        if length > _TINY:
            return g / length


def circle_through(z0: np.ndarray, steps: int, seed: int, radius: float | None = None) -> Circle:
    """The walk of `steps` equidistant steps around a circle through z0 and back (module docstring).

    Args:
        z0: the start point on the circle, a latent vector of shape (D,) with D >= 2 (flattened if not).
        steps: how many equal steps go once around, at least 2; the walk has steps + 1 points.
        seed: seeds the random direction u in which the circle leaves z0.
        radius: the circle's radius; None uses |z0|, the great circle of the sphere through z0.

    Returns:
        The circle, with its points of shape (steps + 1, D), the first and last exactly z0.
    """
    if steps < 2:
        raise SvgeError("a circle needs at least 2 steps")
    z0 = np.asarray(z0, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    norm = float(np.linalg.norm(z0))
    r = norm if radius is None else float(radius)
    if not np.isfinite(r) or r <= _TINY:
        if radius is None:
            raise SvgeError(
                "the start cell encodes to the origin, so the great circle through it is a single point; pass --radius"
            )
        raise SvgeError(f"the radius must be a positive number, not {radius}")
    e1 = z0 / norm if norm > _TINY else orthogonal_direction(np.zeros_like(z0), rng)
    u = orthogonal_direction(e1, rng)
    center = z0 - r * e1
    theta = 2 * np.pi * np.arange(steps + 1) / steps
    points = center + r * (np.cos(theta)[:, None] * e1 + np.sin(theta)[:, None] * u)
    points[0] = points[-1] = z0  # exactly the start, not the start plus rounding
    return Circle(center, r, e1, u, points)


@dataclass(frozen=True)
class Walk:
    """A circle and its greedy decodes, with the edits from each step to the next."""

    circle: Circle
    decoded: list[codec.Decoded]
    #: edits from the previous step (None at step 0)
    edits: list[int | None]


def walk(model: SVGe, space: SearchSpace, start: Arch, steps: int, seed: int, radius: float | None = None) -> Walk:
    """Encode `start`, walk the circle through its latent mean, decode every point greedily.

    Args:
        model: the trained autoencoder that encodes `start` and decodes the circle's points.
        space: the search space the decoded cells are read and checked in.
        start: the cell whose latent mean the circle passes through.
        steps: how many equal steps go once around the circle, at least 2.
        seed: seeds the random direction in which the circle leaves the start point.
        radius: the circle's radius; None uses the norm of the start's latent mean.

    Returns:
        The circle, the greedy decode of each of its steps + 1 points, and the edits between neighbours.
    """
    # the points, their cos/sin temporaries (float64) and a decoded cell per point
    need = (steps + 1) * (4 * 8 * model.cfg.latent + ARCH_BYTES)
    ensure_fits(need, f"a circle of {steps:,} steps", "take fewer steps")
    mu, _ = codec.encode_archs(model, [start])
    circle = circle_through(mu[0], steps, seed, radius)
    decoded = codec.decode_latents(model, space, circle.points.astype(np.float32))
    edits = [None] + [step_edits(a.arch, b.arch) for a, b in itertools.pairwise(decoded)]
    return Walk(circle, decoded, edits)


def step_edits(a: Arch, b: Arch) -> int:
    """How many node-type and edge changes turn cell a into cell b.

    The cells are aligned input to input, output to output and middle nodes in
    order; the smaller one is padded with empty nodes before its output.  Every
    node whose type differs (or that exists in only one cell) counts one, every
    edge present in only one of them counts one.
    """
    n = max(a.n_nodes, b.n_nodes)
    ops_a, adj_a = _padded(a, n)
    ops_b, adj_b = _padded(b, n)
    return int((ops_a != ops_b).sum() + (adj_a != adj_b).sum())


def _padded(arch: Arch, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Types (-1 = absent) and adjacency of `arch` grown to n nodes, output kept last."""
    keep = np.r_[np.arange(arch.n_nodes - 1), n - 1]
    ops = np.full(n, -1, dtype=np.int64)
    ops[keep] = arch.ops
    adj = np.zeros((n, n), dtype=np.uint8)
    adj[np.ix_(keep, keep)] = arch.adj
    return ops, adj
