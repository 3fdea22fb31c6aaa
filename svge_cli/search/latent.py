"""Bayesian optimisation in the latent space (paper IV-D, D-VAE's protocol), as a strategy of the driver.

A round: fit the sparse GP on every labelled latent point, pick a batch by q-EI inside the
training latents' bounding box, decode each point (attempt 1 greedy, then sampled decodes) until
it gives a valid cell that is neither scored nor being evaluated, and hand the new cells to the
driver, which evaluates, journals and retries them like any other strategy's.

What the GP learns from each selected point:
  * a new cell: its score, at the selected point (what decoding there gives, as in D-VAE) and at
    the cell's own latent mean (where the encoder puts it, like every initial cell);
  * a point that only decodes to cells already known (a *duplicate*): that cell's score at the
    selected point, once the score is there; no query is spent;
  * a point with no valid decode (*invalid*): the worst initial score, as in D-VAE;
  * a cell the objective could not score: nothing.

Points, duplicates and invalid points are not queries, so the driver's history cannot hold them:
each round's are written to the journal as one ``note`` record (`take_notes`), and a resumed run
`recall`s them, so it goes on exactly as the uninterrupted run would.  Every random draw of a
round is seeded from (trial seed, round).  With N workers the batch is chosen knowing the cells
still being evaluated: their points are q-EI's pending points (BoTorch's ``X_pending``, sampled
jointly with the batch), the same conditioning the pool search gets from the kriging believer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from svge_cli.arch import Arch
from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.model import SVGe, codec
from svge_cli.model.scaling import Scaler
from svge_cli.search.gp import DEFAULT_INDUCING, fit_sparse_gp, gp_quality, select_batch
from svge_cli.search.strategies import History, SearchError
from svge_cli.spaces import SearchSpace

NEW, DUPLICATE, INVALID = "new", "duplicate", "invalid"
DEFAULT_INIT = 100
DEFAULT_ITERS = 10
DEFAULT_LATENT_BATCH = 50
DEFAULT_ATTEMPTS = 20
#: without --iters, a search whose last rounds all decoded to known or invalid cells has nowhere left to go
STALLED_ROUNDS = 5


@dataclass(frozen=True)
class LatentSettings:
    """The paper's BO knobs: initial cells (None: the labelled table, D-VAE), rounds, GP and decoding effort."""

    init: int | None = DEFAULT_INIT
    iters: int | None = DEFAULT_ITERS  # None: rounds until the query budget is spent
    batch: int = DEFAULT_LATENT_BATCH
    inducing: int = DEFAULT_INDUCING
    attempts: int = DEFAULT_ATTEMPTS


@dataclass
class EncodedCells:
    """Rows of a dataset with their scores (NaN where unknown) and latent means."""

    ds: Dataset
    rows: np.ndarray
    scores: np.ndarray
    latents: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def arch(self, i: int) -> Arch:
        return self.ds.arch(int(self.rows[i]))


@dataclass
class LatentProblem:
    """What every trial shares: the space, the model, the latent box and the cells it starts from."""

    space: SearchSpace
    model: SVGe
    lower: np.ndarray
    upper: np.ndarray
    inputs: Scaler  # z-scoring of latents, from the training latents
    start: EncodedCells  # initial cells: queried at random (--init N), or the labelled set itself (surrogate)
    labelled_start: bool  # True: the start cells' labels are the initial data, not queries (D-VAE)
    test: EncodedCells | None = None  # held-out labelled cells for the GP's round-1 quality


def round_seed(seed: int, rnd: int) -> int:
    return int(np.random.SeedSequence([seed, rnd]).generate_state(1)[0])


def start_rows(problem: LatentProblem, init: int | None, seed: int) -> np.ndarray:
    """Rows of the start cells a trial begins with: `init` drawn at random, or every labelled row.

    Args:
        problem: the shared problem whose start cells the rows index.
        init: how many start cells to draw; None takes every eligible one.
        seed: the trial's seed; the draw is seeded by it and round 0.

    Returns:
        Sorted indices into `problem.start`, drawn from the eligible cells (those with a finite
        score when the start cells are the labelled set, else all of them).
    """
    start = problem.start
    eligible = np.nonzero(np.isfinite(start.scores))[0] if problem.labelled_start else np.arange(len(start))
    if init is None:
        return eligible
    if init > len(eligible):
        raise SvgeError(f"--init {init} asks for more cells than the {len(eligible):,} available")
    return np.sort(np.random.default_rng(round_seed(seed, 0)).choice(eligible, size=init, replace=False))


def decode_new(
    model: SVGe, space: SearchSpace, z: np.ndarray, attempts: int, known: set[str], seed: int
) -> list[tuple[str, Arch | None, str | None]]:
    """Per point: (status, cell, hash). A new valid cell if any attempt gives one (none repeated
    within the batch); else a valid cell already known (duplicate); else invalid.

    Args:
        model: the trained autoencoder that decodes the points.
        space: the search space that judges each decode and hashes the valid cells.
        z: the selected latent points, shape (Q, D).
        attempts: the most decodes per point, the first greedy and the rest sampled.
        known: hashes of the cells already scored, being evaluated or labelled.
        seed: seeds the sampled decodes.

    Returns:
        One (status, cell, hash) per point, in order: a new cell, a duplicate with the known (or
        already taken) cell it decoded to, or (INVALID, None, None).
    """
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
            found[i] = (NEW, verdict.arch, h)
            taken.add(h)
        pending = np.asarray([i for i in pending if found[i][0] != NEW], dtype=np.int64)
    return found


def _plain(z: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(z, dtype=np.float32)]


class LatentBO:
    """The paper's BO for one trial: initial cells first, then rounds of decoded q-EI batches (candidates: cells).

    Args:
        problem: what every trial shares: the space, the model, the latent box and the start cells.
        settings: the initial cells, rounds, batch size, inducing points and decoding attempts.
        seed: the trial's seed, which picks its start cells and, with the round number, seeds each round.
    """

    name = "latent"

    def __init__(self, problem: LatentProblem, settings: LatentSettings, seed: int) -> None:
        self.problem, self.settings, self.seed = problem, settings, seed
        sp, start = problem.space, problem.start
        rows = start_rows(problem, settings.init, seed)
        self.prior: list[tuple[np.ndarray, float]] = []  # the labelled table's cells (surrogate objective)
        self.initial: list[Arch] = []  # cells queried before the first round
        self.points: dict[str, list[np.ndarray]] = {}  # cell hash -> the GP inputs its score is observed at
        for i in rows:
            if problem.labelled_start:
                self.prior.append((start.latents[i], float(start.scores[i])))
            else:
                arch = start.arch(int(i))
                self.initial.append(arch)
                self.points[sp.hash(arch)] = [start.latents[i]]
        self.prior_known = {sp.hash(start.arch(int(i))): float(start.scores[i]) for i in rows} if self.prior else {}
        self.free: list[tuple[np.ndarray, str | None]] = []  # (point, duplicated cell's hash or None: invalid)
        self.rounds: list[dict[str, Any]] = []  # one note per BO round, as journaled
        self._unsaid: list[dict[str, Any]] = []

    # ------------------------------------------------------------ the driver's side

    def key(self, candidate: Arch) -> str:
        return self.problem.space.hash(candidate)

    def exhausted(self, submitted: int) -> bool:
        """Every point of --iters rounds selected (duplicates and invalid ones included), initial cells out.

        Points, not rounds, so that an asynchronous search (rounds of one point as each
        worker frees up) selects as many as `--iters 10 --batch 50` does batch by batch.
        """
        return self._points_left() == 0 and submitted >= len(self.initial)

    def _points_left(self) -> int | None:
        """Points the rounds may still select; None: as many as the query budget allows."""
        if self.settings.iters is None:
            return None
        return max(0, self.settings.iters * self.settings.batch - sum(r["points"] for r in self.rounds))

    def propose(
        self, history: History, n: int, limit: int, rng: np.random.Generator, pending: Sequence[Arch] = ()
    ) -> list[Arch]:
        """The initial cells not yet out, else one round's new cells (possibly none: see `take_notes`).

        Args:
            history: every query so far, whose scores the GP is fitted on.
            n: how many points the round should select.
            limit: the most cells that may be returned (the budget left).
            rng: unused; each round is seeded from the trial's seed and the round number instead.
            pending: cells being evaluated now: never proposed again, and q-EI's pending points.

        Returns:
            The initial cells neither queried nor pending (at most `limit`), else the new cells the
            round decoded; empty once the rounds are spent or while waiting on initial scores.
        """
        out = {self.key(c) for c in pending}
        initial = [c for c in self.initial if not history.seen(self.key(c)) and self.key(c) not in out]
        if initial:
            return initial[:limit]
        if self.exhausted(len(history) + len(pending)):
            return []
        self._check_stalled()
        x, y, first = self._data(history)
        if len(first) < 2:
            if pending:
                return []  # wait for more initial scores
            raise SvgeError("fewer than two initial cells got a score: nothing to fit a GP on")
        left = self._points_left()
        q = min(n, limit) if left is None else min(n, limit, left)
        return self._round(history, x, y, Scaler.fit(first), q, [self.key(c) for c in pending])

    def take_notes(self) -> list[dict[str, Any]]:
        """What the last proposals learned beyond their cells, for the journal (then forgotten here)."""
        notes, self._unsaid = self._unsaid, []
        return notes

    def recall(self, note: dict[str, Any]) -> None:
        """Take a journaled round back (a resumed run), as if this strategy had just proposed it."""
        for cell in note["cells"]:
            self.points[cell["hash"]] = [np.asarray(cell["point"], np.float32), np.asarray(cell["own"], np.float32)]
        for d in note["duplicates"]:
            self.free.append((np.asarray(d["point"], np.float32), d["of"]))
        for p in note["invalid"]:
            self.free.append((np.asarray(p, np.float32), None))
        self.rounds.append(note)

    def report(self) -> list[dict[str, Any]]:
        """Per round: points selected, new cells, duplicates, invalid points, share valid, GP quality."""
        return [
            {
                "round": r["bo_round"],
                "points": r["points"],
                "new": len(r["cells"]),
                "duplicates": len(r["duplicates"]),
                "invalid": len(r["invalid"]),
                "valid_share": round(1 - len(r["invalid"]) / r["points"], 4) if r["points"] else None,
                "gp": r.get("gp"),
                "seconds": r.get("seconds"),
            }
            for r in self.rounds
        ]

    # ------------------------------------------------------------ one round

    def _round(
        self, history: History, x: np.ndarray, y: np.ndarray, targets: Scaler, q: int, pending: list[str]
    ) -> list[Arch]:
        """Fit, select, decode: the new cells of the next round, with its note queued for the journal."""
        p, began = self.problem, time.perf_counter()
        rnd = len(self.rounds) + 1
        seed = round_seed(self.seed, rnd)
        device = codec.model_device(p.model)
        fitted = fit_sparse_gp(x, y, p.inputs, targets, self.settings.inducing, seed, device=device)
        gp = None
        if rnd == 1 and p.test is not None and len(p.test) > 1:
            quality = gp_quality(fitted, p.test.latents, p.test.scores)
            gp = {"rmse": quality.rmse, "loglik": quality.loglik, "pearson": quality.pearson, "points": quality.points}
        waiting = np.asarray([self.points[h][0] for h in pending if h in self.points], np.float32)
        z = select_batch(fitted, q, p.lower, p.upper, seed, pending=waiting if len(waiting) else None)
        known = set(history.keys) | set(pending) | set(self.prior_known)
        found = decode_new(p.model, p.space, z, self.settings.attempts, known, seed)
        new = [(i, arch, h) for i, (status, arch, h) in enumerate(found) if status == NEW]
        cells = [arch for _, arch, _ in new]
        own = codec.encode_archs(p.model, cells)[0] if cells else []
        note = {
            "bo_round": rnd,
            "points": len(z),
            "cells": [{"hash": h, "point": _plain(z[i]), "own": _plain(m)} for (i, _, h), m in zip(new, own)],
            "duplicates": [{"point": _plain(z[i]), "of": f[2]} for i, f in enumerate(found) if f[0] == DUPLICATE],
            "invalid": [_plain(z[i]) for i, f in enumerate(found) if f[0] == INVALID],
            "gp": gp,
            "seconds": round(time.perf_counter() - began, 3),
        }
        self.recall(note)
        self._unsaid.append(note)
        return cells

    def _data(self, history: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """GP inputs and targets from every observation so far, and the initial scores (target scaling)."""
        scores = dict(self.prior_known)
        xs: list[np.ndarray] = [z for z, _ in self.prior]
        ys: list[float] = [s for _, s in self.prior]
        first = list(ys)
        initial = {self.key(c) for c in self.initial}
        for key, score in zip(history.keys, history.scores):
            if not np.isfinite(score):
                continue
            scores[key] = score
            if key in initial:
                first.append(score)
            for point in self.points.get(key, []):
                xs.append(point)
                ys.append(score)
        worst = min(first) if first else None
        for point, of in self.free:
            target = worst if of is None else scores.get(of)
            if target is not None:
                xs.append(point)
                ys.append(target)
        return np.asarray(xs, np.float32), np.asarray(ys, np.float64), np.asarray(first, np.float64)

    def _check_stalled(self) -> None:
        last = self.rounds[-STALLED_ROUNDS:]
        if self.settings.iters is None and len(last) == STALLED_ROUNDS and not any(r["cells"] for r in last):
            raise SearchError(
                f"latent: the last {STALLED_ROUNDS} rounds decoded only to cells already known or to invalid "
                "graphs; more --attempts, or a smaller --budget"
            )
