"""Batch Bayesian optimisation in the latent space (paper IV-D, D-VAE's protocol), trial by trial.

One round: fit the sparse GP on every labelled latent point, pick a batch by
q-EI inside the training latents' bounding box, decode each point (attempt 1
greedy, then sampled decodes) until it gives a valid cell that nobody has
scored yet, score the new cells with the objective, append, repeat.

What the GP learns from each selected point:
  * a new cell (status ``queried``): its score, at the selected point (what
    decoding there gives, as in D-VAE) and at the cell's own latent mean (where
    the encoder puts it, like every initial cell);
  * a point that only decodes to cells already scored (``duplicate``): that
    cell's known score at the selected point, and no query is spent;
  * a point with no valid decode (``invalid``): the worst initial score, as
    in D-VAE, so the search learns to stay away;
  * a cell the objective could not score (``failed``): nothing.

Every random draw of a round is seeded from (trial seed, round), so a run
resumed from its results file continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from svge_cli.arch import Arch
from svge_cli.errors import SvgeError
from svge_cli.model import SVGe, codec
from svge_cli.model.scaling import Scaler
from svge_cli.search.gp import Quality, fit_sparse_gp, gp_quality, select_batch
from svge_cli.search.objectives import Objective
from svge_cli.spaces import SearchSpace
from svge_cli.storage.store import Dataset

QUERIED, FAILED, DUPLICATE, INVALID = "queried", "failed", "duplicate", "invalid"
SPENT = (QUERIED, FAILED)  # statuses that cost a query
BO, RANDOM = "bo", "random"


@dataclass(frozen=True)
class Settings:
    init: int | None  # None: every labelled training cell (surrogate), else N queried random cells
    iters: int = 10
    batch: int = 50
    inducing: int = 500
    attempts: int = 20
    seed: int = 0
    trials: int = 1
    random_baseline: bool = False


@dataclass
class Query:
    """One selected point or initial cell: where it came from and what it scored."""

    round: int
    status: str
    score: float | None = None
    arch: str | None = None  # native text
    hash: str | None = None
    latent: list[float] | None = None  # the selected point (initial cells: the cell's latent mean)
    note: str | None = None
    cell_latent: list[float] | None = None  # a decoded cell's own latent mean


@dataclass
class RoundStats:
    round: int
    queries: int  # cumulative queries spent
    best: float | None  # best score among queries so far
    batch_mean: float | None
    valid_share: float | None  # share of selected points that decoded to a valid cell (None for round 0)
    distinct: int  # distinct cells queried so far
    seconds: float
    gp: dict[str, float] | None = None  # round 1: test RMSE, log-likelihood, Pearson r


@dataclass
class Trial:
    seed: int
    method: str
    queries: list[Query] = field(default_factory=list)
    rounds: list[RoundStats] = field(default_factory=list)
    complete: bool = False

    def spent(self) -> list[Query]:
        return [q for q in self.queries if q.status in SPENT]

    def best(self) -> Query | None:
        scored = [q for q in self.queries if q.status == QUERIED]
        return max(scored, key=lambda q: q.score) if scored else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trial:
        return cls(
            d["seed"],
            d["method"],
            [Query(**q) for q in d["queries"]],
            [RoundStats(**r) for r in d["rounds"]],
            bool(d["complete"]),
        )


@dataclass
class Pool:
    """Rows of a dataset the search starts from or tests on, with their scores and latents."""

    ds: Dataset
    rows: np.ndarray
    scores: np.ndarray  # per row; NaN where unknown
    latents: np.ndarray  # per row (posterior means)

    def __len__(self) -> int:
        return len(self.rows)

    def arch(self, i: int) -> Arch:
        return self.ds.arch(int(self.rows[i]))

    def hash(self, i: int) -> str:
        return str(self.ds.hashes[self.rows[i]])


@dataclass
class Problem:
    """Everything fixed across trials: the space, the model, the objective and the latent box."""

    space: SearchSpace
    model: SVGe
    objective: Objective
    lower: np.ndarray
    upper: np.ndarray
    inputs: Scaler  # z-scoring of latents, from the training latents
    start: Pool  # initial cells: queried at random (--init N), or the labelled set itself (surrogate)
    labelled_start: bool  # True: the start pool's labels are the initial data, not queries (D-VAE)
    random_cells: Callable[[int, int, set[str]], list[Arch]]  # (count, seed, exclude hashes) -> new cells
    test: Pool | None = None  # held-out labelled cells for the GP's round-1 quality


def round_seed(seed: int, rnd: int) -> int:
    return int(np.random.SeedSequence([seed, rnd]).generate_state(1)[0])


# ---------------------------------------------------------------- decoding


def decode_new(
    model: SVGe, space: SearchSpace, z: np.ndarray, attempts: int, known: set[str], seed: int
) -> list[tuple[str, Arch | None, str | None]]:
    """Per point: (status, cell, hash). A new valid cell if any attempt gives one (none repeated
    within the batch); else a valid cell already known (duplicate); else invalid."""
    gen = torch.Generator(device=codec.model_device(model)).manual_seed(seed)
    found: list[tuple[str, Arch | None, str | None]] = [(INVALID, None, None)] * len(z)
    taken: set[str] = set()
    pending = np.arange(len(z))
    for attempt in range(attempts):
        if pending.size == 0:
            break
        decoded = codec.decode_once(model, z[pending], greedy=attempt == 0, max_nodes=None, generator=gen)
        for i, raw in zip(pending, decoded):
            verdict = codec.judge(space, raw)
            if not verdict.valid:
                continue
            h = space.hash(verdict.arch)
            if h in known or h in taken:
                if found[i][0] == INVALID:
                    found[i] = (DUPLICATE, verdict.arch, h)
                continue
            found[i] = (QUERIED, verdict.arch, h)
            taken.add(h)
        pending = np.asarray([i for i in pending if found[i][0] != QUERIED], dtype=np.int64)
    return found


# ---------------------------------------------------------------- one trial


class TrialState:
    """The labelled points of a trial in GP form, rebuilt from its query records."""

    def __init__(self, problem: Problem, trial: Trial, labelled_rows: np.ndarray | None) -> None:
        self.trial = trial
        self.known: dict[str, float] = {}
        self.x = np.zeros((0, len(problem.lower)), np.float32)
        self.y = np.zeros(0)
        if labelled_rows is not None:  # the table's training cells are the initial data, not queries (D-VAE)
            start = problem.start
            self.x = start.latents[labelled_rows]
            self.y = start.scores[labelled_rows].astype(np.float64)
            self.known.update((start.hash(i), float(start.scores[i])) for i in labelled_rows)
        self._initial_scores = self.y.copy()
        self.targets: Scaler | None = None
        for q in trial.queries:
            self.add(q)

    def add(self, q: Query) -> None:
        """Record a query's cell as known and its latent point as GP data (see the module docstring)."""
        if q.hash is not None and q.score is not None:
            self.known.setdefault(q.hash, q.score)
        if q.round == 0 and q.score is not None:
            self._initial_scores = np.append(self._initial_scores, q.score)
        y = self._gp_target(q)
        points = [p for p in (q.latent, q.cell_latent) if p is not None]
        if y is not None and points:
            self.x = np.concatenate([self.x, np.asarray(points, dtype=np.float32)])
            self.y = np.append(self.y, [y] * len(points))

    def _gp_target(self, q: Query) -> float | None:
        if q.status in (QUERIED, DUPLICATE):
            return q.score
        if q.status == INVALID:
            return float(np.min(self._initial_scores)) if len(self._initial_scores) else None
        return None

    def finish_initial(self) -> None:
        """Fix the score standardisation on the initial labels (kept for all rounds, as D-VAE does)."""
        if len(self._initial_scores) < 2:
            raise SvgeError("fewer than two initial cells got a score: nothing to fit a GP on")
        self.targets = Scaler.fit(self._initial_scores)


def start_rows(problem: Problem, init: int | None, seed: int) -> np.ndarray:
    """Rows of the start pool a trial begins with: `init` drawn at random, or every labelled row."""
    start = problem.start
    eligible = np.nonzero(np.isfinite(start.scores))[0] if problem.labelled_start else np.arange(len(start))
    if init is None:
        return eligible
    if init > len(eligible):
        raise SvgeError(f"--init {init} asks for more cells than the {len(eligible):,} available")
    return np.sort(np.random.default_rng(round_seed(seed, 0)).choice(eligible, size=init, replace=False))


def initial_queries(problem: Problem, rows: np.ndarray) -> list[Query]:
    """The start pool's `rows`, scored by the objective (they count as queries)."""
    archs = [problem.start.arch(i) for i in rows]
    outcomes = problem.objective.evaluate(problem.space, archs)
    return [
        Query(
            0,
            QUERIED if o.score is not None else FAILED,
            o.score,
            problem.space.format_native(a),
            problem.start.hash(i),
            _plain_latent(problem.start.latents[i]),
            o.note,
        )
        for a, i, o in zip(archs, rows, outcomes)
    ]


def _plain_latent(z: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(z, dtype=np.float32)]


def bo_round(problem: Problem, state: TrialState, settings: Settings, rnd: int) -> tuple[list[Query], Quality | None]:
    """Fit, select, decode, evaluate: the queries of round `rnd` (>= 1)."""
    seed = round_seed(state.trial.seed, rnd)
    fitted = fit_sparse_gp(
        state.x,
        state.y,
        problem.inputs,
        state.targets,
        settings.inducing,
        seed,
        device=codec.model_device(problem.model),
    )
    quality = None
    if rnd == 1 and problem.test is not None and len(problem.test) > 1:
        quality = gp_quality(fitted, problem.test.latents, problem.test.scores)
    z = select_batch(fitted, settings.batch, problem.lower, problem.upper, seed)
    return evaluate_points(problem, state, z, settings.attempts, rnd, seed), quality


def evaluate_points(
    problem: Problem, state: TrialState, z: np.ndarray, attempts: int, rnd: int, seed: int
) -> list[Query]:
    found = decode_new(problem.model, problem.space, z, attempts, set(state.known), seed)
    new = [i for i, f in enumerate(found) if f[0] == QUERIED]
    cells = [found[i][1] for i in new]
    outcomes = dict(zip(new, problem.objective.evaluate(problem.space, cells)))
    own = dict(zip(new, codec.encode_archs(problem.model, cells)[0])) if cells else {}
    queries = []
    for i, (status, arch, h) in enumerate(found):
        native = problem.space.format_native(arch) if arch is not None else None
        if status == QUERIED:
            o = outcomes[i]
            queries.append(
                Query(
                    rnd,
                    QUERIED if o.score is not None else FAILED,
                    o.score,
                    native,
                    h,
                    _plain_latent(z[i]),
                    o.note,
                    _plain_latent(own[i]),
                )
            )
        elif status == DUPLICATE:
            queries.append(
                Query(
                    rnd,
                    DUPLICATE,
                    state.known.get(h),
                    native,
                    h,
                    _plain_latent(z[i]),
                    "decodes only to cells already scored",
                )
            )
        else:
            queries.append(
                Query(rnd, INVALID, None, None, None, _plain_latent(z[i]), f"no valid cell in {attempts} decodes")
            )
    return queries


def round_stats(trial: Trial, rnd: int, new: list[Query], seconds: float, quality: Quality | None) -> RoundStats:
    spent = trial.spent()
    scores = [q.score for q in spent if q.score is not None]
    batch = [q.score for q in new if q.status == QUERIED]
    valid = [q.status in (QUERIED, FAILED, DUPLICATE) for q in new]
    gp = (
        None
        if quality is None
        else {"rmse": quality.rmse, "loglik": quality.loglik, "pearson": quality.pearson, "points": quality.points}
    )
    return RoundStats(
        rnd,
        len(spent),
        max(scores) if scores else None,
        float(np.mean(batch)) if batch else None,
        float(np.mean(valid)) if (valid and rnd > 0) else None,
        len({q.hash for q in spent}),
        round(seconds, 2),
        gp,
    )


def run_bo_trial(
    problem: Problem, settings: Settings, trial: Trial, on_round: Callable[[Trial, RoundStats], None]
) -> Trial:
    """Run (or continue) one BO trial; `on_round` sees the trial after every completed round."""
    done = {r.round for r in trial.rounds}
    trial.complete = False
    rows = start_rows(problem, settings.init, trial.seed)
    state = TrialState(problem, trial, rows if problem.labelled_start else None)
    if 0 not in done:
        t0 = time.perf_counter()
        if not problem.labelled_start:
            for q in initial_queries(problem, rows):
                trial.queries.append(q)
                state.add(q)
        _close_round(trial, round_stats(trial, 0, trial.queries, time.perf_counter() - t0, None), on_round)
    state.finish_initial()
    for rnd in range(max(done, default=0) + 1, settings.iters + 1):
        t0 = time.perf_counter()
        new, quality = bo_round(problem, state, settings, rnd)
        for q in new:
            trial.queries.append(q)
            state.add(q)
        _close_round(trial, round_stats(trial, rnd, new, time.perf_counter() - t0, quality), on_round)
    trial.complete = True
    return trial


def _close_round(trial: Trial, stats: RoundStats, on_round: Callable[[Trial, RoundStats], None]) -> None:
    trial.rounds.append(stats)
    on_round(trial, stats)


def run_random_trial(
    problem: Problem, budget: list[int], trial: Trial, on_round: Callable[[Trial, RoundStats], None]
) -> Trial:
    """Random search: uniformly drawn distinct cells, with round ends at the BO trial's query counts."""
    done = {r.round for r in trial.rounds}
    trial.complete = False
    for rnd, total in enumerate(budget):
        if rnd in done:
            continue
        t0 = time.perf_counter()
        seen = {q.hash for q in trial.queries}
        archs = problem.random_cells(total - len(trial.queries), round_seed(trial.seed, rnd), seen)
        outcomes = problem.objective.evaluate(problem.space, archs)
        new = [
            Query(
                rnd,
                QUERIED if o.score is not None else FAILED,
                o.score,
                problem.space.format_native(a),
                problem.space.hash(a),
                None,
                o.note,
            )
            for a, o in zip(archs, outcomes)
        ]
        trial.queries.extend(new)
        _close_round(trial, round_stats(trial, rnd, new, time.perf_counter() - t0, None), on_round)
    trial.complete = True
    return trial


def query_budget(bo_trial: Trial) -> list[int]:
    """Cumulative queries at the end of each BO round: the random baseline matches them."""
    return [r.queries for r in bo_trial.rounds]
