"""`svge bo` on many workers: a local Dask cluster, a scheduler file, a killed driver, bad cluster requests.

Every process a test starts listens on 127.0.0.1 only and is ended by its process id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from bo_helpers import make_workspace
from conftest import REPO, Runner, assert_one_line_error

from svge_cli.search.journal import FINISH, RETRY, SUBMIT, read_journal

SLOW = """
import json, os, signal, sys, time
cell = json.loads(sys.stdin.readline())
with open(os.environ["SVGE_TEST_LOG"], "a") as log:
    log.write(cell["native"] + "\\n")
{extra}
time.sleep({sleep})
print(json.dumps({{"score": sum("conv" in o for o in cell["ops"]) + 0.1 * sum("3x3" in o for o in cell["ops"]),
                  "cost": {sleep}}}))
"""


@pytest.fixture()
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every evaluator start writes its cell here (the environment reaches every worker's evaluator)."""
    path = tmp_path / "evaluated.txt"
    monkeypatch.setenv("SVGE_TEST_LOG", str(path))
    return path


def evaluator(tmp_path: Path, sleep: float = 0.2, extra: str = "") -> str:
    path = tmp_path / "slow_evaluator.py"
    path.write_text(SLOW.format(sleep=sleep, extra=textwrap.dedent(extra)))
    return f"{sys.executable} {path}"


def bo(svge: Runner, results: Path, cmd: str, *args: str):
    return svge("bo", "--space", "nb201", "--evaluator", cmd, "--results", str(results), *args)


def trial(results: Path) -> list[dict]:
    (t,) = json.loads(results.read_text())["trials"]
    return t["queries"]


def journal(results: Path) -> list[dict]:
    return read_journal(results.with_name(results.stem + ".journal.jsonl"))


def test_two_workers_spend_the_budget_without_duplicates_and_retry_a_killed_worker_once(
    workdir: Path, svge: Runner, tmp_path: Path, log: Path
) -> None:
    make_workspace(workdir, table=False)
    marker = tmp_path / "killed-once"
    kill = f"""
    if not os.path.exists({str(marker)!r}):
        open({str(marker)!r}, "w").close()
        os.kill(os.getppid(), signal.SIGKILL)  # the Dask worker running this evaluation dies
    """
    results = tmp_path / "r.json"
    r = bo(svge, results, evaluator(tmp_path, extra=kill), "--budget", "10", "--workers", "2", "--json")
    assert r.code == 0, r.stderr
    queries = trial(results)
    assert len(queries) == 10 and len({q["hash"] for q in queries}) == 10
    assert all(q["status"] == "queried" and q["extra"] == {"cost": 0.2} for q in queries)
    records = journal(results)
    (retry,) = [r for r in records if r["type"] == RETRY]
    assert "worker lost" in retry["reason"]
    again = [q for q in queries if q["cell"] == retry["cell"]]
    assert len(again) == 1 and again[0]["attempt"] == 2
    assert len([r for r in records if r["type"] == FINISH]) == 10
    facts = json.loads(r.lines[-1])
    assert facts["workers"] == 2 and facts["worker_seconds"] > 0 and facts["cost_per_cell"] > 0.2


def test_gpus_give_every_worker_its_own_device(
    workdir: Path, svge: Runner, tmp_path: Path, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from svge_cli.commands import bo as bo_command

    make_workspace(workdir, table=False)
    monkeypatch.setattr(bo_command, "_cuda_devices", lambda: 4)  # no GPU here: the devices are only names
    results = tmp_path / "g.json"
    r = bo(svge, results, evaluator(tmp_path, sleep=0.3), "--budget", "6", "--gpus", "1,3", "--strategy", "random")
    assert r.code == 0, r.stderr
    assert {q["device"] for q in trial(results)} == {"1", "3"}


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)


def settle(log: Path, quiet: float = 1.0, limit: float = 15.0) -> None:
    """Wait until the evaluation log has not grown for `quiet` seconds."""
    deadline, size, since = time.monotonic() + limit, -1, time.monotonic()
    while time.monotonic() < deadline:
        now = log.stat().st_size if log.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def test_a_scheduler_file_reaches_workers_started_elsewhere(
    workdir: Path, svge: Runner, tmp_path: Path, log: Path
) -> None:
    make_workspace(workdir, table=False)
    file = tmp_path / "scheduler.json"
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    dask = [sys.executable, "-m", "distributed.cli"]
    procs = [
        start(
            [*dask[:2], "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(file)],
            env,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        for _ in range(2):
            procs.append(
                start(
                    [*dask[:2], "distributed.cli.dask_worker", "--scheduler-file", str(file), "--nthreads", "1",
                     "--host", "127.0.0.1", "--no-dashboard"],
                    env,
                )
            )  # fmt: skip
        from distributed import Client

        with Client(scheduler_file=str(file), timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        results = tmp_path / "s.json"
        r = bo(svge, results, evaluator(tmp_path, sleep=0.5), "--budget", "8", "--scheduler-file", str(file))
        assert r.code == 0, r.stderr
        queries = trial(results)
        assert len({q["hash"] for q in queries}) == 8
        assert len({q["worker"] for q in queries}) == 2
    finally:
        stop(procs)


def test_a_killed_driver_resumes_with_the_budget_and_reruns_only_cells_in_flight(
    workdir: Path, svge: Runner, tmp_path: Path, log: Path
) -> None:
    make_workspace(workdir, table=False)
    cmd = evaluator(tmp_path, sleep=0.15)
    args = ("--budget", "14", "--batch", "4", "--strategy", "pool")
    whole = tmp_path / "whole.json"
    assert bo(svge, whole, cmd, *args).code == 0
    log.unlink()

    results = tmp_path / "cut.json"
    argv = [sys.executable, "-m", "svge_cli", "--threads", "1", "bo", "--space", "nb201", "--evaluator", cmd,
            "--results", str(results), *args]  # fmt: skip
    driver = start(argv, os.environ | {"PYTHONPATH": str(REPO), "SVGE_WORKDIR": str(workdir)})
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and driver.poll() is None:
            path = results.with_name("cut.journal.jsonl")
            if path.exists() and path.read_bytes().count(b'"finish"') >= 6:
                break
            time.sleep(0.05)
    finally:
        stop([driver])
    settle(log)  # an evaluator started just before the kill runs on in its own session and logs late
    before = journal(results)
    done_before = {r["cell"]: r for r in before if r["type"] == FINISH}
    submitted = {r["cell"] for r in before if r["type"] == SUBMIT}
    assert 6 <= len(done_before) < 14
    evaluated_before = log.read_text().splitlines()

    r = bo(svge, results, cmd, *args, "--resume")
    assert r.code == 0, r.stderr
    queries = trial(results)
    assert len(queries) == 14 and len({q["hash"] for q in queries}) == 14
    for q in queries:
        if q["cell"] in done_before:  # every journaled result is kept as it was
            old = done_before[q["cell"]]
            assert (q["score"], q["seconds"], q["worker"]) == (old["score"], old["seconds"], old["worker"])
    evaluated = log.read_text().splitlines()
    twice = {a for a in evaluated if evaluated.count(a) > 1}
    in_flight = {r["arch"] for r in before if r["type"] == SUBMIT and r["cell"] in submitted - set(done_before)}
    assert twice <= in_flight and len(twice) <= 1  # one worker: at most the cell it was evaluating
    assert len(evaluated) - len(evaluated_before) == 14 - len(done_before)
    assert [(q["arch"], q["score"]) for q in queries] == [(q["arch"], q["score"]) for q in trial(whole)]


def test_failing_and_slow_evaluations_are_failed_cells_with_their_reasons(
    workdir: Path, svge: Runner, tmp_path: Path, log: Path
) -> None:
    make_workspace(workdir, table=False)
    trouble = """
    if "none" in cell["native"]:
        sys.stderr.write("diverged\\n")
        sys.exit(9)
    if "avg_pool" in cell["native"]:
        time.sleep(30)
    """
    results = tmp_path / "f.json"
    r = bo(svge, results, evaluator(tmp_path, sleep=0.0, extra=trouble), "--budget", "12", "--timeout", "0.5",
           "--strategy", "random", "--json")  # fmt: skip
    assert r.code == 0, r.stderr
    queries = trial(results)
    assert len(queries) == 12
    failed = [q for q in queries if q["status"] == "failed"]
    assert failed and all(q["score"] is None for q in failed)
    exits = [q for q in failed if q["failure"] == "exit"]
    timeouts = [q for q in failed if q["failure"] == "timeout"]
    assert exits and all(q["exit"] == 9 and "diverged" in q["stderr"] for q in exits)
    assert timeouts and all("timed out after 0.5 s" in q["reason"] for q in timeouts)
    facts = json.loads(r.lines[-1])
    assert facts["failures"]["count"] == len(failed)
    assert facts["failures"]["reasons"]["the evaluator exited with status 9"] == len(exits)


def test_the_summary_says_how_many_cells_failed_and_why(workdir: Path, svge: Runner, tmp_path: Path) -> None:
    make_workspace(workdir, table=False)
    three = tmp_path / "three.py"
    three.write_text("print(1)\nprint(2)\nprint(3)\n")
    r = bo(svge, tmp_path / "t.json", f"{sys.executable} {three}", "--budget", "3", "--strategy", "random")
    assert r.code == 1 and "Traceback" not in r.stderr
    summary, error = r.stderr.strip().splitlines()[-2:]
    assert summary.startswith("3 cell(s) failed: 3 x the evaluator answered 3 lines for one cell")
    assert error == "svge: error: no cell got a score: 3 x the evaluator answered 3 lines for one cell"
    assert trial(tmp_path / "t.json")[0]["reason"] == "the evaluator answered 3 lines for one cell"


# ---------------------------------------------------------------- bad cluster requests


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args, words",
    [
        (("--workers", "0"), ("--workers must be at least 1",)),
        (("--gpus", "0"), ("no CUDA device 0",)),
        (("--gpus", "a,b"), ("device numbers",)),
        (("--scheduler-file", "/no/such/scheduler.json"), ("no such file",)),
        (("--scheduler", "tcp://127.0.0.1:1", "--scheduler-file", "x"), ("not both",)),
        (("--init", "20", "--budget", "10"), ("--init 20 is more than --budget 10",)),
        (("--target", "nope"), ("--target 'nope'",)),
    ],
)
def test_bad_cluster_requests_are_one_line_and_write_nothing(
    workdir: Path, svge: Runner, tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    make_workspace(workdir, table=False)
    results = tmp_path / "run" / "r.json"
    assert_one_line_error(bo(svge, results, "true", *args), *words)
    assert not results.parent.exists()


def test_an_unreachable_scheduler_is_one_line_and_leaves_nothing_behind(
    workdir: Path, svge: Runner, tmp_path: Path
) -> None:
    import dask

    make_workspace(workdir, table=False)
    results = tmp_path / "run" / "r.json"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        r = bo(svge, results, "true", "--scheduler", f"tcp://127.0.0.1:{free_port()}")
    assert_one_line_error(r, "cannot reach the Dask scheduler")
    assert not results.parent.exists()


def test_an_existing_results_file_is_kept_unless_resumed_or_forced(
    workdir: Path, svge: Runner, tmp_path: Path, log: Path
) -> None:
    make_workspace(workdir, table=False)
    cmd = evaluator(tmp_path, sleep=0.0)
    results = tmp_path / "r.json"
    assert bo(svge, results, cmd, "--budget", "3", "--strategy", "random").code == 0
    before = results.read_bytes()
    assert_one_line_error(bo(svge, results, cmd, "--budget", "3", "--strategy", "random"), "--resume", "--force")
    assert results.read_bytes() == before
    other = bo(svge, results, cmd, "--budget", "3", "--strategy", "evolution", "--resume")
    assert_one_line_error(other, "cannot resume", "strategy")
    assert results.read_bytes() == before
    assert bo(svge, results, cmd, "--budget", "4", "--strategy", "random", "--force").code == 0
    assert len(trial(results)) == 4
