"""The paper's latent BO: the sparse GP, q-EI batches, decoding selected points, and trials on the driver."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bo_helpers import NB201, GridDecoder, grid_problem, score_of
from test_driver import Shuffled

from svge_cli.arch import Arch
from svge_cli.model.scaling import Scaler
from svge_cli.search.cluster import InlineExecutor
from svge_cli.search.driver import Driver, Engine, TrialRun, restore
from svge_cli.search.gp import LatentGP, fit_sparse_gp, gp_quality, select_batch
from svge_cli.search.journal import NOTE, START, Journal, read_journal, replay
from svge_cli.search.latent import DUPLICATE, INVALID, NEW, LatentBO, LatentProblem, LatentSettings, decode_new
from svge_cli.search.strategies import History


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
    found = decode_new(model, NB201, z, attempts=20, known=set(), seed=0)
    assert [f[0] for f in found] == [NEW, NEW, INVALID]
    assert found[0][2] != found[1][2]  # the second point had to sample a neighbour
    assert NB201.format_native(found[0][1]) == found[0][2]  # greedy first: all avg_pool_3x3


def test_a_point_decoding_only_to_known_cells_is_a_duplicate() -> None:
    model = GridDecoder()
    z = np.array([[1, 1, 1, 1, 1, 1]], dtype=np.float32)
    cell = decode_new(model, NB201, z, attempts=1, known=set(), seed=0)[0]
    again = decode_new(model, NB201, z, attempts=1, known={cell[2]}, seed=0)[0]
    assert again[0] == DUPLICATE and again[2] == cell[2]


# ---------------------------------------------------------------- what the GP learns from each point


def test_each_kind_of_point_teaches_the_gp_what_the_module_promises() -> None:
    problem = grid_problem(start_cells=20)
    bo = LatentBO(problem, LatentSettings(init=2, iters=1, batch=4), seed=0)
    a, b = bo.initial
    history = History()
    history.add(a, bo.key(a), 3.0)
    history.add(b, bo.key(b), 5.0)
    bo.recall(
        {
            "bo_round": 1,
            "points": 4,
            "cells": [{"hash": "hd", "point": [5.0] * 6, "own": [6.0] * 6}, {"hash": "hc", "point": [4.0] * 6,
                                                                           "own": [7.0] * 6}],
            "duplicates": [{"point": [3.0] * 6, "of": bo.key(b)}],
            "invalid": [[2.0] * 6],
        }
    )  # fmt: skip
    history.add("d", "hd", 4.5)
    history.add("c", "hc", math.nan)  # the objective could not score it
    x, y, first = bo._data(history)
    # a new cell: its score at the point and at its own latent; failed: nothing;
    # a duplicate: the known cell's score; invalid: the worst initial score
    assert y.tolist() == [3.0, 5.0, 4.5, 4.5, 5.0, 3.0]
    assert x[2:].tolist() == [[5.0] * 6, [6.0] * 6, [3.0] * 6, [2.0] * 6]
    assert first.tolist() == [3.0, 5.0]


# ---------------------------------------------------------------- trials on the driver


SMALL = LatentSettings(init=12, iters=2, batch=4, inducing=12, attempts=5)


class GridSearch:
    """The driver's view of a latent search on the synthetic table: cells are `Arch`es, scored by lookup."""

    def __init__(self, problem: LatentProblem, settings: LatentSettings = SMALL) -> None:
        self.problem, self.settings = problem, settings

    def make_strategy(self, seed: int) -> LatentBO:
        return LatentBO(self.problem, self.settings, seed)

    def describe(self, arch: Arch) -> tuple[str, str]:
        return NB201.format_native(arch), NB201.hash(arch)

    def candidate_of(self, native: str) -> Arch:
        return NB201.canonical(NB201.parse_native(native))

    def job(self, arch: Arch):
        return score_native, NB201.format_native(arch)


def score_native(native: str) -> dict:
    return {"ok": True, "score": score_of(native), "seconds": 0.0}


def drive(path, search: GridSearch, engine: Engine, executor=None, stop_after: int | None = None, log=None) -> TrialRun:
    """Run trial 0 on the driver, journaling to `path`; `stop_after` N results raises KeyboardInterrupt."""
    trial = restore(search, 0, log)
    done = []

    def on_result(t: TrialRun, record: dict) -> None:
        done.append(record)
        if stop_after is not None and len(done) == stop_after:
            raise KeyboardInterrupt

    with Journal(path, fresh=log is None) as journal:
        if log is None:
            journal.append(START, kind="svge-search-journal", format_version=1)
        Driver(search, engine, executor or InlineExecutor(), journal, on_result).run([trial])
    return trial


def test_a_latent_trial_queries_its_start_cells_then_decoded_rounds(tmp_path) -> None:
    trial = drive(tmp_path / "j.jsonl", GridSearch(grid_problem()), Engine(budget=12 + 2 * 4, batch=4))
    bo = trial.strategy
    assert len(trial.history) <= 20 and len(set(trial.history.keys)) == len(trial.history)
    assert trial.history.keys[:12] == [bo.key(c) for c in bo.initial]
    for cand, score in zip(trial.history.candidates, trial.history.scores):
        assert score == pytest.approx(score_of(NB201.format_native(cand)))
    notes = [r for r in read_journal(tmp_path / "j.jsonl") if r["type"] == NOTE]
    assert [n["bo_round"] for n in notes] == [1, 2] and all(n["points"] == 4 for n in notes)
    rounds = bo.report()
    assert rounds[0]["gp"] is not None and math.isfinite(rounds[0]["gp"]["rmse"]) and rounds[1]["gp"] is None
    assert sum(r["new"] for r in rounds) == len(trial.history) - 12
    assert max(trial.history.scores) >= max(trial.history.scores[:12])


def test_an_interrupted_latent_search_resumes_exactly_where_it_stopped(tmp_path) -> None:
    problem = grid_problem()
    engine = Engine(budget=12 + 2 * 4, batch=4)
    full = drive(tmp_path / "full.jsonl", GridSearch(problem), engine)
    path = tmp_path / "cut.jsonl"
    with pytest.raises(KeyboardInterrupt):
        drive(path, GridSearch(problem), engine, stop_after=14)  # inside the first BO round
    log = replay(read_journal(path))[0]
    assert len(log.done) == 14 and len(log.notes) == 1
    resumed = drive(path, GridSearch(problem), engine, log=log)
    assert resumed.history.keys == full.history.keys
    assert resumed.strategy.report()[1]["points"] == 4


def test_an_asynchronous_latent_search_selects_as_many_points_and_never_proposes_a_pending_cell(tmp_path) -> None:
    search = GridSearch(grid_problem())
    proposals = []
    real = LatentBO.propose

    def watched(self, history, n, limit, rng, pending=()):
        out = real(self, history, n, limit, rng, pending)
        proposals.append(({self.key(c) for c in pending}, [self.key(c) for c in out]))
        return out

    LatentBO.propose = watched
    try:
        trial = drive(tmp_path / "j.jsonl", search, Engine(budget=20, batch=4, sync=False, slots=3), Shuffled(3))
    finally:
        LatentBO.propose = real
    assert any(pending for pending, _ in proposals)
    for pending, out in proposals:
        assert not pending & set(out)
    assert sum(r["points"] for r in trial.strategy.report()) == 2 * 4  # --iters 2 --batch 4, one point at a time
    assert len(trial.history) <= 20 and not trial.pending
