"""The SVGe encoder (Sec. III-A): forward and backward message passing, gated-sum readout."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from svge_cli.model.config import ModelConfig
from svge_cli.model.layers import GatedSum, GRUProp


def aggregators(adj: Tensor) -> Tensor:
    """adj (D, B, n, n) -> (2D, B, n, n): per direction [A^T, A].

    Row v of A^T sums over v's in-neighbours (messages along the edges), row v of
    A over its out-neighbours (against the edges).  Stack 2d is the forward half
    of direction d, stack 2d+1 the backward half.
    """
    d, b, n, _ = adj.shape
    return torch.stack([adj.transpose(-1, -2), adj], 1).reshape(2 * d, b, n, n)


def split_halves(h: Tensor) -> Tensor:
    """(D, B, n, 2h) node states -> (2D, B, n, h) stacks for `GRUProp`."""
    d, b, n, width = h.shape
    half = width // 2
    return h.view(d, b, n, 2, half).permute(0, 3, 1, 2, 4).reshape(2 * d, b, n, half)


def join_halves(h: Tensor) -> Tensor:
    """Inverse of `split_halves`: concatenate each node's forward and backward halves (Eq. 3)."""
    s, b, n, half = h.shape
    return h.view(s // 2, 2, b, n, half).permute(0, 2, 3, 1, 4).reshape(s // 2, b, n, 2 * half)


class Encoder(nn.Module):
    """q(z | G): node-type embedding, K rounds both ways, two gated sums (mu, log-variance)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.type_emb = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.prop = GRUProp(2, cfg.hidden, cfg.node_dim, cfg.rounds)
        self.readout = GatedSum(1, cfg.node_dim, cfg.latent, heads=2)

    def forward(self, ops: Tensor, adj: Tensor, n_nodes: Tensor) -> tuple[Tensor, Tensor]:
        """ops (B, N) padded with -1, adj (B, N, N) float, n_nodes (B,) -> mu, logvar (B, latent).

        Padded nodes have no edges, so they send nothing to real nodes; the readout
        mask removes their own states.

        Args:
            ops: node types, (B, N) long, padded with -1.
            adj: adjacency, (B, N, N) float 0/1, row node -> column node.
            n_nodes: real node count of each cell, (B,) long.

        Returns:
            The posterior mean and log-variance, each (B, latent).
        """
        b, n = ops.shape
        h = self.type_emb(ops.clamp(min=0)).unsqueeze(0).expand(2, b, n, -1)
        h = self.prop(h, aggregators(adj.unsqueeze(0)), self.prop.fuse())
        mask = (torch.arange(n, device=ops.device) < n_nodes[:, None]).to(h.dtype)
        mu, logvar = self.readout(join_halves(h), mask)[0].unbind(1)
        return mu, logvar
