"""The search driver: keep the workers busy, journal every step, propose the next cell as one finishes.

Two ways to run, one loop:

* synchronous (one worker, in the driver): a trial proposes a batch of `batch` cells, they are
  evaluated in order, and only then is the next batch proposed -- exactly `run_search`, so
  `svge bo --batch 5` means what it always meant, and a resumed run proposes what the
  uninterrupted one would have (the strategy's RNG is seeded by (seed, cells so far));
* asynchronous (N workers): N cells are in flight at all times; when one finishes the
  strategy proposes the next at once, given every finished result and the cells still pending
  (pool BO believes them at their predicted means, evolution and random never repeat them).
  Trials share the workers, so `--trials 5` keeps them all busy too.

Every submission, result, failure and retry is fsync'd to the journal before the driver acts
on it, and so is what a strategy learned beyond its cells (`notes`: the latent BO's selected
points, duplicates and invalid decodes), which a resumed strategy `recall`s.  The budget is
exact: a trial never has more than `budget` cells submitted, and a failed cell counts as a
query.  A cell whose worker is lost goes out again up to `retries` times, then counts as
failed with the reason.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from svge_cli.search.cluster import Executor, WorkerLost
from svge_cli.search.journal import FAIL, FINISH, NOTE, RETRY, SUBMIT, Journal, TrialLog
from svge_cli.search.strategies import History, SearchError, Strategy
from svge_cli.search.tasks import failed

POLL_SECONDS = 0.5  # how often the driver looks up from waiting (new workers, progress line)


class Searchable(Protocol):
    """What the driver needs of a prepared search (`runner.Plan`)."""

    def make_strategy(self, seed: int) -> Strategy: ...

    def describe(self, candidate: Any) -> tuple[str, str]: ...  # (native text, hash)

    def candidate_of(self, native: str) -> Any: ...

    def job(self, candidate: Any) -> tuple[Callable[[Any], dict[str, Any]], Any]: ...


@dataclass
class Cell:
    """A cell handed out: which trial, its number in the trial, how often it was sent, how often lost."""

    trial: int
    number: int
    candidate: Any
    key: Hashable
    arch: str
    hash: str
    round: int
    attempt: int = 0
    lost: int = 0


@dataclass
class TrialRun:
    """One seed's search as the driver holds it."""

    seed: int
    strategy: Strategy
    history: History = field(default_factory=History)
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # finish / fail records, in order
    pending: dict[int, Cell] = field(default_factory=dict)
    cells: int = 0
    rounds: int = 0

    def submitted(self) -> int:
        return len(self.history) + len(self.pending)


@dataclass(frozen=True)
class Engine:
    budget: int
    batch: int
    retries: int = 2
    sync: bool = True  # one worker in the driver: batch by batch
    slots: int | None = None  # cells in flight (async); None: one per connected worker thread


def restore(search: Searchable, seed: int, log: TrialLog | None) -> TrialRun:
    """A trial rebuilt from its journal: finished cells kept as they were, in-flight ones to send again.

    Args:
        search: the prepared search, which makes the trial's strategy and reads journaled cells back.
        seed: the trial's seed, which both names the trial and seeds its strategy.
        log: what the journal holds for this trial; None when it has nothing yet (a fresh trial).

    Returns:
        The trial with its finished cells in the history, its unfinished ones pending (attempts and
        losses so far kept), and the strategy's journaled notes recalled.
    """
    trial = TrialRun(seed, search.make_strategy(seed))
    if log is None:
        return trial
    for note in log.notes:
        trial.strategy.recall(note)  # type: ignore[attr-defined]  # only strategies that take notes write them
    for rec in log.done:
        c = search.candidate_of(rec["arch"])
        trial.history.add(c, trial.strategy.key(c), math.nan if rec.get("score") is None else rec["score"])
        trial.outcomes.append(rec)
        trial.rounds = max(trial.rounds, int(rec.get("round", 0)))
    for number in sorted(log.pending):
        rec = log.pending[number]
        c = search.candidate_of(rec["arch"])
        trial.pending[number] = Cell(
            seed, number, c, trial.strategy.key(c), rec["arch"], rec["hash"], int(rec.get("round", 0)),
            attempt=log.attempts.get(number, 1), lost=log.lost.get(number, 0),
        )  # fmt: skip
        trial.rounds = max(trial.rounds, int(rec.get("round", 0)))
    trial.cells = log.cells
    return trial


class Driver:
    """Runs trials to their budget on an executor, journaling as it goes.

    Args:
        search: the prepared search: strategies, cell descriptions and the job each cell runs.
        engine: the budget, batch size, retries and whether cells go out batch by batch or asynchronously.
        executor: where the evaluations run (inline, or a Dask cluster).
        journal: the file every submission, result, retry and note is written to before it is acted on.
        on_result: called with the trial and the journaled finish or fail record as each cell settles.
        on_note: called with the trial and each note its strategy wrote; by default nothing is done.
    """

    def __init__(
        self,
        search: Searchable,
        engine: Engine,
        executor: Executor,
        journal: Journal,
        on_result: Callable[[TrialRun, dict[str, Any]], None],
        on_note: Callable[[TrialRun, dict[str, Any]], None] = lambda trial, note: None,
    ) -> None:
        self.search, self.engine, self.executor, self.journal = search, engine, executor, journal
        self.on_result, self.on_note = on_result, on_note
        self.inflight: dict[Any, Cell] = {}
        self.trials: dict[int, TrialRun] = {}
        self.proposal_seconds: list[float] = []
        self.token = uuid.uuid4().hex[:8]  # task keys stay unique on a shared scheduler

    # -------------------------------------------------------- the loop

    def run(self, trials: list[TrialRun]) -> None:
        self.trials = {t.seed: t for t in trials}
        for t in trials:
            for cell in list(t.pending.values()):
                self._submit(cell)
        while True:
            self._fill()
            if not self.inflight:
                return
            for future in self.executor.wait(list(self.inflight), POLL_SECONDS):
                self._settle(future)

    def _open(self) -> list[TrialRun]:
        """Trials with budget left whose strategy has rounds left."""
        return [t for t in self.trials.values() if t.submitted() < self.engine.budget and not exhausted(t)]

    def _fill(self) -> None:
        if self.engine.sync:
            while not self.inflight:  # a round may bring no new cell (latent BO's duplicates): propose again
                ready = [t for t in self._open() if not t.pending]
                if not ready:
                    return
                self._propose(ready[0], self.engine.batch)
            return
        while True:
            free = (self.engine.slots or max(1, self.executor.workers())) - len(self.inflight)
            trials = self._open()
            if free <= 0 or not trials:
                return
            trial = min(trials, key=lambda t: (t.submitted(), t.seed))
            if not self._propose(trial, max(1, free // len(trials))):
                return

    def _propose(self, trial: TrialRun, n: int) -> bool:
        """Ask the strategy for up to `n` cells and send them out; False when it had none to give."""
        left = self.engine.budget - trial.submitted()
        rng = np.random.default_rng([trial.seed, trial.submitted()])
        pending = [c.candidate for c in trial.pending.values()]
        began = time.perf_counter()
        proposed = trial.strategy.propose(trial.history, min(n, left), left, rng, pending)
        self.proposal_seconds.append(time.perf_counter() - began)
        proposed = proposed[: left if self.engine.sync else min(n, left)]
        notes = self._write_notes(trial)
        if not proposed:
            if notes:
                trial.rounds += 1  # a round that taught the strategy something, at no query
                return True
            if trial.pending or exhausted(trial):
                return False
            raise SearchError(f"{trial.strategy.name}: nothing left to propose after {len(trial.history)} queries")
        keys = [trial.strategy.key(c) for c in proposed]
        taken = {c.key for c in trial.pending.values()}
        if len(set(keys)) != len(keys) or any(trial.history.seen(k) or k in taken for k in keys):
            raise SearchError(f"{trial.strategy.name} proposed a candidate twice")  # a bug, never the user's
        trial.rounds += 1
        for c, k in zip(proposed, keys):
            arch, h = self.search.describe(c)
            cell = Cell(trial.seed, trial.cells, c, k, arch, h, trial.rounds)
            trial.cells += 1
            trial.pending[cell.number] = cell
            self._submit(cell)
        return True

    def _write_notes(self, trial: TrialRun) -> list[dict[str, Any]]:
        """Journal what the strategy learned beyond its cells, before any of those cells goes out."""
        take = getattr(trial.strategy, "take_notes", None)
        notes = take() if take is not None else []
        for note in notes:
            self.journal.append(NOTE, trial=trial.seed, round=trial.rounds + 1, **note)
            self.on_note(trial, note)
        return notes

    def _submit(self, cell: Cell) -> None:
        cell.attempt += 1
        self.journal.append(
            SUBMIT, trial=cell.trial, cell=cell.number, attempt=cell.attempt, round=cell.round, arch=cell.arch,
            hash=cell.hash,
        )  # fmt: skip
        fn, arg = self.search.job(cell.candidate)
        key = f"svge-{self.token}-{cell.trial}-{cell.number}-{cell.attempt}"
        self.inflight[self.executor.submit(fn, arg, key)] = cell

    def _settle(self, future: Any) -> None:
        cell = self.inflight.pop(future)
        try:
            result = self.executor.result(future)
        except WorkerLost as e:
            cell.lost += 1
            if cell.lost <= self.engine.retries:
                self.journal.append(
                    RETRY, trial=cell.trial, cell=cell.number, attempt=cell.attempt, reason=f"worker lost ({e})"
                )
                self._submit(cell)
                return
            result = failed("lost", f"the worker evaluating it was lost {cell.lost} times ({e})")
        fields = {k: v for k, v in result.items() if k != "ok" and v is not None and v != {}}
        record = self.journal.append(
            FINISH if result["ok"] else FAIL,
            trial=cell.trial, cell=cell.number, attempt=cell.attempt, round=cell.round, arch=cell.arch,
            hash=cell.hash, **fields,
        )  # fmt: skip
        trial = self.trials[cell.trial]
        del trial.pending[cell.number]
        trial.history.add(cell.candidate, cell.key, result["score"] if result["ok"] else math.nan)
        trial.outcomes.append(record)
        self.on_result(trial, record)

    # -------------------------------------------------------- what a progress line shows

    def counts(self) -> dict[str, Any]:
        done = [r for t in self.trials.values() for r in t.outcomes]
        scores = [r["score"] for r in done if r["type"] == FINISH]
        return {
            "in_flight": len(self.inflight),
            "finished": len(scores),
            "failed": len(done) - len(scores),
            "best": max(scores) if scores else None,
            "workers": self.executor.workers(),
        }


def exhausted(trial: TrialRun) -> bool:
    """Whether the strategy has run all the rounds it was asked for (latent BO's --iters)."""
    done = getattr(trial.strategy, "exhausted", None)
    return done is not None and done(trial.submitted())
