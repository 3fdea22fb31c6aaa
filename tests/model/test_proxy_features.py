"""Proxy features of a predictor: the workspace cache, fills, the GP without its one-hot block, larger cells."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY

from svge_cli.arch import Arch, pad_batch
from svge_cli.artifacts import Dataset
from svge_cli.console import Ui
from svge_cli.errors import SvgeError
from svge_cli.model import ModelConfig, SVGe, checkpoints
from svge_cli.model.features import FeatureSpec, ProxySource, pool_features, transform
from svge_cli.model.gphead import GPHead
from svge_cli.model.predictor import load_predictor
from svge_cli.networks.proxytable import ProxySettings
from svge_cli.spaces import get_space
from svge_cli.storage import store
from svge_cli.storage.proxycache import ProxyCache, cache_path
from svge_cli.storage.workspace import Workspace
from svge_cli.training.finetune import finetune
from svge_cli.training.finetune_run import finetuned_checkpoint
from svge_cli.training.labels import FinetuneConfig, draw_labels

NB201, NB101 = get_space("nb201"), get_space("nb101")
CHEAP = ProxySettings(batch_size=4, resolution=8, network=(("channels", 4), ("n", 1)))
SPEC = FeatureSpec(("synflow", "naswot", "params"), CHEAP)


def _ui(root: Path) -> Ui:
    return Ui(Workspace(root), quiet=True)


def test_proxies_are_computed_once_and_read_back_exactly(tmp_path: Path) -> None:
    cells = NB201.sample(8, seed=2)
    first = ProxySource(NB201, SPEC, _ui(tmp_path), workers=1)
    values = first.raw(cells[:5])
    assert first.computed == 5 and cache_path(Workspace(tmp_path), "nb201").is_file()
    again = ProxySource(NB201, SPEC, _ui(tmp_path), workers=1)
    both = again.raw(cells)
    assert again.computed == 3  # only the cells the cache had not seen
    assert np.array_equal(both[:5], values)
    third = ProxySource(NB201, SPEC, _ui(tmp_path), workers=1)
    assert np.array_equal(third.raw(cells[::-1]), both[::-1]) and third.computed == 0
    other = FeatureSpec(SPEC.proxies, ProxySettings(batch_size=8, resolution=8, network=CHEAP.network))
    fresh = ProxySource(NB201, other, _ui(tmp_path), workers=1)
    fresh.raw(cells[:2])
    assert fresh.computed == 2  # naswot's batch changed: no value of the old settings is reused


@pytest.mark.parametrize(
    ("attrs", "words"),
    [
        ({"space": "nb101"}, "caches nb101 proxies, not nb201"),
        ({"format": 99}, "format 99"),
        ({"kind": "svge-dataset"}, "not an svge proxy cache"),
    ],
)
def test_a_cache_of_another_space_or_version_is_refused_and_kept(tmp_path: Path, attrs: dict, words: str) -> None:
    ProxySource(NB201, SPEC, _ui(tmp_path), workers=1).raw(NB201.sample(2, seed=0))
    path = cache_path(Workspace(tmp_path), "nb201")
    with h5py.File(path, "a") as f:
        f.attrs.update(attrs)
    before = path.read_bytes()
    with pytest.raises(SvgeError, match=words):
        ProxySource(NB201, SPEC, _ui(tmp_path), workers=1)
    assert path.read_bytes() == before


def test_a_damaged_cache_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "proxies.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(SvgeError, match="cannot be read"):
        ProxyCache(path, "nb201")


def test_non_finite_proxies_read_as_a_fill_below_every_fitted_value() -> None:
    raw = np.array([[1e6, -np.inf], [1e2, 3.0], [1e4, 5.0]])
    spec = FeatureSpec(("synflow", "naswot"), CHEAP).fitted(transform(raw, ("synflow", "naswot")))
    cols = spec.columns(raw)
    assert np.isfinite(cols).all() and cols[0, 1] < 3.0
    assert cols[0, 0] == pytest.approx(np.log1p(1e6))
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    assert FeatureSpec.from_dict(None) == FeatureSpec()


def test_without_its_one_hot_block_the_gp_uses_the_other_columns_alone() -> None:
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(30, 3))
    x = np.concatenate([dense, np.zeros((30, 4))], axis=1)  # one-hot columns that never differ
    head = GPHead(2, 30, onehot_dim=4, proxy_dim=1).fit(x, dense.sum(1), iters=10)
    test = rng.normal(size=(5, 3))
    full = head(torch.as_tensor(np.concatenate([test, np.zeros((5, 4))], axis=1)))
    reduced = head(torch.as_tensor(test))
    assert torch.allclose(full, reduced) and torch.allclose(
        head.spread(torch.as_tensor(test)),
        head.spread(torch.as_tensor(np.concatenate([test, np.zeros((5, 4))], axis=1))),
    )
    with pytest.raises(ValueError, match="columns"):
        head(torch.as_tensor(test[:, :2]))


def _nb101_cells(n: int, seed: int = 4) -> list[Arch]:
    """Distinct valid NB101 cells: chains of 3-7 nodes with a few random skips (no enumeration of the space)."""
    rng, found = np.random.default_rng(seed), {}
    while len(found) < n:
        nodes = int(rng.integers(3, 8))
        adj = np.zeros((nodes, nodes), dtype=np.uint8)
        adj[np.arange(nodes - 1), np.arange(1, nodes)] = 1
        adj[np.triu(rng.random((nodes, nodes)) < 0.15, 2)] = 1
        ops = np.r_[0, rng.integers(2, NB101.vocab_size, nodes - 2), 1]
        cell = NB101.canonical(Arch(ops, adj))
        if NB101.is_valid(cell):
            found.setdefault(NB101.hash(cell), cell)
    return list(found.values())


def _nb101_dataset(n: int = 40) -> Dataset:
    archs = _nb101_cells(n)
    ds = Dataset.from_archs("nb101", archs, [NB101.hash(a) for a in archs])
    ds.labels = {"val_acc_108": np.array([0.8 + 0.01 * a.n_edges for a in archs])}
    return ds


def test_a_fitted_predictor_keeps_its_features_and_scores_larger_cells_without_one_hot(tmp_path: Path) -> None:
    ds = _nb101_dataset()
    torch.manual_seed(0)
    model = SVGe(ModelConfig(vocab_size=NB101.vocab_size, max_nodes=NB101.max_nodes, **TINY))
    cfg = FinetuneConfig(proxies=("params", "flops"), batch_size=8)
    draw = draw_labels(ds.labels["val_acc_108"], 24, cfg)
    predictor, history = finetune(model, ds, ds.labels["val_acc_108"], "val_acc_108", draw, cfg)
    assert predictor.features.proxies == ("params", "flops") and predictor.head.proxy_dim == 2
    base_path = tmp_path / "vae.h5"
    base = checkpoints.snapshot("nb101", model)
    store.save_checkpoint(base_path, base)
    ck = finetuned_checkpoint(base, base_path, predictor, ds, "ds", draw, cfg, history, "all")
    store.save_checkpoint(tmp_path / "ft.h5", ck)
    notes: list[str] = []
    ui = _ui(tmp_path)
    ui.note = notes.append  # type: ignore[method-assign]
    loaded = load_predictor(store.load_checkpoint(tmp_path / "ft.h5", "nb101"), ui=ui)
    cells = [ds.arch(i) for i in draw.unseen[:6]]
    assert np.allclose(loaded.from_archs(cells), predictor.from_archs(cells))
    chain = np.zeros((8, 8), dtype=np.uint8)
    chain[np.arange(7), np.arange(1, 8)] = 1  # a chain of 8 nodes: one more than NB101 allows
    larger = Arch(np.array([0, 2, 3, 2, 4, 2, 3, 1]), chain)
    mixed = loaded.from_archs([cells[0], larger, cells[1]])
    assert np.isfinite(mixed).all() and np.allclose(mixed[[0, 2]], loaded.from_archs([cells[0], cells[1]]))
    assert any("scored from latent means and proxies (params, flops)" in n for n in notes)
    assert "one-hot" not in loaded.describe(larger=True) and "one-hot" in loaded.describe()


def test_pool_features_weigh_the_proxy_block_like_the_latent_block(tmp_path: Path) -> None:
    cells = NB201.sample(12, seed=5)
    mu = np.random.default_rng(0).normal(size=(12, 16))
    source = ProxySource(NB201, FeatureSpec(("params", "flops"), CHEAP), _ui(tmp_path), workers=1)
    f = pool_features(mu, cells, source)
    assert f.shape == (12, 18) and np.allclose(f[:, :16].mean(0), 0)
    assert np.allclose(f[:, 16:].std(0), np.sqrt(16 / 2))
    plain = pool_features(mu, cells, source, onehot=pad_batch(cells)[0].astype(float), balance=False)
    assert np.allclose(plain[:, 16:18].std(0), 1) and source.computed == 12
