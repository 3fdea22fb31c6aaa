"""SVGe: the variational graph autoencoder of Sec. III, on padded dense batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from svge_cli.model.config import ModelConfig
from svge_cli.model.decoder import Decoder, Generated
from svge_cli.model.encoder import Encoder

ArrayLike = Any  # numpy array or torch tensor


def reverse_graphs(ops: Tensor, adj: Tensor, n_nodes: Tensor) -> tuple[Tensor, Tensor]:
    """Each graph with its node order reversed and its edges flipped.

    Node i < n becomes node n-1-i; padded positions stay where they are.  The
    result is again in topological order with the output node first: the graph
    the backward decoder learns to grow.

    Args:
        ops: node types, (B, N) long, padded with -1.
        adj: adjacency, (B, N, N), row node -> column node.
        n_nodes: real node count of each graph, (B,) long.

    Returns:
        The reversed node types (B, N) and adjacency (B, N, N).
    """
    n = ops.shape[1]
    pos = torch.arange(n, device=ops.device)
    perm = torch.where(pos < n_nodes[:, None], n_nodes[:, None] - 1 - pos, pos)  # (B, N)
    rev_ops = torch.gather(ops, 1, perm)
    rows = torch.gather(adj, 1, perm[:, :, None].expand(-1, -1, n))
    rev_adj = torch.gather(rows, 2, perm[:, None, :].expand(-1, n, -1))
    return rev_ops, rev_adj.transpose(1, 2)


def union_graphs(gen: Generated) -> tuple[Tensor, Tensor, Tensor]:
    """Combine the forward and backward decodes of each z into one graph.

    This follows the authors' released code: node count and node types come from
    the forward graph; backward node j (the j-th node counted from the output)
    is identified with forward node n_f-1-j, backward nodes beyond the forward
    graph's size are dropped, and the edge sets are united.  When the two decodes agree this is
    the common graph; when they differ the forward decode decides the nodes and
    the backward one can only add edges (e.g. the missing out-edge of a node the
    forward decoder left dangling).
    """
    ops, adj, n_f = gen.types[0], gen.adj[0], gen.n_nodes[0]
    if gen.types.shape[0] == 1:
        return ops, adj, n_f
    m = ops.shape[1]
    back = n_f[:, None] - 1 - torch.arange(m, device=ops.device)  # backward position of forward node u
    inside = back >= 0
    back = back.clamp(min=0)
    batch = torch.arange(ops.shape[0], device=ops.device)[:, None, None]
    mapped = gen.adj[1][batch, back[:, None, :], back[:, :, None]]  # [b, u, v] = adj_b[b, back[v], back[u]]
    mapped &= inside[:, :, None] & inside[:, None, :]
    return ops, adj | mapped, n_f


class SVGe(nn.Module):
    """Encoder q(z|G) and decoder p(G|z); `cfg.decoder` picks SVGe or the DGMG ablation."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    @property
    def device(self) -> torch.device:
        return self.decoder.type_emb.device

    def _batch(self, ops: ArrayLike, adj: ArrayLike, n_nodes: ArrayLike) -> tuple[Tensor, Tensor, Tensor]:
        dev = self.device
        return (
            torch.as_tensor(ops, device=dev).long(),
            torch.as_tensor(adj, device=dev).float(),
            torch.as_tensor(n_nodes, device=dev).long(),
        )

    def encode(self, ops: ArrayLike, adj: ArrayLike, n_nodes: ArrayLike) -> tuple[Tensor, Tensor]:
        """Posterior parameters (mu, logvar), each (B, latent), of padded graphs.

        Args:
            ops: node types, (B, N) padded with -1 (array or tensor).
            adj: adjacency, (B, N, N), 0/1.
            n_nodes: real node count of each graph, (B,).

        Returns:
            mu and logvar as tensors on the model's device.
        """
        return self.encoder(*self._batch(ops, adj, n_nodes))

    def loss(
        self, ops: ArrayLike, adj: ArrayLike, n_nodes: ArrayLike, eps: ArrayLike | None = None
    ) -> dict[str, Tensor]:
        """Negative ELBO of a batch (Eq. 10), every term averaged over the graphs.

        Per graph: rec = node cross-entropy + edge BCE, summed over steps, candidate
        edges and both directions (the log-likelihood of the graph); kl = Eq. 9;
        total = rec + kl_weight * kl, so kl_weight is the paper's alpha per graph at
        any batch size.  (The authors' code averages the edge BCE over a step's
        candidates and sums the KL over the batch while averaging rec, which makes
        its effective alpha batch_size times larger.)  In training mode
        z = mu + train_noise * eps * std (the authors' choice), else z = mu; `eps`
        (B, latent) is the standard normal noise, drawn here when not given (training
        draws it per cell, `svge_cli.training.noise`, so it does not depend on batching).
        Also returns mu and logvar, for losses on the latent point (fine-tuning).

        Args:
            ops: node types, (B, N) padded with -1 (array or tensor).
            adj: adjacency, (B, N, N), 0/1.
            n_nodes: real node count of each graph, (B,).
            eps: standard normal noise, (B, latent), used only in training mode; None draws it here.

        Returns:
            Scalar tensors total, rec, kl, node_loss and edge_loss (means over the batch), and mu and logvar,
            each (B, latent).
        """
        ops_t, adj_t, n_t = self._batch(ops, adj, n_nodes)
        mu, logvar = self.encoder(ops_t, adj_t, n_t)
        z = mu
        if self.training and self.cfg.train_noise > 0:
            noise = torch.randn_like(mu) if eps is None else torch.as_tensor(eps, device=mu.device, dtype=mu.dtype)
            z = mu + self.cfg.train_noise * noise * torch.exp(0.5 * logvar)
        types, adjs = ops_t.unsqueeze(0), adj_t.unsqueeze(0)
        if self.cfg.directions == 2:
            rev_ops, rev_adj = reverse_graphs(ops_t, adj_t, n_t)
            types, adjs = torch.stack([ops_t, rev_ops]), torch.stack([adj_t, rev_adj])
        node_loss, edge_loss = self.decoder.loss(z, types, adjs, n_t)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        rec = node_loss + edge_loss
        return {
            "total": (rec + self.cfg.kl_weight * kl).mean(),
            "rec": rec.mean(),
            "kl": kl.mean(),
            "node_loss": node_loss.mean(),
            "edge_loss": edge_loss.mean(),
            "mu": mu,
            "logvar": logvar,
        }

    @torch.inference_mode()
    def decode(
        self, z: ArrayLike, greedy: bool = True, max_nodes: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Latent points (B, latent) -> padded graphs: ops (B, M) int64 (-1 pad), adj (B, M, M) uint8, n (B,).

        M = max_nodes (default: the training maximum); a larger value lets the model
        extrapolate to larger graphs without retraining.

        Args:
            z: latent points, (B, latent) (array or tensor).
            greedy: argmax types and edges with p > 0.5; False samples them.
            max_nodes: node cap M, at least 2; None takes the training maximum.
            generator: source of the sampling when not greedy; None uses torch's global one.

        Returns:
            ops, adj and n as numpy arrays, as in the summary line.

        Raises:
            ValueError: when max_nodes < 2 or z has the wrong shape.
        """
        m = self.cfg.max_nodes if max_nodes is None else int(max_nodes)
        if m < 2:
            raise ValueError("max_nodes must be at least 2")
        z = torch.as_tensor(z, device=self.device).float()
        if z.dim() != 2 or z.shape[1] != self.cfg.latent:
            raise ValueError(f"latent points must have shape (B, {self.cfg.latent}), got {tuple(z.shape)}")
        ops, adj, n = union_graphs(self.decoder.generate(z, m, greedy, generator))
        return ops.cpu().numpy(), adj.to(torch.uint8).cpu().numpy(), n.cpu().numpy()
