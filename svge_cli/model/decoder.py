"""The SVGe decoder (Sec. III-B): graphs grown node by node, forwards and backwards at once.

Direction 0 grows the graph from the input node along the edges; direction 1
(SVGe only) runs the same procedure on the reversed graph, from the output
node.  The directions share this code and differ only in their weights (the
leading stack dimension of every parameter) and in the graph they are given.

One step, for a partial graph of t nodes with states H (Sec. III-B):
  H   <- prop(H)                        the encoder's message passing, own weights
  h_G <- gated sum of H                 Eq. 4
  type ~ addNode([z, h_G])              Eq. 6-7
  h_t <- initNode([z, h_G, L_d[type]])  Eq. 5 (the start node uses h_G = 0)
  e_it ~ addEdges([h_i, h_t, h_G, z])   Eq. 8, for every earlier node i
Node states are carried from step to step, as in the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from svge_cli.arch import INPUT_TYPE, OUTPUT_TYPE
from svge_cli.model.config import ModelConfig
from svge_cli.model.encoder import aggregators, join_halves, split_halves
from svge_cli.model.layers import MLP2, FusedRound, GatedSum, GRUProp, baddbmm, bmm, matmul_operand, smm

START_TYPES = (INPUT_TYPE, OUTPUT_TYPE)
END_TYPES = (OUTPUT_TYPE, INPUT_TYPE)


@dataclass
class _Prepared:
    """Everything that depends on z and the weights but not on the step: computed once.

    The first layers of addNode, initNode and addEdges act on concatenations; each
    is split into per-part weight blocks so that the parts that stay fixed during
    decoding (z, the type embeddings) are multiplied once, not at every step.
    """

    fused: list[FusedRound]
    z_node: Tensor  # (D, B, hidden) addNode's first layer on z, plus bias
    z_init: Tensor  # (D, B, hidden) initNode's first layer on z, plus bias
    z_edge: Tensor  # (D, B, hidden) addEdges' first layer on z, plus bias
    type_init: Tensor  # (D, V, hidden) initNode's first layer on each type's embedding
    node_graph: Tensor  # addNode's block for h_G
    init_graph: Tensor  # initNode's block for h_G
    edge_node: Tensor  # addEdges' block for the earlier node h_i
    edge_step: Tensor  # addEdges' block for [h_t, h_G]


@dataclass
class Generated:
    """Graphs grown by `Decoder.generate`, in each direction's own node order."""

    types: Tensor  # (D, B, M) long, -1 after the end node
    adj: Tensor  # (D, B, M, M) bool
    n_nodes: Tensor  # (D, B) long


def _pairs(t_max: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """All (earlier node i, new node t) pairs, t = 1..t_max-1, ordered by t then i."""
    steps = torch.arange(1, t_max, device=device)
    step = torch.repeat_interleave(steps, steps)
    first = torch.cumsum(steps, 0) - steps
    src = torch.arange(step.numel(), device=device) - torch.repeat_interleave(first, steps)
    return src, step


class Decoder(nn.Module):
    """p(G | z) for `cfg.directions` directions; every parameter has a leading direction axis."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, nd, lat, v = cfg.directions, cfg.node_dim, cfg.latent, cfg.vocab_size
        self.directions, self.latent, self.node_dim = d, lat, nd
        self.type_emb = nn.Parameter(torch.randn(d, v, nd))
        self.prop = GRUProp(2 * d, cfg.hidden, nd, cfg.rounds)
        self.readout = GatedSum(d, nd, lat)
        self.add_node = MLP2(d, 2 * lat, lat, v)  # input [z, h_G]
        self.init_node = MLP2(d, 2 * lat + nd, nd + lat, nd)  # input [z, h_G, L_d[type]]
        self.add_edges = MLP2(d, 2 * nd + 2 * lat, nd + lat, 1)  # input [h_i, h_t, h_G, z]
        self.register_buffer("start_types", torch.tensor(START_TYPES[:d]), persistent=False)
        self.register_buffer("end_types", torch.tensor(END_TYPES[:d]), persistent=False)

    # ------------------------------------------------------------ shared pieces

    def _prepare(self, z: Tensor) -> _Prepared:
        lat, nd = self.latent, self.node_dim
        zd = z.unsqueeze(0).expand(self.directions, -1, -1)
        node_z, node_graph = self.add_node.first.split_rows([lat, lat])
        init_z, init_graph, init_type = self.init_node.first.split_rows([lat, lat, nd])
        edge_node, edge_step, edge_z = self.add_edges.first.split_rows([nd, nd + lat, lat])
        return _Prepared(
            fused=self.prop.fuse(),
            z_node=baddbmm(self.add_node.first.bias.unsqueeze(1), zd, node_z),
            z_init=baddbmm(self.init_node.first.bias.unsqueeze(1), zd, init_z),
            z_edge=baddbmm(self.add_edges.first.bias.unsqueeze(1), zd, edge_z),
            type_init=bmm(self.type_emb, init_type),
            node_graph=node_graph,
            init_graph=matmul_operand(init_graph),
            edge_node=matmul_operand(edge_node),
            edge_step=edge_step,
        )

    def _type_rows(self, prep: _Prepared, types: Tensor) -> Tensor:
        """initNode's first-layer contribution of node types (D, B, ...) -> (D, B, ..., hidden)."""
        d = torch.arange(self.directions, device=types.device).view(-1, *([1] * (types.dim() - 1)))
        return prep.type_init[d, types.clamp(min=0)]

    def _init_node(self, prep: _Prepared, h_graph: Tensor | None, type_rows: Tensor) -> Tensor:
        """Eq. 5 for one new node per graph: (D, B, latent), (D, B, hidden) -> (D, B, node_dim)."""
        pre = prep.z_init + type_rows
        if h_graph is not None:
            pre = pre + bmm(h_graph, prep.init_graph)
        return self.init_node.second(torch.relu(pre))

    def _node_logits(self, prep: _Prepared, h_graph: Tensor) -> Tensor:
        """Eq. 7: h_G (D, B, ..., latent) -> type logits (D, B, ..., V)."""
        z_part = prep.z_node.view(*prep.z_node.shape[:2], *([1] * (h_graph.dim() - 3)), -1)
        pre = z_part + smm(h_graph, prep.node_graph)
        return self.add_node.second(torch.relu(pre))

    def _edge_step_part(self, prep: _Prepared, h_new: Tensor, h_graph: Tensor) -> Tensor:
        """addEdges' first layer on [h_t, h_G] (+ z part): (D, B, ..., hidden), once per step."""
        z_part = prep.z_edge.view(*prep.z_edge.shape[:2], *([1] * (h_new.dim() - 3)), -1)
        return z_part + smm(torch.cat([h_new, h_graph], -1), prep.edge_step)

    def _edge_logits(self, node_part: Tensor, step_part: Tensor) -> Tensor:
        """Second layer of addEdges on (per-node part + per-step part) -> logits."""
        return self.add_edges.second(torch.relu(node_part + step_part)).squeeze(-1)

    @staticmethod
    def _node_part(prep: _Prepared, h: Tensor) -> Tensor:
        """addEdges' first layer on the earlier nodes' states h_i."""
        return smm(h, prep.edge_node)

    def _propagate(self, prep: _Prepared, h: Tensor, adj: Tensor) -> tuple[Tensor, Tensor]:
        """prop + readout of the partial graphs: h (D, B, t, nd), adj (D, B, t, t)."""
        h = join_halves(self.prop(split_halves(h), aggregators(adj), prep.fused))
        return h, self.readout(h).squeeze(2)

    def _start(self, prep: _Prepared, batch: int) -> Tensor:
        """State of the start node, (D, B, 1, nd)."""
        rows = prep.type_init[torch.arange(self.directions), self.start_types].unsqueeze(1)
        return self._init_node(prep, None, rows.expand(-1, batch, -1)).unsqueeze(2)

    # ------------------------------------------------------------ training

    def loss(self, z: Tensor, types: Tensor, adj: Tensor, n_nodes: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced negative log-likelihood per graph: (node CE, edge BCE), each (B,).

        types (D, B, T) and adj (D, B, T, T) hold each direction's graph in its own
        node order; every loss term of a step t >= n_nodes is masked out.  Losses are
        summed over steps, candidate edges and directions (the paper's L_rec).

        Args:
            z: latent points the graphs are decoded from, (B, latent).
            types: node types per direction, (D, B, T) long, -1 past each graph's end.
            adj: adjacency per direction, (D, B, T, T) float 0/1, in that direction's node order.
            n_nodes: real node count of each graph, (B,), the same in every direction.

        Returns:
            The node-type cross-entropy and the edge binary cross-entropy, each (B,), summed as above.
        """
        d, b, t_max = types.shape
        prep = self._prepare(z)
        type_rows = self._type_rows(prep, types).unbind(2)
        h = self._start(prep, b)
        states, graphs, new_nodes = [], [], []
        for t in range(1, t_max):
            h, h_graph = self._propagate(prep, h, adj[:, :, :t, :t])
            h_new = self._init_node(prep, h_graph, type_rows[t])
            states.append(h)
            graphs.append(h_graph)
            new_nodes.append(h_new)
            h = torch.cat([h, h_new.unsqueeze(2)], 2)
        h_graph = torch.stack(graphs, 2)  # (D, B, T-1, latent)
        steps = torch.arange(1, t_max, device=z.device)
        live = (steps < n_nodes[:, None]).to(z.dtype)  # (B, T-1)
        logits = self._node_logits(prep, h_graph)
        ce = F.cross_entropy(logits.flatten(0, 2), types[:, :, 1:].clamp(min=0).flatten(), reduction="none")
        node_loss = (ce.view(d, b, -1) * live).sum((0, 2))

        src, step = _pairs(t_max, z.device)
        step_part = self._edge_step_part(prep, torch.stack(new_nodes, 2), h_graph)
        edge_logits = self._edge_logits(self._node_part(prep, torch.cat(states, 2)), step_part[:, :, step - 1])
        bce = F.binary_cross_entropy_with_logits(edge_logits, adj[:, :, src, step], reduction="none")
        edge_loss = (bce * (step < n_nodes[:, None]).to(z.dtype)).sum((0, 2))
        return node_loss, edge_loss

    # ------------------------------------------------------------ generation

    def generate(self, z: Tensor, max_nodes: int, greedy: bool, generator: torch.Generator | None) -> Generated:
        """Grow graphs in every direction until the end type is drawn or max_nodes is reached.

        Greedy takes the most likely type and edges with p > 0.5; otherwise types are
        drawn from the categorical (Gumbel-max) and edges from the Bernoulli.  A start
        type is never drawn after the start node, and at node max_nodes - 1 the end
        type is forced.

        Args:
            z: latent points, (B, latent).
            max_nodes: node cap M, start and end node included; at least 2.
            greedy: argmax choices rather than sampled ones.
            generator: source of the sampling when not greedy; None uses torch's global one.

        Returns:
            The grown graphs: types (D, B, M), edges (D, B, M, M) and node counts (D, B), each direction in its
            own node order.
        """
        d, b, dev = self.directions, z.shape[0], z.device
        prep = self._prepare(z)
        types = torch.full((d, b, max_nodes), -1, dtype=torch.long, device=dev)
        types[:, :, 0] = self.start_types[:, None]
        adj = torch.zeros(d, b, max_nodes, max_nodes, dtype=z.dtype, device=dev)
        n_nodes = torch.full((d, b), max_nodes, dtype=torch.long, device=dev)
        done = torch.zeros(d, b, dtype=torch.bool, device=dev)
        dirs = torch.arange(d, device=dev)
        h = self._start(prep, b)
        for t in range(1, max_nodes):
            h, h_graph = self._propagate(prep, h, adj[:, :, :t, :t])
            if t == max_nodes - 1:
                new_type = self.end_types[:, None].expand(d, b)
            else:
                logits = self._node_logits(prep, h_graph)
                logits[dirs, :, self.start_types] = float("-inf")
                new_type = _choose_type(logits, greedy, generator)
            h_new = self._init_node(prep, h_graph, self._type_rows(prep, new_type))
            step_part = self._edge_step_part(prep, h_new, h_graph)[:, :, None]
            edge_logits = self._edge_logits(self._node_part(prep, h), step_part)
            edges = _choose_edges(edge_logits, greedy, generator) & ~done[..., None]
            adj[:, :, :t, t] = edges.to(adj.dtype)
            types[:, :, t] = torch.where(done, -1, new_type)
            ended = ~done & (new_type == self.end_types[:, None])
            n_nodes = torch.where(ended, t + 1, n_nodes)
            done = done | ended
            if bool(done.all()):
                break
            h = torch.cat([h, h_new.unsqueeze(2)], 2)
        return Generated(types, adj.bool(), n_nodes)


def _choose_type(logits: Tensor, greedy: bool, generator: torch.Generator | None) -> Tensor:
    if greedy:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(u.clamp_min(np.finfo(np.float32).tiny)))
    return (logits + gumbel).argmax(-1)


def _choose_edges(logits: Tensor, greedy: bool, generator: torch.Generator | None) -> Tensor:
    if greedy:
        return logits > 0
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    return u < torch.sigmoid(logits)
