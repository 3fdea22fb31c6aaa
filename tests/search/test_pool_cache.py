"""Pool latents: encoded once per checkpoint, cached under its fingerprint, re-encoded when stale."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from svge_cli import artifacts
from svge_cli.model import ModelConfig, SVGe, checkpoints, codec
from svge_cli.search.pool import onehot_features, pool_latents, pool_path, zscore
from svge_cli.spaces import get_space
from svge_cli.storage.workspace import Workspace


def _cells(start: int, n: int) -> artifacts.Dataset:
    """NB201 cells start..start+n of the product order (no full enumeration needed)."""
    sp = get_space("nb201")
    archs = [sp.from_edge_ops(c) for c in itertools.islice(itertools.product(range(5), repeat=6), start, start + n)]
    return artifacts.Dataset.from_archs("nb201", archs, [sp.hash(a) for a in archs], sp.max_nodes)


def _checkpoint(seed: int) -> artifacts.Checkpoint:
    sp = get_space("nb201")
    torch.manual_seed(seed)
    model = SVGe(ModelConfig(vocab_size=sp.vocab_size, max_nodes=sp.max_nodes, hidden=8, latent=4)).eval()
    return checkpoints.snapshot("nb201", model)


def test_pool_latents_round_trip_through_the_cache(tmp_path):
    ws = Workspace(tmp_path)
    ds = _cells(0, 300)
    ck = _checkpoint(0)
    lat, cached = pool_latents(ws, ck, ds)
    assert not cached and lat.mu.shape == (300, 4) and lat.checkpoint == ck.fingerprint()
    assert pool_path(ws, "nb201", ck.fingerprint()).exists()
    again, cached = pool_latents(ws, ck, ds)
    assert cached and np.array_equal(again.mu, lat.mu) and list(again.hashes) == list(ds.hashes)
    direct, _ = codec.encode_archs(checkpoints.model_from_checkpoint(ck), list(ds.archs()))
    assert np.allclose(direct, lat.mu, atol=1e-5)


def test_another_checkpoint_or_other_cells_are_never_served_stale_latents(tmp_path):
    ws = Workspace(tmp_path)
    ds = _cells(0, 100)
    a, b = _checkpoint(0), _checkpoint(1)
    lat_a, _ = pool_latents(ws, a, ds)
    lat_b, cached = pool_latents(ws, b, ds)
    assert not cached and a.fingerprint() != b.fingerprint() and not np.allclose(lat_a.mu, lat_b.mu)
    other = _cells(100, 100)
    lat_o, cached = pool_latents(ws, a, other)
    assert not cached and list(lat_o.hashes) == list(other.hashes)
    pool_path(ws, "nb201", a.fingerprint()).write_bytes(b"damaged")
    lat_r, cached = pool_latents(ws, a, other)
    assert not cached and np.allclose(lat_r.mu, lat_o.mu)


def test_features():
    ds = _cells(1000, 50)
    oh = onehot_features(ds, get_space("nb201"))
    assert oh.shape[0] == 50 and set(np.unique(oh)) <= {0.0, 1.0} and oh.shape[1] <= 30
    # one op per edge; fixed columns (input/output types, the shared adjacency, edges never varied here) drop out
    assert np.allclose(oh.sum(1), oh.sum(1)[0]) and oh.sum(1)[0] <= 6
    z = zscore(np.random.default_rng(0).normal(3, 2, size=(100, 3)))
    assert np.allclose(z.mean(0), 0) and np.allclose(z.std(0), 1)
