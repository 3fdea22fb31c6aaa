"""The autoencoder abilities of the paper's Table I, and the ISO check (paper Sec. III-D).

Protocols follow D-VAE / SVGe so the numbers compare with published ones:
reconstruction (10 encodes x 10 decodes per test cell, plus greedy), validity,
uniqueness and novelty from 1,000 prior points moved to the training latents'
range and decoded 10 times each, and ISO: a cell renumbered in another
topological order must land on the same latent point.

Validity is the paper's: the share of decodes that are valid DAGs
(`SearchSpace.dag_error`); uniqueness and novelty are shares of those.  The
share that are also cells of the space (NB101: at most 9 edges) is reported
beside it as `validity_in_space`; for ENAS and NB201 the two are the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from svge_cli.arch import Arch
from svge_cli.artifacts import Dataset
from svge_cli.evaluation.recon import reconstruction_accuracy
from svge_cli.model import SVGe, codec
from svge_cli.spaces import SearchSpace

ISO_TOLERANCE = 1e-4
#: the abilities that are shares, in the order of the paper's Table I (then ours)
SHARES = ("reconstruction", "reconstruction_greedy", "validity", "validity_in_space", "uniqueness", "novelty", "iso")


@dataclass
class Abilities:
    space: str
    test_cells: int
    reconstruction: float | None = None
    reconstruction_greedy: float | None = None
    validity: float | None = None
    validity_in_space: float | None = None
    uniqueness: float | None = None
    novelty: float | None = None
    iso: float | None = None
    iso_pairs: int = 0
    prior_points: int = 0


def training_latent_stats(model: SVGe, ds: Dataset, train_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the training cells' posterior means.

    Args:
        model: the trained autoencoder that encodes the cells.
        ds: the dataset holding the training cells.
        train_idx: row indices into `ds` of the training cells.

    Returns:
        The per-dimension mean and standard deviation, each of shape (D,), over the training cells.
    """
    mu, _ = codec.encode_arrays(model, ds.ops[train_idx], ds.adj[train_idx], ds.n_nodes[train_idx])
    return mu.mean(axis=0), mu.std(axis=0)


@dataclass
class PriorAbilities:
    """Shares of the decodes from the prior; uniqueness and novelty are shares of the valid DAGs."""

    validity: float
    validity_in_space: float
    uniqueness: float
    novelty: float


def prior_abilities(
    model: SVGe,
    space: SearchSpace,
    train_hashes: set[str],
    z_mean: np.ndarray,
    z_std: np.ndarray,
    n_points: int,
    n_decode: int,
    seed: int,
    on_decoded: Callable[[int], None] = lambda _: None,
) -> PriorAbilities:
    """Validity, uniqueness and novelty of decodes from prior points scaled to the training range.

    Args:
        model: the trained autoencoder that decodes the points.
        space: judges each decode (DAG validity, membership of the space) and hashes it.
        train_hashes: canonical hashes of the training cells; a valid decode outside them counts as novel.
        z_mean: per-dimension shift of the standard-normal points, (D,), from `training_latent_stats`.
        z_std: per-dimension scale of the points, (D,), from `training_latent_stats`.
        n_points: how many prior points to draw.
        n_decode: how many times each point is decoded (sampled, not greedy).
        seed: seeds both the points and the decoder's sampling.
        on_decoded: called after each pass over the points with the number of graphs that pass decoded.

    Returns:
        The four shares; all but `validity_in_space` are 0 when no decode is a valid DAG.
    """
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n_points, len(z_mean))) * z_std + z_mean).astype(np.float32)
    gen = torch.Generator(device=codec.model_device(model)).manual_seed(seed)
    valid: list[str] = []
    in_space = total = 0
    for _ in range(n_decode):
        for arch in codec.decode_once(model, z, greedy=False, max_nodes=None, generator=gen):
            total += 1
            in_space += codec.judge(space, arch).valid
            if space.dag_error(arch) is None:
                valid.append(space.hash(space.canonical(arch)))
        on_decoded(len(z))
    if not valid:
        return PriorAbilities(0.0, in_space / total, 0.0, 0.0)
    novel = sum(1 for h in valid if h not in train_hashes)
    return PriorAbilities(len(valid) / total, in_space / total, len(set(valid)) / len(valid), novel / len(valid))


def other_topological_order(arch: Arch, rng: np.random.Generator) -> list[int] | None:
    """A random topological order of `arch` that differs from 0..n-1, or None if there is none.

    Input stays first and output last (every space requires it).
    """
    n = arch.n_nodes
    for _ in range(20):
        indeg = arch.adj.sum(axis=0).astype(int)
        order: list[int] = []
        ready = [0]
        while ready:
            v = ready.pop(int(rng.integers(len(ready))))
            order.append(v)
            for w in arch.successors(v):
                indeg[w] -= 1
                if indeg[w] == 0:
                    ready.append(w)
        if len(order) == n and order != list(range(n)) and order[-1] == n - 1:
            return order
    return None


def iso_check(model: SVGe, archs: list[Arch], seed: int) -> tuple[float | None, int]:
    """Share of (cell, renumbered cell) pairs that encode to the same mean; and the pair count.

    Args:
        model: the autoencoder whose encoder is checked.
        archs: the cells to renumber; those with a single topological order are skipped.
        seed: seeds the choice of the other topological order.

    Returns:
        The share of pairs whose means agree within `ISO_TOLERANCE` (relative), None when no cell could be
        renumbered, and the number of pairs.
    """
    rng = np.random.default_rng(seed)
    pairs = [(a, a.permuted(o)) for a in archs if (o := other_topological_order(a, rng)) is not None]
    if not pairs:
        return None, 0
    mu_a, _ = codec.encode_archs(model, [p[0] for p in pairs])
    mu_b, _ = codec.encode_archs(model, [p[1] for p in pairs])
    same = np.all(np.abs(mu_a - mu_b) <= ISO_TOLERANCE * (1 + np.abs(mu_a)), axis=1)
    return float(same.mean()), len(pairs)


def decodes_needed(test_cells: int, n_encode: int, n_decode: int, prior_points: int) -> int:
    """Graphs `evaluate` decodes: greedy and sampled reconstruction, then the prior points.

    Args:
        test_cells: number of held-out cells reconstructed.
        n_encode: encodes per test cell in the sampled reconstruction.
        n_decode: decodes per encode, and per prior point.
        prior_points: number of points drawn from the prior.

    Returns:
        The total count of graphs decoded, the 100% mark of `on_decoded`'s progress.
    """
    return test_cells * (1 + n_encode * n_decode) + prior_points * n_decode


def evaluate(
    model: SVGe,
    space: SearchSpace,
    ds: Dataset,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    n_encode: int = 10,
    n_decode: int = 10,
    prior_points: int = 1000,
    seed: int = 0,
    step: Callable[[str], None] = lambda _: None,
    on_decoded: Callable[[int], None] = lambda _: None,
) -> Abilities:
    """Every ability on the held-out cells of `ds` (the split stored with the checkpoint).

    `step` hears the name of each protocol as it starts, `on_decoded` every batch of
    graphs decoded (`decodes_needed` is the total, for a progress bar with an ETA).

    Args:
        model: the trained autoencoder to evaluate.
        space: the search space of `ds`; judges validity and hashes decodes.
        ds: the dataset whose cells are encoded and decoded.
        train_idx: row indices of the training cells (latent range and novelty).
        test_idx: row indices of the held-out cells (reconstruction and ISO).
        n_encode: encodes per test cell in the sampled reconstruction.
        n_decode: decodes per encode, and per prior point.
        prior_points: points drawn from the prior for validity, uniqueness and novelty.
        seed: seeds the sampled reconstruction, the prior points and the ISO renumbering.
        step: called with a protocol's name as it starts.
        on_decoded: called with the number of graphs each batch decoded.

    Returns:
        The abilities; `iso` is None when no test cell has another topological order.
    """
    out = Abilities(space.name, int(len(test_idx)), prior_points=prior_points)
    ops, adj, n = ds.ops[test_idx], ds.adj[test_idx], ds.n_nodes[test_idx]
    gen = torch.Generator(device=codec.model_device(model)).manual_seed(seed)
    step("reconstruction (greedy)")
    out.reconstruction_greedy = reconstruction_accuracy(model, ops, adj, n, greedy=True, on_decoded=on_decoded)
    step(f"reconstruction ({n_encode} encodes x {n_decode} decodes)")
    out.reconstruction = reconstruction_accuracy(
        model, ops, adj, n, n_encode=n_encode, n_decode=n_decode, greedy=False, generator=gen, on_decoded=on_decoded
    )
    step(f"validity, uniqueness, novelty ({prior_points} prior points x {n_decode} decodes)")
    z_mean, z_std = training_latent_stats(model, ds, train_idx)
    prior = prior_abilities(
        model, space, set(ds.hashes[train_idx].tolist()), z_mean, z_std, prior_points, n_decode, seed, on_decoded
    )
    out.validity, out.validity_in_space = prior.validity, prior.validity_in_space
    out.uniqueness, out.novelty = prior.uniqueness, prior.novelty
    step("ISO (renumbered cells)")
    out.iso, out.iso_pairs = iso_check(model, list(ds.archs(test_idx)), seed)
    return out
