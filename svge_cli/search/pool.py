"""The candidate pool of an enumerable space: every cell's latent mean, cached per checkpoint.

Pool search needs a feature vector for every cell of the space.  Encoding is one batched pass
of the encoder over the enumeration's padded arrays (no per-cell Python work), so NB201's
15,625 cells take seconds and NB101's 423,624 a few minutes on one CPU thread; the result is
cached in the workspace under the checkpoint's fingerprint, so a second search with the same
checkpoint starts immediately and a different checkpoint never reuses stale latents:

    <workdir>/<space>/pools/<fingerprint>.h5     an svge latents file (docs/formats.md)

The file is the ordinary latents layout (mu, logvar, hash, the `checkpoint` attribute), written
atomically, so `svge` tools that read latents read it too.  Rows follow the dataset it was
encoded from (the enumeration), and its hashes are checked on load.

Features are z-scored per dimension over the whole pool: the GP's isotropic lengthscale then
treats every latent dimension alike, whatever scale the encoder gave it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from svge_cli.artifacts import Checkpoint, Dataset, Latents
from svge_cli.errors import StoreError
from svge_cli.model import SVGe, codec
from svge_cli.spaces import SearchSpace
from svge_cli.storage import store
from svge_cli.storage.workspace import Workspace

ENCODE_BATCH = 1024  # measured fastest on one CPU thread for NB201 (larger batches were slower)


def pool_path(ws: Workspace, space: str, fingerprint: str) -> Path:
    """Where the pool latents of one checkpoint are cached in the workspace.

    Args:
        ws: the workspace whose space folder holds the cache.
        space: name of the search space the pool enumerates.
        fingerprint: the checkpoint's fingerprint (`Checkpoint.fingerprint`), naming the file.

    Returns:
        ``<workdir>/<space>/pools/<fingerprint>.h5``; the file need not exist yet.
    """
    return ws.space_dir(space) / "pools" / f"{fingerprint}.h5"


def encode_pool(
    model: SVGe, ds: Dataset, batch_size: int = ENCODE_BATCH, progress: Callable[[int, int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Latent means and log-variances of every row of `ds`, in row order.

    Args:
        model: the autoencoder whose encoder is run, on its own device.
        ds: the cells to encode (padded ops, adjacency and node counts).
        batch_size: cells per forward pass; bounds memory, not the result.
        progress: called with (rows encoded so far, total rows) after every 16 batches; None: silent.

    Returns:
        mu and logvar, each (len(ds), latent) float32 on the CPU; (0, latent) for an empty dataset.
    """
    mus, logvars = [], []
    for s in range(0, len(ds), batch_size * 16):
        sl = slice(s, s + batch_size * 16)
        mu, lv = codec.encode_arrays(model, ds.ops[sl], ds.adj[sl], ds.n_nodes[sl], batch_size)
        mus.append(mu)
        logvars.append(lv)
        if progress is not None:
            progress(min(s + batch_size * 16, len(ds)), len(ds))
    dim = model.cfg.latent
    return (
        np.concatenate(mus) if mus else np.zeros((0, dim), np.float32),
        np.concatenate(logvars) if logvars else np.zeros((0, dim), np.float32),
    )


def pool_latents(
    ws: Workspace,
    ck: Checkpoint,
    ds: Dataset,
    model: SVGe | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Latents, bool]:
    """The latents of every cell of `ds` under checkpoint `ck`: from the cache, else encoded and cached.

    A cache file that is damaged, holds other cells or another checkpoint's latents is
    re-encoded and replaced.

    Args:
        ws: the workspace that holds the cache (`pool_path`).
        ck: the checkpoint whose encoder gives the latents; its fingerprint keys the cache.
        ds: every cell of the space, in pool order; its hashes must match a cached file's.
        model: the model already built from `ck`; None: rebuilt from it on `device` if encoding is needed.
        device: where a model rebuilt from `ck` runs; unused when `model` is given or the cache is hit.
        progress: called with (rows encoded so far, total rows) while encoding; None: silent.

    Returns:
        The latents (rows in `ds`'s order, tagged with `ck`'s fingerprint), and True when they
        came from the cache, False when they were just encoded.
    """
    fingerprint = ck.fingerprint()
    path = pool_path(ws, ds.space, fingerprint)
    if path.exists():
        try:
            lat = store.load_latents(path, ds.space)
            if lat.checkpoint == fingerprint and len(lat) == len(ds) and np.array_equal(lat.hashes, ds.hashes):
                return lat, True
        except StoreError:
            pass  # rebuilt below, never trusted
    if model is None:
        from svge_cli.model.checkpoints import model_from_checkpoint

        model = model_from_checkpoint(ck, device)
    mu, logvar = encode_pool(model, ds, progress=progress)
    lat = Latents(ds.space, mu, logvar, np.asarray(ds.hashes, dtype=str), fingerprint)
    store.save_latents(path, lat)
    return lat, False


def zscore(features: np.ndarray) -> np.ndarray:
    """Per-dimension z-scores over the pool (constant dimensions become 0)."""
    f = np.asarray(features, dtype=np.float64)
    std = f.std(0)
    return (f - f.mean(0)) / np.where(std > 0, std, 1.0)


def onehot_features(ds: Dataset, space: SearchSpace) -> np.ndarray:
    """The space's one-hot cells with constant columns dropped: the baseline encoding for pool search."""
    feats = space.one_hot(ds.ops, ds.adj)
    return feats[:, feats.std(0) > 0]


def timed_pool(ws: Workspace, ck: Checkpoint, ds: Dataset) -> tuple[Latents, bool, float]:
    """`pool_latents` with its wall time (benchmarks report it).

    Args:
        ws: the workspace that holds the cache.
        ck: the checkpoint whose encoder gives the latents; encoding, if needed, runs on the CPU.
        ds: every cell of the space, in pool order.

    Returns:
        The latents, whether they came from the cache, and the seconds the call took.
    """
    start = time.perf_counter()
    lat, cached = pool_latents(ws, ck, ds)
    return lat, cached, time.perf_counter() - start
