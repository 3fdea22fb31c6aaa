"""The driver and its journal without Dask: exact budgets, pending cells never proposed, replay after a kill."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from svge_cli.errors import SvgeError
from svge_cli.search.cluster import WorkerLost
from svge_cli.search.driver import Driver, Engine, TrialRun, restore
from svge_cli.search.evolution import EvolutionSpace
from svge_cli.search.journal import FAIL, FINISH, RETRY, START, SUBMIT, Journal, read_journal, replay
from svge_cli.search.pool_bo import DEFAULT_POOL, PoolBO
from svge_cli.search.random_search import RandomPool
from svge_cli.search.strategies import History
from svge_cli.spaces import get_space

FEATURES = np.random.default_rng(0).normal(size=(300, 4))
SCORES = -np.square(FEATURES - 0.5).sum(1)


class Table:
    """A searchable pool of 300 cells scored by a smooth function of their features."""

    def __init__(self, strategy: str = "pool") -> None:
        self.strategy = strategy

    def make_strategy(self, seed: int):
        if self.strategy == "pool":
            return PoolBO(FEATURES, **DEFAULT_POOL)
        return RandomPool(len(FEATURES))

    def describe(self, c: int) -> tuple[str, str]:
        return str(c), str(c)

    def candidate_of(self, native: str) -> int:
        return int(native)

    def job(self, c: int):
        return score_cell, int(c)


def score_cell(c: int) -> dict[str, Any]:
    return {"ok": True, "score": float(SCORES[c]), "seconds": 0.0}


class Task:
    def __init__(self, fn, arg) -> None:
        self.fn, self.arg = fn, arg


class Shuffled:
    """An executor stand-in whose tasks finish in random order, some losing their worker once."""

    def __init__(self, workers: int, lose: set[int] = frozenset()) -> None:
        self.n, self.lose, self.rng = workers, set(lose), random.Random(0)

    def submit(self, fn, arg, key):
        return Task(fn, arg)

    def wait(self, futures, timeout):
        return [self.rng.choice(list(futures))]

    def result(self, future):
        if future.arg in self.lose:
            self.lose.discard(future.arg)
            raise WorkerLost("KilledWorker")
        return future.fn(future.arg)

    def workers(self) -> int:
        return self.n

    def close(self) -> None:
        pass


class Watching(PoolBO):
    """Pool BO that records every (pending, proposed) pair it was asked for."""

    calls: list[tuple[set[int], list[int]]] = []

    def propose(self, history, n, limit, rng, pending=()):
        out = super().propose(history, n, limit, rng, pending)
        Watching.calls.append(({int(p) for p in pending}, out))
        return out


def run_driver(tmp_path: Path, engine: Engine, executor, search=None, trials=(0,)) -> list[TrialRun]:
    search = search or Table()
    runs = [restore(search, s, None) for s in trials]
    with Journal(tmp_path / "j.jsonl", fresh=True) as journal:
        journal.append(START, kind="svge-search-journal", format_version=1)
        Driver(search, engine, executor, journal, lambda t, r: None).run(runs)
    return runs


def test_asynchronous_pool_search_never_proposes_a_pending_or_finished_cell(tmp_path: Path) -> None:
    table = Table()
    table.make_strategy = lambda seed: Watching(FEATURES, **DEFAULT_POOL)
    Watching.calls = []
    (run,) = run_driver(tmp_path, Engine(budget=40, batch=5, sync=False), Shuffled(4), table)
    assert len(run.history) == 40 and len(set(run.history.keys)) == 40
    assert any(pending for pending, _ in Watching.calls)  # the asynchronous path was taken
    for pending, proposed in Watching.calls:
        assert not pending & set(proposed)
    assert max(run.history.scores) > np.quantile(SCORES, 0.95)


def test_the_kriging_believer_steers_away_from_a_pending_cell() -> None:
    history = History()
    for i in range(20):
        history.add(i, i, float(SCORES[i]))
    alone = PoolBO(FEATURES, **DEFAULT_POOL).propose(history, 1, 1, np.random.default_rng(0))
    believer = PoolBO(FEATURES, **DEFAULT_POOL).propose(history, 1, 1, np.random.default_rng(0), pending=alone)
    assert believer != alone


def test_evolution_never_proposes_a_pending_cell() -> None:
    nb201 = get_space("nb201")
    evo = EvolutionSpace(nb201)
    history, rng = History(), np.random.default_rng(0)
    for a in evo.propose(history, 10, 10, rng):
        history.add(a, evo.key(a), 1.0)
    pending = evo.propose(history, 5, 5, rng)
    more = evo.propose(history, 5, 5, rng, pending=pending)
    assert not {evo.key(a) for a in pending} & {evo.key(a) for a in more}


def test_several_trials_share_the_workers_and_each_spends_its_budget(tmp_path: Path) -> None:
    runs = run_driver(tmp_path, Engine(budget=15, batch=5, sync=False), Shuffled(3), Table("random"), (0, 1, 2))
    assert [len(r.history) for r in runs] == [15, 15, 15]
    submits = [r for r in read_journal(tmp_path / "j.jsonl") if r["type"] == SUBMIT]
    assert {r["trial"] for r in submits[:6]} == {0, 1, 2}  # the first cells went to every trial


def test_a_lost_worker_is_retried_then_counted_as_failed(tmp_path: Path) -> None:
    class Always(Shuffled):
        def result(self, future):
            if future.arg in (3, 7):
                raise WorkerLost("KilledWorker")
            return future.fn(future.arg)

    engine = Engine(budget=300, batch=300, retries=2, sync=True)
    (run,) = run_driver(tmp_path, engine, Always(1), Table("random"))
    records = read_journal(tmp_path / "j.jsonl")
    assert len([r for r in records if r["type"] == RETRY]) == 4  # two retries of each doomed cell
    fails = [r for r in records if r["type"] == FAIL]
    assert sorted(int(r["arch"]) for r in fails) == [3, 7] and all("lost 3 times" in r["reason"] for r in fails)
    assert len(run.history) == 300 and sum(math.isnan(s) for s in run.history.scores) == 2


def test_a_retried_cell_is_recorded_once(tmp_path: Path) -> None:
    engine = Engine(budget=12, batch=12, sync=False)
    (run,) = run_driver(tmp_path, engine, Shuffled(2, lose=set(range(300))), Table("random"))
    records = read_journal(tmp_path / "j.jsonl")
    finished = [r["cell"] for r in records if r["type"] == FINISH]
    assert sorted(finished) == list(range(12)) and len([r for r in records if r["type"] == RETRY]) == 12


def test_replay_keeps_finished_cells_and_sends_in_flight_ones_again(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path, fresh=True) as j:
        j.append(START, kind="svge-search-journal", format_version=1)
        for cell in range(3):
            j.append(SUBMIT, trial=0, cell=cell, attempt=1, round=1, arch=str(cell), hash=str(cell))
        j.append(FINISH, trial=0, cell=1, round=1, arch="1", hash="1", score=2.5)
        j.append(FINISH, trial=0, cell=1, round=1, arch="1", hash="1", score=9.9)  # a duplicate answer counts once
    with open(path, "ab") as f:
        f.write(b'{"type": "finish", "trial": 0, "cell": 0, "sco')  # torn by a kill -9
    records = read_journal(path)
    log = replay(records)[0]
    assert [r["score"] for r in log.done] == [2.5] and sorted(log.pending) == [0, 2] and log.cells == 3
    run = restore(Table("random"), 0, log)
    assert run.history.candidates == [1] and sorted(run.pending) == [0, 2]


def test_a_file_that_is_not_a_journal_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"type": "finish"}) + "\n")
    with pytest.raises(SvgeError, match="not an svge search journal"):
        read_journal(path)
    Journal(tmp_path / "k.jsonl", fresh=True).close()
    with pytest.raises(SvgeError, match="already there"):
        Journal(tmp_path / "k.jsonl", fresh=True)
