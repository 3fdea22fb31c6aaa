"""Building blocks that run S independent copies ("stacks") of a layer in one matmul.

SVGe computes the same kind of layer for several independent streams: the
forward and backward message-passing halves, and the forward and backward
decoders.  Each stream has its own weights but the same shapes, so they are
stored with a leading stack dimension and applied with one batched matmul:
one implementation, parameterised by weights, and a quarter of the tiny ops.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_matmul_dtype: list[torch.dtype | None] = [None]  # None: full fp32


@contextmanager
def bf16_matmuls(enabled: bool = True) -> Iterator[None]:
    """Within the block (process-wide), every matmul of the model takes bfloat16 inputs.

    Products accumulate in fp32 and come back as fp32; weights, optimizer state and
    all element-wise work stay fp32 (the usual mixed precision).  Whether that is
    faster depends on torch's CPU kernels as much as on the CPU: with an earlier torch
    these matmuls ran 2-2.5x faster on this AVX512-BF16 machine, with torch 2.13 a bf16
    [896 x 128] x [128 x 1152] product takes 1.6 ms against 0.8 ms in fp32.
    """
    previous = _matmul_dtype[0]
    _matmul_dtype[0] = torch.bfloat16 if enabled else None
    try:
        yield
    finally:
        _matmul_dtype[0] = previous


def matmul_operand(w: Tensor) -> Tensor:
    """`w` cast once to the matmul precision, for weights that several matmuls reuse."""
    low = _matmul_dtype[0]
    return w if low is None else w.to(low)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """torch.bmm in the precision chosen by `bf16_matmuls`, fp32 out."""
    low = _matmul_dtype[0]
    if low is None:
        return torch.bmm(a, b)
    return torch.bmm(a.to(low), b.to(low)).float()


def baddbmm(c: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """c + a @ b (batched) in the precision chosen by `bf16_matmuls`, fp32 out.

    Args:
        c: the added term, (B, n, m) or broadcastable to it; kept in fp32.
        a: left factors, (B, n, k).
        b: right factors, (B, k, m).

    Returns:
        The (B, n, m) fp32 sum.
    """
    low = _matmul_dtype[0]
    if low is None:
        return torch.baddbmm(c, a, b)
    return torch.bmm(a.to(low), b.to(low)) + c


def smm(x: Tensor, w: Tensor) -> Tensor:
    """Stacked matmul: x (S, ..., k) times w (S, k, m) -> (S, ..., m)."""
    s, k = x.shape[0], x.shape[-1]
    y = bmm(x.reshape(s, -1, k), w)
    return y.view(*x.shape[:-1], w.shape[-1])


def _uniform(t: Tensor, fan_in: int) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(t, -bound, bound)


class StackedLinear(nn.Module):
    """S independent fully connected layers (torch.nn.Linear's initialisation).

    Args:
        stacks: S, the independent copies applied in one batched matmul.
        d_in: input features of each layer.
        d_out: output features of each layer.
    """

    def __init__(self, stacks: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(stacks, d_in, d_out))
        self.bias = nn.Parameter(torch.empty(stacks, d_out))
        _uniform(self.weight, d_in)
        _uniform(self.bias, d_in)

    def forward(self, x: Tensor) -> Tensor:
        s, k = x.shape[0], x.shape[-1]
        y = baddbmm(self.bias.unsqueeze(1), x.reshape(s, -1, k), self.weight)
        return y.view(*x.shape[:-1], -1)

    def split_rows(self, sizes: list[int]) -> tuple[Tensor, ...]:
        """The weight blocks that multiply consecutive input parts of these sizes.

        A layer on a concatenation [a, b, ...] equals the sum of each part times its
        block, which lets callers compute parts that do not change only once.  One
        split (rather than several slices) keeps the backward pass to one copy.
        """
        return torch.split(self.weight, sizes, dim=1)


class MLP2(nn.Module):
    """The paper's "two-layer fc with ReLU": fc -> ReLU -> fc, S stacks.

    Args:
        stacks: S, the independent copies.
        d_in: input features.
        d_hidden: features between the two layers.
        d_out: output features.
    """

    def __init__(self, stacks: int, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.first = StackedLinear(stacks, d_in, d_hidden)
        self.second = StackedLinear(stacks, d_hidden, d_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.second(torch.relu(self.first(x)))


class GatedSum(nn.Module):
    """Eq. 4: h_G = sum_v sigmoid(fc_g(h_v)) * fc(h_v), with `heads` readouts in one matmul.

    Args:
        stacks: S, the independent copies.
        d_in: node state features.
        d_out: graph embedding features of each readout.
        heads: readouts computed together (e.g. the mean and the log-variance).
    """

    def __init__(self, stacks: int, d_in: int, d_out: int, heads: int = 1) -> None:
        super().__init__()
        self.heads, self.d_out = heads, d_out
        self.fc = StackedLinear(stacks, d_in, heads * (d_out + 1))

    def forward(self, h: Tensor, mask: Tensor | None = None) -> Tensor:
        """h (S, B, n, d_in), mask (B, n) of real nodes or None -> (S, B, heads, d_out)."""
        gate, value = self.fc(h).view(*h.shape[:3], self.heads, self.d_out + 1).split([1, self.d_out], -1)
        gate = torch.sigmoid(gate)
        if mask is not None:
            gate = gate * mask[None, :, :, None, None]
        return (gate * value).sum(2)


ALIGN = 16  # fp32 GEMMs run 10-25% faster when the state width is a multiple of 16 (125 -> 128)


@dataclass
class FusedRound:
    """One round's weights, pre-multiplied for `GRUProp` (see there)."""

    weight: Tensor  # (S, p, 9p): [W_src W_ih | W_dst W_ih | W_hh], p = padded state width
    bias: Tensor  # (S, 1, 1, 3p): b_ih plus the r and z parts of b_hh (they are only ever summed)
    deg_bias: Tensor  # (S, 1, 1, 3p): b_msg W_ih, counted once per neighbour
    bias_hn: Tensor  # (S, 1, 1, p): the n part of b_hh, which the reset gate scales


class GRUProp(nn.Module):
    """K rounds of synchronous message passing with a GRU update (Eq. 2), S stacks.

    The message is one fc layer on [h_u, h_v] (u the neighbour, v the receiver)
    summed over neighbours, and it feeds straight into the GRU's input matmul.
    Both are linear, so for node v with aggregation row a_v (A^T for in-neighbours,
    A for out-neighbours) and degree d_v:

        W_ih (sum_u W [h_u, h_v] + b) = a_v (H W_src W_ih) + d_v (h_v W_dst W_ih + b W_ih)

    One matmul of H by [W_src W_ih | W_dst W_ih | W_hh] (h x 9h) per round then
    replaces the message fc (h x 2m), the GRU input fc (m x 3h) and the GRU hidden
    fc (h x 3h): 9h^2 instead of 2hm + 3mh + 3h^2 multiply-adds per node (m = 2h:
    140k instead of 203k at h = 125), and no per-edge tensor.  The parameters are
    still the paper's separate layers; only the arithmetic is regrouped.

    Args:
        stacks: S, the independent copies.
        hidden: h, node state features.
        msg_dim: m, message features of the paper's message fc.
        rounds: K, message-passing rounds.
    """

    def __init__(self, stacks: int, hidden: int, msg_dim: int, rounds: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.padded = -(-hidden // ALIGN) * ALIGN
        h, m = hidden, msg_dim
        self.msg_weight = nn.ParameterList(nn.Parameter(torch.empty(stacks, 2 * h, m)) for _ in range(rounds))
        self.msg_bias = nn.ParameterList(nn.Parameter(torch.empty(stacks, m)) for _ in range(rounds))
        self.ih_weight = nn.ParameterList(nn.Parameter(torch.empty(stacks, m, 3 * h)) for _ in range(rounds))
        self.ih_bias = nn.ParameterList(nn.Parameter(torch.empty(stacks, 3 * h)) for _ in range(rounds))
        self.hh_weight = nn.ParameterList(nn.Parameter(torch.empty(stacks, h, 3 * h)) for _ in range(rounds))
        self.hh_bias = nn.ParameterList(nn.Parameter(torch.empty(stacks, 3 * h)) for _ in range(rounds))
        for k in range(rounds):
            _uniform(self.msg_weight[k], 2 * h)
            _uniform(self.msg_bias[k], 2 * h)
            for p in (self.ih_weight[k], self.ih_bias[k], self.hh_weight[k], self.hh_bias[k]):
                _uniform(p, h)

    def fuse(self) -> list[FusedRound]:
        """Pre-multiplied weights; compute once per forward pass and reuse at every step.

        Every pre-activation of the candidate state n is doubled here, so that
        `gru_update` can use tanh(a) = 2 sigmoid(2a) - 1: torch's CPU tanh costs
        several times its sigmoid, and the doubling rides along for free.  The
        state is zero-padded to `padded` entries; zero rows, columns and biases
        keep the padding at exactly zero through every update.
        """
        h = self.hidden
        gate_scale = torch.tensor([1.0, 1.0, 2.0], device=self.hh_bias[0].device).repeat_interleave(h)
        out = []
        for k in range(len(self.msg_weight)):
            w_ih = self.ih_weight[k] * gate_scale
            src_ih, dst_ih = bmm(self.msg_weight[k], w_ih).split(h, 1)  # acting on h_u, on h_v
            hh_rz, hh_n = (self.hh_bias[k] * gate_scale).split([2 * h, h], 1)
            blocks = [self._pad(w) for w in (src_ih, dst_ih, self.hh_weight[k] * gate_scale)]
            bias = self.ih_bias[k] * gate_scale + torch.cat([hh_rz, torch.zeros_like(hh_n)], 1)
            deg_bias = bmm(self.msg_bias[k].unsqueeze(1), w_ih).squeeze(1)
            out.append(
                FusedRound(
                    matmul_operand(torch.cat(blocks, 2)),
                    self._pad(bias)[:, None, None],
                    self._pad(deg_bias)[:, None, None],
                    F.pad(hh_n, (0, self.padded - h))[:, None, None],
                )
            )
        return out

    def _pad(self, w: Tensor) -> Tensor:
        """(S, [rows,] 3h) gate-blocked weights or biases -> (S, [padded,] 3 padded), zeros added."""
        h, extra = self.hidden, self.padded - self.hidden
        if w.dim() == 2:
            return F.pad(w.view(w.shape[0], 3, h), (0, extra)).flatten(1)
        return F.pad(w.view(*w.shape[:2], 3, h), (0, extra, 0, 0, 0, extra)).flatten(2)

    def forward(self, h: Tensor, agg: Tensor, fused: list[FusedRound]) -> Tensor:
        """h (S, B, n, hidden), agg (S, B, n, n) with agg[v, u] = 1 when v hears from u.

        Args:
            h: initial node states, (S, B, n, hidden), one stack per propagation half.
            agg: who each node hears from, (S, B, n, n), as `aggregators` builds it.
            fused: one prepared round per message-passing round, from `GRUProp.fuse`.

        Returns:
            The node states after every round, (S, B, n, hidden).
        """
        s, b, n, _ = h.shape
        hd = self.padded
        h = F.pad(h, (0, hd - self.hidden))
        deg = agg.sum(-1, keepdim=True)
        agg = agg.reshape(s * b, n, n)
        for r in fused:
            src, dst, hh = bmm(h.reshape(s, b * n, hd), r.weight).view(s, b, n, 9 * hd).split(3 * hd, -1)
            const = torch.addcmul(r.bias, deg, r.deg_bias).view(s * b, n, 3 * hd)
            msg = baddbmm(const, agg, src.reshape(s * b, n, 3 * hd)).view(s, b, n, 3 * hd)
            h = gru_update(torch.addcmul(msg, deg, dst), hh, h, r.bias_hn)
        return h[..., : self.hidden]


def gru_update(gi: Tensor, gh: Tensor, h: Tensor, bias_hn: Tensor) -> Tensor:
    """torch.nn.GRUCell's update from its pre-activations, as prepared by `GRUProp.fuse`.

    gi = W_ih x + b_ih + (r, z parts of b_hh), gh = W_hh h without bias, and
    bias_hn the n part of b_hh, with the n parts doubled: the same gates as
    GRUCell, with the biases moved where they cost no extra pass over the data.

    Args:
        gi: input pre-activations, (..., 3 hd), gates ordered r, z, n, the n part doubled.
        gh: hidden-state pre-activations without bias, (..., 3 hd), the n part doubled.
        h: the current hidden states, (..., hd).
        bias_hn: the doubled n part of b_hh, broadcastable to (..., hd).

    Returns:
        The new hidden states, (..., hd), as GRUCell would give them.
    """
    hd = h.shape[-1]
    gi_rz, gi_n = gi.split([2 * hd, hd], -1)
    gh_rz, gh_n = gh.split([2 * hd, hd], -1)
    reset, update = torch.sigmoid(gi_rz + gh_rz).chunk(2, -1)
    cand = torch.sigmoid(torch.addcmul(gi_n, reset, gh_n + bias_hn)).mul(2).sub_(1)  # tanh of the halved sum
    return torch.lerp(cand, h, update)
