"""Training on several processes: gloo on 127.0.0.1, started by the elastic launcher (`--nproc`).

Each launch costs a few seconds of process start-up, so the runs are few and tiny.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from conftest import REPO, TINY, Runner, assert_one_line_error

from svge_cli.model import ModelConfig, SVGe
from svge_cli.spaces import get_space
from svge_cli.storage import store
from svge_cli.training.distributed import Group, check_world, launch, process_group
from svge_cli.training.loop import LossOf, batch_rows, step_rows
from svge_cli.training.noise import cell_noise

RUN = ("train-vae", "--space", "enas", "--limit", "40", "--batch-size", "8")  # 37 cells: a short last batch


def _cells() -> tuple[np.ndarray, ...]:
    ds = get_space("enas").default_dataset(seed=3, n=32)
    return ds.ops, ds.adj, ds.n_nodes


def _tiny_model() -> SVGe:
    torch.manual_seed(0)
    sp = get_space("enas")
    return SVGe(ModelConfig(vocab_size=sp.vocab_size, max_nodes=sp.max_nodes, **TINY)).train()


def _gradients(model: SVGe, rows: np.ndarray, group: Group) -> dict[str, np.ndarray]:
    """The gradient of one step on the global batch `rows`, as training takes it."""
    net = group.wrap(LossOf(model))
    mine, weight = step_rows(rows, group)
    out = net(*batch_rows(*_cells(), mine), cell_noise(5, 0, mine, model.cfg.latent))
    (out["total"] * weight).backward()
    return {k: p.grad.numpy().copy() for k, p in model.named_parameters()}


def _gradients_rank(folder: str) -> None:
    torch.set_num_threads(1)
    with process_group(torch.device("cpu")) as group:
        np.savez(Path(folder) / f"rank{group.rank}.npz", **_gradients(_tiny_model(), np.arange(32), group))


def test_cell_noise_does_not_depend_on_the_batch() -> None:
    together = cell_noise(1, 2, np.arange(10), 8)
    assert np.array_equal(cell_noise(1, 2, np.array([7, 3]), 8), together[[7, 3]])
    assert not np.allclose(cell_noise(1, 3, np.arange(10), 8), together)
    assert not np.allclose(cell_noise(2, 2, np.arange(10), 8), together)
    many = cell_noise(0, 0, np.arange(20000), 8)
    assert many.dtype == np.float32 and abs(many.mean()) < 0.02 and abs(many.std() - 1) < 0.02


def test_shares_of_a_batch_weigh_to_its_mean() -> None:
    batch = np.arange(5)
    shares = [step_rows(batch, Group(r, 4)) for r in range(4)]
    assert sorted(np.concatenate([s for s, w in shares if w]).tolist()) == batch.tolist()
    assert [w for _, w in shares] == pytest.approx([2 * 4 / 5, 4 / 5, 4 / 5, 4 / 5])
    assert step_rows(np.arange(2), Group(3, 4)) == (pytest.approx(np.arange(1)), 0.0)
    with pytest.raises(Exception, match="multiple of 4"):
        check_world(4, 30, 100)
    with pytest.raises(Exception, match="at most 3"):
        check_world(4, 32, 3)


def test_two_processes_give_the_gradients_of_one(tmp_path: Path) -> None:
    launch(_gradients_rank, (str(tmp_path),), nproc=2)
    alone = _gradients(_tiny_model(), np.arange(32), Group())
    for rank in (0, 1):
        shared = np.load(tmp_path / f"rank{rank}.npz")
        for name, grad in alone.items():
            scale = float(np.abs(grad).max())
            assert np.allclose(shared[name], grad, rtol=1e-6, atol=1e-6 * scale), name


def _weights(path: Path) -> dict[str, np.ndarray]:
    return store.load_checkpoint(path).state


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:  # Adam's first steps amplify float rounding of tiny gradients a little
        assert np.allclose(wa[k], wb[k], rtol=1e-3, atol=1e-4), (k, float(np.abs(wa[k] - wb[k]).max()))


def test_two_processes_train_as_one_and_resume_at_any_world_size(svge: Runner, workdir: Path) -> None:
    one = svge(*RUN, "--epochs", "1", "--out", "one")
    assert one.code == 0, one.stderr
    two = svge(*RUN, "--epochs", "1", "--out", "two", "--nproc", "2")
    assert two.code == 0, two.stderr
    assert two.lines == ["checkpoint: two/last.h5"]
    assert sorted(p.name for p in Path("two").iterdir()) == ["last.h5"]
    _assert_same_weights(Path("one/last.h5"), Path("two/last.h5"))
    h1, h2 = store.load_checkpoint("one/last.h5").history, store.load_checkpoint("two/last.h5").history
    assert h2[0]["loss"] == pytest.approx(h1[0]["loss"], rel=1e-6)
    # epoch 2: the two-process run continues on one process
    assert svge(*RUN, "--epochs", "2", "--out", "one", "--resume").code == 0
    assert svge(*RUN, "--epochs", "2", "--out", "two", "--resume").code == 0
    _assert_same_weights(Path("one/last.h5"), Path("two/last.h5"))
    h1, h2 = store.load_checkpoint("one/last.h5").history, store.load_checkpoint("two/last.h5").history
    assert len(h1) == len(h2) == 2 and h2[1]["test_recon_greedy"] == h1[1]["test_recon_greedy"]


@pytest.mark.parametrize(
    "args, words",
    [
        (("--nproc", "32", "--limit", "20", "--batch-size", "32"), ("32 processes", "training cells")),
        (("--nproc", "2", "--batch-size", "7"), ("--batch-size 7", "multiple of 2")),
        (("--nproc", "2", "--device", "cuda"), ("--nproc 2 with --device cuda", "GPUs")),
        (("--max-restarts", "1"), ("--max-restarts", "--nproc")),
    ],
)
def test_bad_world_sizes_fail_before_anything_starts(svge: Runner, workdir: Path, args: tuple, words: tuple) -> None:
    before = set(psutil.Process().children(recursive=True))
    assert_one_line_error(svge("train-vae", "--space", "enas", "--out", "run", *args), *words)
    assert not Path("run").exists() and not (workdir / "enas").exists()
    assert set(psutil.Process().children(recursive=True)) <= before


def test_nproc_zero_is_a_usage_error(svge: Runner) -> None:
    result = svge("train-vae", "--space", "enas", "--nproc", "0")
    assert result.code == 2 and "--nproc" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not Path("run").exists()


# ---------------------------------------------------------------- failures of a running job


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "SVGE_WORKDIR": str(tmp_path / "ws")}
    args = [sys.executable, "-m", "svge_cli", "-q", "--threads", "1", *RUN, "--out", "run", *extra]
    return subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _ranks(job: subprocess.Popen) -> list[psutil.Process]:
    """The training processes the launcher under `job` spawned (its resource tracker aside)."""
    found = []
    for child in psutil.Process(job.pid).children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in line:
            found.append(child)
    return found


def _wait_for(condition, seconds: float) -> None:  # noqa: ANN001
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def _after_first_epoch(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, list[psutil.Process]]:
    job = _start(tmp_path, *extra)
    _wait_for(lambda: (tmp_path / "run" / "last.h5").exists() or job.poll() is not None, 90)
    assert job.poll() is None, job.stderr.read()
    ranks = _ranks(job)
    assert len(ranks) == 2, ranks
    return job, ranks


def _assert_all_gone(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert not alive, alive


def test_a_killed_rank_ends_the_run_with_one_line(tmp_path: Path) -> None:
    job, ranks = _after_first_epoch(tmp_path, "--epochs", "500", "--nproc", "2")
    ranks[-1].kill()
    began = time.monotonic()
    _, err = job.communicate(timeout=30)
    assert time.monotonic() - began < 15
    assert job.returncode == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("svge: error: rank "), err
    assert f"(pid {ranks[-1].pid}) was killed by SIGKILL" in lines[0] and "run/last.h5" in lines[0]
    _assert_all_gone(ranks)
    assert store.load_checkpoint(tmp_path / "run" / "last.h5").epoch >= 1


@pytest.mark.slow  # half a minute of process start-up and training on a busy 2-core machine
def test_ctrl_c_stops_every_rank_and_keeps_the_last_epoch(tmp_path: Path) -> None:
    job, ranks = _after_first_epoch(tmp_path, "--epochs", "500", "--nproc", "2")
    os.killpg(job.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, err = job.communicate(timeout=30)
    assert job.returncode == 130 and "svge: interrupted" in err, err
    _assert_all_gone(ranks)
    kept = store.load_checkpoint(tmp_path / "run" / "last.h5", with_optimizer=True)
    assert kept.epoch >= 1 and len(kept.history) == kept.epoch


@pytest.mark.slow
def test_max_restarts_resumes_from_the_last_checkpoint(tmp_path: Path) -> None:
    job, ranks = _after_first_epoch(tmp_path, "--epochs", "8", "--nproc", "2", "--max-restarts", "1")
    ranks[-1].kill()
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    done = store.load_checkpoint(tmp_path / "run" / "last.h5")
    assert done.epoch == 8 and [h["epoch"] for h in done.history] == list(range(1, 9))
    _assert_all_gone(ranks)
    shutil.rmtree(tmp_path / "run")
