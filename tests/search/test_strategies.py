"""Pool search, random search and evolution on tiny synthetic pools: no repeats, exact budgets, resume."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from svge_cli.arch import Arch
from svge_cli.model.exact_gp import ExactGP
from svge_cli.search.evolution import EvolutionPool, EvolutionSpace, mutate
from svge_cli.search.pool_bo import PoolBO
from svge_cli.search.random_search import RandomPool
from svge_cli.search.strategies import History, SearchError, run_search, search
from svge_cli.search.surrogates import DNGO, PriorMeanGP, transform_targets
from svge_cli.spaces import get_space


def _pool(n: int = 300, dim: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points in a box and a smooth objective with one clear maximum."""
    x = np.random.default_rng(seed).normal(size=(n, dim))
    y = -np.square(x - 0.5).sum(1) + 0.3 * np.sin(3 * x[:, 0])
    return x, y


def _objective(y: np.ndarray):
    return lambda cells: [float(y[i]) for i in cells]


@pytest.mark.parametrize(
    "rule,acq,surrogate",
    [("kb", "ei", "gp"), ("topk", "ei", "gp"), ("kb", "ucb", "gp"), ("kb", "ts", "gp"), ("kb", "ei", "gp-ard")],
)
def test_pool_bo_never_repeats_and_spends_the_budget_exactly(rule, acq, surrogate):
    x, y = _pool()
    strategy = PoolBO(x, surrogate=surrogate, init=7, batch_rule=rule, acquisition=acq)
    rounds = list(run_search(strategy, _objective(y), budget=33, batch=5, seed=1))
    cells = [c for r in rounds for c in r.candidates]
    assert len(cells) == 33 == rounds[-1].queries
    assert len(set(cells)) == 33
    assert [len(r.candidates) for r in rounds] == [7, 5, 5, 5, 5, 5, 1]  # init in one round, the last one cut
    assert rounds[-1].best_score == max(y[cells])


def test_pool_bo_beats_random_on_a_smooth_function():
    x, y = _pool(n=400)
    found = {"bo": [], "random": []}
    for seed in range(3):
        for name, strategy in (("bo", PoolBO(x, init=5)), ("random", RandomPool(len(x)))):
            h = search(strategy, _objective(y), budget=30, batch=5, seed=seed)
            found[name].append(h.best()[0])
    assert np.mean(found["bo"]) > np.mean(found["random"])
    assert max(found["bo"]) == y.max()


def test_the_whole_pool_can_be_queried_and_no_more():
    x, y = _pool(n=12)
    h = search(PoolBO(x, init=3), _objective(y), budget=12, batch=5, seed=0)
    assert sorted(h.candidates) == list(range(12))
    with pytest.raises(SearchError):
        search(RandomPool(12), _objective(y), budget=13, batch=5, seed=0)


def test_a_resumed_search_continues_as_the_uninterrupted_one():
    x, y = _pool()
    full = search(PoolBO(x, init=6), _objective(y), budget=26, batch=4, seed=3)
    part = search(PoolBO(x, init=6), _objective(y), budget=14, batch=4, seed=3)
    saved = History(list(part.candidates), list(part.keys), list(part.scores))
    resumed = search(PoolBO(x, init=6), _objective(y), budget=26, batch=4, seed=3, history=saved)
    assert resumed.candidates == full.candidates


def test_failed_scores_count_as_queries_but_never_win():
    x, y = _pool(n=60)
    h = search(
        PoolBO(x, init=4),
        lambda cells: [float("nan") if i % 3 == 0 else float(y[i]) for i in cells],
        budget=20,
        batch=4,
        seed=0,
    )
    assert len(h) == 20 and len(set(h.candidates)) == 20
    assert np.isfinite(h.best()[0]) and h.best()[1] % 3 != 0


def test_surrogates_fit_a_simple_function():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(60, 2))
    f = lambda a: np.sin(a[:, 0]) + 0.5 * a[:, 1] ** 2  # noqa: E731
    xt = rng.uniform(-2, 2, size=(200, 2))
    for model in (ExactGP(), ExactGP(ard=True), DNGO(epochs=300)):
        yt = transform_targets(f(x), "none")
        model.fit(x, yt)
        mean, var = model.predict(xt)
        truth = (f(xt) - f(x).mean()) / f(x).std()
        assert np.corrcoef(mean, truth)[0, 1] > 0.9, type(model).__name__
        assert (var > 0).all()
        m2, cov = model.joint(xt[:10])
        assert np.allclose(m2, mean[:10]) and np.allclose(np.diag(cov), var[:10], rtol=1e-4, atol=1e-8)


def test_a_prior_mean_carries_the_trend_its_columns_explain():
    """Far from every scored cell the GP alone reverts to a constant; over the prior it keeps the proxy's trend."""
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(40, 3))
    proxy = rng.uniform(-1, 1, size=(40, 1))
    y = 2.0 * proxy[:, 0] + 0.1 * np.sin(latent[:, 0])
    model = PriorMeanGP(1, ExactGP())
    model.fit(np.hstack([latent, proxy]), y)
    assert model.weights[1] == pytest.approx(2.0, rel=0.1)
    far = np.hstack([np.full((3, 3), 30.0), np.array([[-1.0], [0.0], [1.0]])])
    mean, var = model.predict(far)
    assert np.all(np.diff(mean) > 1.5) and model.noise == model.base.noise
    joint_mean, cov = model.joint(far)
    assert np.allclose(joint_mean, mean) and np.allclose(np.diag(cov), var, rtol=1e-4)
    alone = ExactGP()
    alone.fit(latent, y)
    assert np.ptp(alone.predict(far[:, :3])[0]) < 1e-6


def test_target_transforms_keep_the_order():
    y = np.array([10.0, 91.0, 90.0, 50.0, 91.5])
    for how in ("none", "rank", "log"):
        t = transform_targets(y, how)
        assert list(np.argsort(t)) == list(np.argsort(y)) and abs(t.mean()) < 1e-9


# ---------------------------------------------------------------- evolution


@functools.lru_cache(maxsize=1)
def _nb201():
    return get_space("nb201").enumerate_dataset()


def test_evolution_over_the_nb201_pool_yields_only_valid_unseen_neighbours():
    sp = get_space("nb201")
    ds = _nb201()
    archs = list(ds.archs())
    rng = np.random.default_rng(0)
    score = rng.normal(size=len(ds))
    strategy = EvolutionPool(sp, archs, ds.hashes, population=10, sample=3)
    rounds = list(run_search(strategy, _objective(score), budget=60, batch=1, seed=0))
    cells = [c for r in rounds for c in r.candidates]
    assert len(cells) == 60 == len(set(cells))
    assert len(rounds[0].candidates) == 10  # the initial population is one round
    for i in cells[10:]:  # every child differs from some earlier cell by exactly one edge op
        earlier = np.asarray([archs[j].ops for j in cells[: cells.index(i)]])
        assert (np.sum(earlier != archs[i].ops, axis=1) == 1).any()


def _nb101_sampler(n: int, seed: int) -> list:
    """Random valid NB101 cells by rejection (the space's own sampler enumerates 423,624 cells)."""
    sp, rng, out = get_space("nb101"), np.random.default_rng(seed), []
    while len(out) < n:
        adj = np.triu(rng.random((7, 7)) < 0.35, 1).astype(np.uint8)
        ops = np.concatenate([[0], rng.integers(2, 5, size=5), [1]])
        arch = sp.canonical(Arch(ops, adj))
        if sp.validate(arch) is None:
            out.append(arch)
    return out


@pytest.mark.parametrize("name", ["enas", "nb201", "nb101"])
def test_evolution_over_a_space_yields_only_valid_unseen_cells(name):
    sp = get_space(name)
    strategy = EvolutionSpace(sp, population=8, sample=3, sampler=_nb101_sampler if name == "nb101" else None)
    score = lambda cells: [float(a.ops.sum() + a.adj.sum()) for a in cells]  # noqa: E731
    h = search(strategy, score, budget=40, batch=2, seed=5)
    assert len(h) == 40
    assert len({sp.hash(a) for a in h.candidates}) == 40
    assert all(sp.validate(a) is None for a in h.candidates)


def test_mutation_changes_one_op_or_one_edge():
    sp = get_space("enas")
    rng = np.random.default_rng(1)
    for arch in sp.sample(20, 0):
        child = mutate(sp, arch, rng)
        assert child is not None and sp.validate(child) is None
        changes = int((child.ops != arch.ops).sum()) + int((child.adj != arch.adj).sum())
        assert changes == 1


def test_evolution_on_a_subset_pool_falls_back_on_the_nearest_cell():
    sp = get_space("nb201")
    ds = _nb201().subset(np.arange(0, 15625, 97))  # mutants are rarely in this pool
    onehot = np.eye(7)[ds.ops].reshape(len(ds), -1)
    y = np.random.default_rng(0).normal(size=len(ds))
    h = search(EvolutionPool(sp, ds, ds.hashes, onehot=onehot), _objective(y), budget=len(ds), batch=3)
    assert sorted(h.candidates) == list(range(len(ds)))
