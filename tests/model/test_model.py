"""The SVGe model: shapes, masking, invariances, the fused algebra, learning, decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svge_cli.arch import Arch, pad_batch, unpad
from svge_cli.evaluation.recon import exact_matches, reconstruction_accuracy
from svge_cli.model import (
    ModelConfig,
    SVGe,
    bf16_matmuls,
    configure_cpu,
    load_state_arrays,
    reverse_graphs,
    state_arrays,
    union_graphs,
)
from svge_cli.model.decoder import Generated
from svge_cli.model.encoder import aggregators
from svge_cli.model.layers import GRUProp

VOCAB = 6


def tiny_config(**kw: object) -> ModelConfig:
    base = dict(vocab_size=VOCAB, max_nodes=6, hidden=16, latent=8)
    base.update(kw)
    return ModelConfig(**base)


def random_archs(seed: int, count: int, n_min: int = 3, n_max: int = 6) -> list[Arch]:
    """Connected DAGs in topological order: every node reachable from the input and reaching the output."""
    rng = np.random.default_rng(seed)
    archs = []
    for _ in range(count):
        n = int(rng.integers(n_min, n_max + 1))
        adj = np.triu(rng.random((n, n)) < 0.4, 1).astype(np.uint8)
        for v in range(1, n):
            if not adj[:v, v].any():
                adj[rng.integers(0, v), v] = 1
        for v in range(n - 1):
            if not adj[v, v + 1 :].any():
                adj[v, rng.integers(v + 1, n)] = 1
        ops = np.concatenate([[0], rng.integers(2, VOCAB, n - 2), [1]])
        archs.append(Arch(ops, adj))
    return archs


def random_graphs(seed: int, count: int, width: int | None = None, **kw: int) -> tuple[np.ndarray, ...]:
    return pad_batch(random_archs(seed, count, **kw), width)


def make_model(seed: int = 0, **kw: object) -> SVGe:
    torch.manual_seed(seed)
    return SVGe(tiny_config(**kw)).eval()


def test_shapes_and_loss_terms() -> None:
    model = make_model()
    ops, adj, n = random_graphs(0, 5)
    mu, logvar = model.encode(ops, adj, n)
    assert mu.shape == logvar.shape == (5, 8)
    out = model.loss(ops, adj, n)
    for key in ("total", "rec", "kl", "node_loss", "edge_loss"):
        assert out[key].dim() == 0 and torch.isfinite(out[key])
    assert torch.allclose(out["rec"], out["node_loss"] + out["edge_loss"])
    assert torch.allclose(out["total"], out["rec"] + 0.005 * out["kl"])
    d_ops, d_adj, d_n = model.decode(mu)
    assert d_ops.shape == (5, 6) and d_adj.shape == (5, 6, 6) and d_n.shape == (5,)
    assert d_ops.dtype == np.int64 and d_adj.dtype == np.uint8


def test_fused_message_passing_equals_per_edge_reference() -> None:
    """A^T(H W_src W_ih) + deg (H W_dst W_ih + b W_ih) must equal fc messages summed per edge, then a GRUCell."""
    torch.manual_seed(0)
    hidden, msg = 4, 6
    prop = GRUProp(2, hidden, msg, rounds=2)
    ops, adj, n = random_graphs(1, 3, n_min=5, n_max=5)
    a = torch.as_tensor(adj).float()
    h0 = torch.randn(2, 3, 5, hidden)
    got = prop(h0, aggregators(a.unsqueeze(0)), prop.fuse())
    for s, agg in ((0, a.transpose(1, 2)), (1, a)):  # forward half: in-neighbours; backward half: out-neighbours
        h = h0[s].clone()
        for k in range(2):
            cell = torch.nn.GRUCell(msg, hidden)
            cell.weight_ih.data = prop.ih_weight[k][s].T.clone()
            cell.bias_ih.data = prop.ih_bias[k][s].clone()
            cell.weight_hh.data = prop.hh_weight[k][s].T.clone()
            cell.bias_hh.data = prop.hh_bias[k][s].clone()
            new = torch.empty_like(h)
            for b in range(3):
                m = torch.zeros(5, msg)
                for v in range(5):
                    for u in torch.nonzero(agg[b, v]).flatten().tolist():
                        m[v] += torch.cat([h[b, u], h[b, v]]) @ prop.msg_weight[k][s] + prop.msg_bias[k][s]
                new[b] = cell(m, h[b])
            h = new
        assert torch.allclose(got[s], h, atol=1e-5)


def test_padding_changes_nothing() -> None:
    model = make_model()
    archs = random_archs(2, 6)
    narrow, wide = pad_batch(archs, 6), pad_batch(archs, 10)
    mu_a, lv_a = model.encode(*narrow)
    mu_b, lv_b = model.encode(*wide)
    assert torch.allclose(mu_a, mu_b, atol=1e-5) and torch.allclose(lv_a, lv_b, atol=1e-5)
    loss_a, loss_b = model.loss(*narrow), model.loss(*wide)
    for key in ("total", "node_loss", "edge_loss", "kl"):
        assert torch.allclose(loss_a[key], loss_b[key], rtol=1e-5), key


def test_padding_nodes_hold_no_information() -> None:
    """Garbage in padded entries (types, edges among padded nodes) must not leak into real outputs."""
    model = make_model()
    ops, adj, n = random_graphs(3, 4, width=8)
    mu, _ = model.encode(ops, adj, n)
    noisy_ops, noisy_adj = ops.copy(), adj.copy()
    for b, nb in enumerate(n):
        noisy_ops[b, nb:] = 3
        noisy_adj[b, nb:, nb:] = np.triu(np.ones((8 - nb, 8 - nb), np.uint8), 1)
    assert torch.allclose(mu, model.encode(noisy_ops, noisy_adj, n)[0], atol=1e-5)


def test_encoder_is_invariant_to_topological_relabelling() -> None:
    model = make_model()
    # diamond with a tail: 1 and 2 are interchangeable in topological order
    arch = Arch([0, 2, 3, 4, 1], [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0] * 5])
    other = arch.permuted([0, 2, 1, 3, 4])
    assert other != arch
    mu_a, _ = model.encode(*pad_batch([arch]))
    mu_b, _ = model.encode(*pad_batch([other]))
    assert torch.allclose(mu_a, mu_b, atol=1e-5)


def test_reverse_graphs_is_an_involution_and_flips_edges() -> None:
    ops, adj, n = (torch.as_tensor(a) for a in random_graphs(4, 5, width=7))
    rev_ops, rev_adj = reverse_graphs(ops, adj, n)
    for b in range(5):
        nb = int(n[b])
        assert rev_ops[b, 0] == 1 and rev_ops[b, nb - 1] == 0
        assert torch.equal(rev_adj[b, :nb, :nb], adj[b, :nb, :nb].flip(0, 1).T)
    assert torch.all(torch.triu(rev_adj, 1) == rev_adj)
    back_ops, back_adj = reverse_graphs(rev_ops, rev_adj, n)
    assert torch.equal(back_ops, ops) and torch.equal(back_adj, adj)


def test_union_takes_nodes_from_forward_and_adds_backward_edges() -> None:
    # forward: 0 -> 1 -> 3, node 2 dangling (no out-edge); backward (reversed order) adds 2 -> 3
    fw_adj = torch.zeros(1, 5, 5, dtype=torch.bool)
    fw_adj[0, 0, 1] = fw_adj[0, 1, 3] = fw_adj[0, 0, 2] = True
    bw_adj = torch.zeros(1, 5, 5, dtype=torch.bool)
    bw_adj[0, 0, 1] = True  # reversed 0->1 is forward 2->3 (n = 4)
    bw_adj[0, 1, 4] = True  # beyond the forward graph's 4 nodes: dropped
    types = torch.tensor([[[0, 2, 3, 1, -1]], [[1, 3, 2, 0, -1]]])
    gen = Generated(types, torch.cat([fw_adj, bw_adj]).unsqueeze(1), torch.tensor([[4], [5]]))
    ops, adj, n = union_graphs(gen)
    assert ops.tolist() == [[0, 2, 3, 1, -1]] and n.tolist() == [4]
    assert sorted(map(tuple, torch.nonzero(adj[0]).tolist())) == [(0, 1), (0, 2), (1, 3), (2, 3)]


def test_loss_decreases() -> None:
    model = make_model().train()
    ops, adj, n = random_graphs(5, 16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = model.loss(ops, adj, n)["total"]
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("decoder", ["svge", "dgmg"])
def test_overfits_a_handful_of_graphs(decoder: str) -> None:
    model = make_model(decoder=decoder, hidden=32, latent=16).train()
    ops, adj, n = random_graphs(6, 8)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(250):
        loss = model.loss(ops, adj, n)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert reconstruction_accuracy(model, ops, adj, n, greedy=True) == 1.0


def test_decode_extrapolates_to_more_nodes() -> None:
    model = make_model()
    ops, adj, n = model.decode(
        torch.randn(16, 8), greedy=False, max_nodes=14, generator=torch.Generator().manual_seed(0)
    )
    assert ops.shape == (16, 14) and adj.shape == (16, 14, 14)
    for arch, nb in zip(unpad(ops, adj, n), n):
        assert 2 <= nb <= 14
        assert arch.ops[0] == 0 and arch.ops[-1] == 1
        assert not np.isin(arch.ops[1:-1], (0, 1)).any()
    assert (ops[np.arange(14) >= n[:, None]] == -1).all()


def test_decode_stops_at_the_end_type_or_the_limit() -> None:
    model = make_model()
    with torch.no_grad():
        model.decoder.add_node.second.bias[:, 1] += 100.0  # forward decoder: output type at once
    ops, _, n = model.decode(torch.randn(3, 8))
    assert n.tolist() == [2, 2, 2] and ops[:, :2].tolist() == [[0, 1]] * 3
    with torch.no_grad():
        model.decoder.add_node.second.bias[:, (0, 1)] = -100.0
    ops, _, n = model.decode(torch.randn(3, 8), max_nodes=9)
    assert n.tolist() == [9, 9, 9] and (ops[:, -1] == 1).all()


def test_dgmg_variant_has_one_direction() -> None:
    model = make_model(decoder="dgmg")
    assert model.decoder.type_emb.shape[0] == 1
    ops, adj, n = random_graphs(7, 4)
    assert torch.isfinite(model.loss(ops, adj, n)["total"])
    d_ops, _, d_n = model.decode(torch.randn(4, 8))
    assert d_ops.shape == (4, 6)


def test_seeded_runs_are_identical() -> None:
    ops, adj, n = random_graphs(8, 6)
    results = []
    for _ in range(2):
        model = make_model(seed=3).train()
        torch.manual_seed(11)
        loss = model.loss(ops, adj, n)["total"]
        loss.backward()
        sample = model.decode(torch.ones(4, 8), greedy=False, generator=torch.Generator().manual_seed(5))
        results.append((loss.item(), model.encoder.type_emb.weight.grad.clone(), sample))
    assert results[0][0] == results[1][0]
    assert torch.equal(results[0][1], results[1][1])
    for a, b in zip(results[0][2], results[1][2]):
        assert np.array_equal(a, b)


def test_state_arrays_round_trip() -> None:
    model, other = make_model(seed=0), make_model(seed=1)
    arrays = state_arrays(model)
    assert all(a.dtype == np.float32 for a in arrays.values())
    load_state_arrays(other, arrays)
    ops, adj, n = random_graphs(9, 3)
    assert torch.equal(model.encode(ops, adj, n)[0], other.encode(ops, adj, n)[0])
    half = state_arrays(model, np.float16)
    load_state_arrays(other, half)
    assert torch.allclose(model.encode(ops, adj, n)[0], other.encode(ops, adj, n)[0], atol=1e-2)
    with pytest.raises(ValueError, match="the model expects"):
        load_state_arrays(make_model(decoder="dgmg"), arrays)
    with pytest.raises(ValueError, match="missing"):
        load_state_arrays(other, {k: v for k, v in arrays.items() if "encoder" not in k})


def test_config_round_trip_and_validation() -> None:
    cfg = tiny_config(decoder="dgmg")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="decoder"):
        tiny_config(decoder="dvae")


def test_exact_matches_ignores_padding_width() -> None:
    ops, adj, n = random_graphs(10, 4, width=6)
    wide = pad_batch(unpad(ops, adj, n), 9)
    assert exact_matches(ops, adj, n, *wide).all()
    changed = adj.copy()
    changed[0, 0, n[0] - 1] ^= 1
    assert exact_matches(ops, changed, n, *wide).tolist() == [False, True, True, True]


def test_sampled_reconstruction_accuracy_is_a_fraction() -> None:
    model = make_model()
    ops, adj, n = random_graphs(11, 5)
    acc = reconstruction_accuracy(model, ops, adj, n, n_encode=2, n_decode=3, batch_size=4)
    assert 0.0 <= acc <= 1.0
    assert acc == reconstruction_accuracy(model, ops, adj, n, n_encode=2, n_decode=3, batch_size=4)


def test_bf16_matmuls_stay_close_to_fp32() -> None:
    model = make_model()
    ops, adj, n = random_graphs(12, 6)
    full = model.loss(ops, adj, n)
    with bf16_matmuls():
        low = model.loss(ops, adj, n)
        decoded = model.decode(full["mu"].detach())
    assert low["total"].dtype == torch.float32
    assert torch.allclose(low["total"], full["total"], rtol=2e-2)
    assert torch.allclose(low["mu"], full["mu"], atol=5e-2)
    assert decoded[0].shape == (6, 6)
    assert torch.equal(model.loss(ops, adj, n)["total"], full["total"])  # the context restores fp32


def test_configure_cpu_sets_threads() -> None:
    before = torch.get_num_threads()
    try:
        assert isinstance(configure_cpu(1), bool)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_configure_cpu_flushes_subnormal_floats_that_slow_converged_training() -> None:
    tiny = torch.tensor([1e-40], dtype=torch.float32)
    try:
        configure_cpu()
        assert (tiny * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)
