"""The sparse GP, expected-improvement batches, decoding of selected points, and the BO trial loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bo_helpers import NB201, GridDecoder, grid_problem, score_of

from svge_cli.model.scaling import Scaler
from svge_cli.search import loop as bo_run
from svge_cli.search.gp import LatentGP, fit_sparse_gp, gp_quality, select_batch
from svge_cli.search.loop import DUPLICATE, FAILED, INVALID, QUERIED, Query, Settings, Trial, TrialState


def smooth(x: np.ndarray) -> np.ndarray:
    return np.sin(2 * x[:, 0]) + np.cos(x[:, 1]) + 0.5 * x[:, 2]


def fitted(x: np.ndarray, y: np.ndarray, inducing: int, iters: int = 150):
    return fit_sparse_gp(x, y, Scaler.fit(x, axis=0), Scaler.fit(y), inducing=inducing, seed=0, iters=iters)


# ---------------------------------------------------------------- the GP


def test_sparse_gp_learns_a_smooth_function() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (300, 3))
    gp = fitted(x, smooth(x) + 0.01 * rng.normal(size=300), inducing=60)
    xt = rng.uniform(-2, 2, (200, 3))
    q = gp_quality(gp, xt, smooth(xt))
    assert q.rmse < 0.1 and q.pearson > 0.99 and q.points == 200
    assert q.loglik > 0  # confident where right: a density above 1 at the truth, in standardised units


def test_sparse_gp_with_every_point_inducing_is_the_exact_gp() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (40, 2))
    gp = fitted(x, smooth(np.c_[x, x[:, :1]]), inducing=40, iters=30)
    xs = torch.as_tensor(gp.inputs.forward(x))
    ys = torch.as_tensor(gp.targets.forward(smooth(np.c_[x, x[:, :1]])))
    xt = torch.as_tensor(gp.inputs.forward(rng.uniform(-1, 1, (7, 2))))
    with torch.no_grad():
        k = gp.gp.kernel(xs, xs).to_dense() + gp.gp.noise * torch.eye(40, dtype=xs.dtype)
        kt = gp.gp.kernel(xt, xs).to_dense()
        exact_mean = gp.gp.mean + kt @ torch.linalg.solve(k, ys - gp.gp.mean)
        exact_cov = gp.gp.kernel(xt, xt).to_dense() - kt @ torch.linalg.solve(k, kt.T)
        mean, cov = gp.gp.predict(xt)
    assert torch.allclose(mean, exact_mean, atol=1e-4)
    assert torch.allclose(cov, exact_cov, atol=1e-4)


def test_gp_predictions_keep_their_shape_for_botorch_batches() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 4))
    gp = fitted(x, x[:, 0], inducing=10, iters=5)
    post = LatentGP(gp.gp).posterior(torch.zeros(5, 3, 4, dtype=torch.float64))
    assert post.mean.shape == (5, 3, 1) and post.variance.min() > 0


def test_repeated_points_do_not_break_the_fit() -> None:
    x = np.repeat(np.random.default_rng(5).normal(size=(5, 3)), 8, axis=0)  # every point eight times
    gp = fitted(x, x[:, 0], inducing=40, iters=20)
    mean, var = gp.predict(x[:5])
    assert np.all(np.isfinite(mean)) and np.all(var > 0)


def test_gp_needs_two_points() -> None:
    with pytest.raises(ValueError, match="two"):
        fitted(np.zeros((1, 2)), np.zeros(1), inducing=5)


# ---------------------------------------------------------------- expected improvement


def test_expected_improvement_picks_the_optimum_region() -> None:
    peak = np.array([0.7, 0.3])
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (80, 2))
    x = x[np.linalg.norm(x - peak, axis=1) > 0.2]  # nothing observed near the optimum
    y = -np.sum((x - peak) ** 2, axis=1)
    gp = fitted(x, y, inducing=40)
    chosen = select_batch(gp, 1, np.zeros(2), np.ones(2), seed=0)
    assert np.linalg.norm(chosen[0] - peak) < 0.15


def test_batches_stay_in_the_box() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (50, 3))
    gp = fitted(x, smooth(x), inducing=20, iters=50)
    lower, upper = np.full(3, -0.5), np.full(3, 0.8)
    chosen = select_batch(gp, 4, lower, upper, seed=1)
    assert chosen.shape == (4, 3)
    assert np.all(chosen >= lower - 1e-5) and np.all(chosen <= upper + 1e-5)


# ---------------------------------------------------------------- decoding selected points


def test_decoding_prefers_new_cells_and_never_repeats_one_in_a_batch() -> None:
    model = GridDecoder()
    z = np.array([[4, 4, 4, 4, 4, 4], [4, 4, 4, 4, 4, 4], [-5, 0, 0, 0, 0, 0]], dtype=np.float32)
    found = bo_run.decode_new(model, NB201, z, attempts=20, known=set(), seed=0)
    assert [f[0] for f in found] == [QUERIED, QUERIED, INVALID]
    assert found[0][2] != found[1][2]  # the second point had to sample a neighbour
    assert NB201.format_native(found[0][1]) == found[0][2]  # greedy first: all avg_pool_3x3


def test_a_point_decoding_only_to_known_cells_is_a_duplicate() -> None:
    model = GridDecoder()
    z = np.array([[1, 1, 1, 1, 1, 1]], dtype=np.float32)
    cell = bo_run.decode_new(model, NB201, z, attempts=1, known=set(), seed=0)[0]
    again = bo_run.decode_new(model, NB201, z, attempts=1, known={cell[2]}, seed=0)[0]
    assert again[0] == DUPLICATE and again[2] == cell[2]


# ---------------------------------------------------------------- what the GP learns from each query


def test_each_kind_of_query_teaches_the_gp_what_the_module_promises() -> None:
    problem = grid_problem(start_cells=20)
    trial = Trial(0, "bo", [Query(0, QUERIED, 3.0, "a", "ha", [0.0] * 6), Query(0, QUERIED, 5.0, "b", "hb", [1.0] * 6)])
    state = TrialState(problem, trial, None)
    state.finish_initial()
    state.add(Query(1, INVALID, None, None, None, [2.0] * 6))
    state.add(Query(1, DUPLICATE, 5.0, "b", "hb", [3.0] * 6))
    state.add(Query(1, FAILED, None, "c", "hc", [4.0] * 6, "timed out"))
    state.add(Query(1, QUERIED, 4.5, "d", "hd", [5.0] * 6, None, cell_latent=[6.0] * 6))
    # invalid -> worst initial score; failed -> nothing; a new cell -> its score at the point and at its own latent
    assert state.y.tolist() == [3.0, 5.0, 3.0, 5.0, 4.5, 4.5]
    assert state.x[-2:].tolist() == [[5.0] * 6, [6.0] * 6]
    assert set(state.known) == {"ha", "hb", "hd"}
    assert state.targets.mean == 4.0


# ---------------------------------------------------------------- trials


SMALL = Settings(init=12, iters=2, batch=4, inducing=12, attempts=5, seed=0)


def test_a_bo_trial_records_every_query_and_improves_on_its_start() -> None:
    problem = grid_problem()
    seen = []
    trial = bo_run.run_bo_trial(problem, SMALL, Trial(0, "bo"), lambda t, s: seen.append(s.round))
    assert seen == [0, 1, 2] and trial.complete
    start = [q for q in trial.queries if q.round == 0]
    assert len(start) == 12 and all(q.status == QUERIED for q in start)
    later = [q for q in trial.queries if q.round > 0]
    assert len(later) == 8 and all(len(q.latent) == 6 for q in later)
    for q in trial.queries:
        if q.status == QUERIED:
            assert q.score == pytest.approx(score_of(q.arch))
    r1 = trial.rounds[1]
    assert r1.gp is not None and math.isfinite(r1.gp["rmse"]) and trial.rounds[2].gp is None
    assert trial.rounds[-1].best >= trial.rounds[0].best
    assert trial.rounds[-1].distinct == len({q.hash for q in trial.spent()})


def test_an_interrupted_trial_resumes_exactly_where_it_stopped() -> None:
    problem = grid_problem()
    full = bo_run.run_bo_trial(problem, SMALL, Trial(0, "bo"), lambda t, s: None)

    def stop_after_round_one(trial: Trial, stats) -> None:
        if stats.round == 1:
            raise KeyboardInterrupt

    partial = Trial(0, "bo")
    with pytest.raises(KeyboardInterrupt):
        bo_run.run_bo_trial(problem, SMALL, partial, stop_after_round_one)
    assert [r.round for r in partial.rounds] == [0, 1] and not partial.complete
    saved = Trial.from_dict(partial.to_dict())
    resumed = bo_run.run_bo_trial(problem, SMALL, saved, lambda t, s: None)
    assert [q.hash for q in resumed.queries] == [q.hash for q in full.queries]
    assert [r.best for r in resumed.rounds] == [r.best for r in full.rounds]
