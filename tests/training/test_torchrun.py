"""`torchrun` (the Slurm / multi-node launcher) can start svge train-vae ranks directly."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import psutil
import pytest
from conftest import REPO

TORCHRUN = shutil.which("torchrun")


def _free_port() -> int:
    """A port nothing listens on, so the rendezvous never meets another test's job."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not on PATH")
def test_torchrun_two_ranks_write_one_checkpoint_from_rank_zero(tmp_path: Path) -> None:
    work, port = tmp_path / "w", _free_port()
    args = [TORCHRUN, "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1"]
    args += ["--master-port", str(port), "-m", "svge_cli", "--workdir", str(work), "--threads", "1"]
    args += ["train-vae", "--space", "nb201", "--limit", "64", "--epochs", "1", "--batch-size", "16"]
    args += ["--out", str(work / "run")]
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    job = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = job.communicate(timeout=60)
    finally:
        children = psutil.Process(job.pid).children(recursive=True) if job.poll() is None else []
        if job.poll() is None:
            os.killpg(job.pid, 9)
            job.wait()
        psutil.wait_procs(children, timeout=5)
    assert job.returncode == 0, err
    assert sorted(p.name for p in (work / "run").iterdir()) == ["last.h5"]
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines == [f"checkpoint: {work / 'run' / 'last.h5'}"], out
