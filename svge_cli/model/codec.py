"""Cells to latents and back, in batches, with the space's rules applied on the way out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from svge_cli.arch import Arch, pad_batch, unpad
from svge_cli.memory import ARCH_BYTES, ensure_fits
from svge_cli.model import SVGe
from svge_cli.spaces import SearchSpace

ENCODE_BATCH = 1024
DECODE_BATCH = 512


@dataclass
class Decoded:
    arch: Arch
    valid: bool
    reason: str | None  # why it is not a valid cell of the space


def model_device(model: SVGe) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def encode_arrays(
    model: SVGe, ops: np.ndarray, adj: np.ndarray, n_nodes: np.ndarray, batch_size: int = ENCODE_BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and log-variance of padded cells, batch by batch.

    Args:
        model: the autoencoder whose encoder is run (on its own device, without gradients).
        ops: node types, (B, N) padded with -1.
        adj: adjacency matrices, (B, N, N).
        n_nodes: real node count of each cell, (B,).
        batch_size: cells encoded per forward pass; bounds memory, not the result.

    Returns:
        mu and logvar, each (B, latent) float32 on the CPU; (0, latent) for an empty batch.
    """
    dev = model_device(model)
    mus, logvars = [], []
    for s in range(0, len(n_nodes), batch_size):
        sl = slice(s, s + batch_size)
        mu, logvar = model.encode(
            torch.as_tensor(ops[sl], dtype=torch.long, device=dev),
            torch.as_tensor(adj[sl], dtype=torch.float32, device=dev),
            torch.as_tensor(n_nodes[sl], dtype=torch.long, device=dev),
        )
        mus.append(mu.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
    dim = model.cfg.latent
    return (
        np.concatenate(mus) if mus else np.zeros((0, dim), np.float32),
        np.concatenate(logvars) if logvars else np.zeros((0, dim), np.float32),
    )


def encode_archs(model: SVGe, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
    ops, adj, n = pad_batch(archs)
    return encode_arrays(model, ops, adj, n)


@torch.inference_mode()
def decode_once(
    model: SVGe, z: np.ndarray, greedy: bool, max_nodes: int | None, generator: torch.Generator | None
) -> list[Arch]:
    """One decode per latent point (batched).

    Args:
        model: the autoencoder whose decoder is run.
        z: latent points, (B, latent).
        greedy: argmax types and edges with p > 0.5; False samples them.
        max_nodes: node cap of each decoded graph; None takes the model's training maximum.
        generator: source of the sampling when not greedy; None uses torch's global one.

    Returns:
        The decoded graphs, one per point in order, not yet checked against any space.
    """
    dev = model_device(model)
    out: list[Arch] = []
    for s in range(0, len(z), DECODE_BATCH):
        zt = torch.as_tensor(z[s : s + DECODE_BATCH], dtype=torch.float32, device=dev)
        ops, adj, n = model.decode(zt, greedy=greedy, max_nodes=max_nodes, generator=generator)
        out.extend(unpad(ops, adj, n))
    return out


def decode_bytes(model: SVGe, points: int, max_nodes: int | None = None) -> int:
    """Bytes a decode of `points` latent points surely allocates: one batch's (D, B, M, M) float
    adjacency and its boolean copy, the batch's uint8 result, and one cell per point.

    Args:
        model: the autoencoder that will decode (its direction count and node maximum matter).
        points: number of latent points to decode.
        max_nodes: the node cap passed to the decode; None means the model's training maximum.

    Returns:
        A lower bound on the bytes allocated, for `ensure_fits`.
    """
    m = max_nodes or model.cfg.max_nodes
    batch = min(points, DECODE_BATCH)
    return batch * m * m * (5 * model.cfg.directions + 1) + points * ARCH_BYTES


def judge(space: SearchSpace, arch: Arch, node_limit: int | None = None) -> Decoded:
    """A decoded graph with the space's verdict; valid cells come back in canonical form.

    Args:
        space: the search space whose rules are applied.
        arch: the decoded graph.
        node_limit: replaces the space's own node limit (extrapolation to larger cells); None keeps it.

    Returns:
        The verdict; an invalid graph is kept as decoded, with the reason.
    """
    reason = space.validate(space.canonical(arch), node_limit)
    return Decoded(space.canonical(arch) if reason is None else arch, reason is None, reason)


def decode_latents(
    model: SVGe, space: SearchSpace, z: np.ndarray, attempts: int = 1, seed: int = 0, max_nodes: int | None = None
) -> list[Decoded]:
    """Decode each point; with attempts > 1, keep the first valid of that many sampled decodes.

    One attempt means the deterministic greedy decode.  Invalid results are kept
    and marked, never dropped, so outputs stay aligned with inputs.

    Args:
        model: the autoencoder that decodes.
        space: the search space whose rules judge each decode.
        z: latent points, (B, latent).
        attempts: sampled decodes tried per point until one is valid; 1 (or less) means one greedy decode.
        seed: seeds the sampling when attempts > 1.
        max_nodes: node cap of the decoded graphs; above the space's own limit it also lifts that limit.

    Returns:
        One verdict per point, in order.

    Raises:
        SvgeError: when the decode would not fit in the available memory.
    """
    nodes = f" of up to {max_nodes:,} nodes" if max_nodes else ""
    ensure_fits(decode_bytes(model, len(z), max_nodes), f"decoding {len(z):,} points{nodes}", "decode fewer or smaller")
    limit = max_nodes if max_nodes and max_nodes > space.max_nodes else None
    if attempts <= 1:
        return [judge(space, a, limit) for a in decode_once(model, z, True, max_nodes, None)]
    gen = torch.Generator(device=model_device(model)).manual_seed(seed)
    result: list[Decoded | None] = [None] * len(z)
    pending = np.arange(len(z))
    for _ in range(attempts):
        decoded = [judge(space, a, limit) for a in decode_once(model, z[pending], False, max_nodes, gen)]
        for i, d in zip(pending, decoded):
            if result[i] is None or (d.valid and not result[i].valid):
                result[i] = d
        pending = np.asarray([i for i in pending if not result[i].valid], dtype=np.int64)
        if pending.size == 0:
            break
    return result  # type: ignore[return-value]
