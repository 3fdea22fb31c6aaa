"""Shared fixtures: an in-process `svge` runner, a private workspace, a tiny trained checkpoint.

The CLI runs through `svge_cli.cli.main`, the console script's entry point, so
that tests see exactly what a shell user sees: the exit code, stdout (bytes:
latents travel as binary HDF5) and the one-line errors on stderr.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from svge_cli import artifacts
from svge_cli.cli import main
from svge_cli.model import ModelConfig, SVGe, checkpoints, codec
from svge_cli.spaces import get_space
from svge_cli.storage import store
from svge_cli.storage.archtext import format_arch
from svge_cli.storage.workspace import Workspace
from svge_cli.training.vae import dataset_digest

# The test models are tiny: on a shared 2-core machine one thread avoids the
# oversubscription that makes small torch ops many times slower.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
TINY = {"hidden": 16, "latent": 8}


class _Stream(io.TextIOWrapper):
    """A text stream over bytes that can claim to be a terminal."""

    def __init__(self, data: bytes = b"", tty: bool = False) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8", write_through=True)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def bytes(self) -> bytes:
        self.flush()
        return self.buffer.getvalue()


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.decode()

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


Runner = Callable[..., Result]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workspace via SVGE_WORKDIR; the current folder is a scratch folder too."""
    ws = tmp_path / "ws"
    monkeypatch.setenv("SVGE_WORKDIR", str(ws))
    monkeypatch.chdir(tmp_path)
    return ws


@pytest.fixture
def svge(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> Runner:
    """Run `svge ARGS` in-process, always in a private workspace (see `workdir`).

    `stdin` is bytes or text; `tty` names the streams that claim to be terminals.
    """

    def run(*args: str, stdin: bytes | str = b"", tty: tuple[str, ...] = ()) -> Result:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        streams = {
            "stdin": _Stream(data, "stdin" in tty),
            "stdout": _Stream(tty="stdout" in tty),
            "stderr": _Stream(tty="stderr" in tty),
        }
        saved = {name: getattr(sys, name) for name in streams}
        monkeypatch.setattr(sys, "argv", ["svge", *args])
        try:
            for name, stream in streams.items():
                setattr(sys, name, stream)
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            for name, stream in saved.items():
                setattr(sys, name, stream)
        return Result(code, streams["stdout"].bytes(), streams["stderr"].bytes().decode())

    return run


def assert_one_line_error(result: Result, *words: str) -> None:
    """The contract for every error a user can cause: one `svge: error:` line, exit 1, no traceback."""
    assert result.code == 1, (result.code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("svge: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def alias(target: Path, how: str) -> Path:
    """`target` itself ("same path"), or a new name for it: a "symlink" or a "hard link"."""
    if how == "same path":
        return target
    other = target.with_name("alias-" + target.name)
    (os.symlink if how == "symlink" else os.link)(target, other)
    return other


def dead_pid() -> int:
    """The id of a process that has finished (and been reaped), as a SIGKILLed writer's would be."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def shell(command: str, cwd: Path, env: dict[str, str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run a real shell command line (pipes between `svge` processes included)."""
    full = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)} | env
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=full, input=stdin, capture_output=True, timeout=120
    )


# ---------------------------------------------------------------- a tiny trained ENAS model


ENAS_CELLS = 6
TRAIN_CELLS = 4


@dataclass(frozen=True)
class Trained:
    """A tiny ENAS model that reconstructs its cells, saved as a checkpoint with its dataset."""

    checkpoint: Path
    dataset: Path
    archs_jsonl: Path  # the training cells as JSON lines

    def remember_in(self, ws: Path) -> None:
        Workspace(ws).remember_checkpoint("enas", self.checkpoint)


def _overfit(model: SVGe, ops: np.ndarray, adj: np.ndarray, n: np.ndarray) -> None:
    from svge_cli.evaluation.recon import reconstruction_accuracy

    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(1, 401):
        loss = model.loss(ops, adj, n)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0 and reconstruction_accuracy(model.eval(), ops, adj, n, greedy=True) == 1.0:
            return
        model.train()
    raise AssertionError("the tiny model did not learn its cells")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    sp = get_space("enas")
    folder = tmp_path_factory.mktemp("trained")
    ds = sp.default_dataset(seed=7, n=ENAS_CELLS)
    ds.split = np.array(
        [artifacts.SPLIT_TRAIN] * TRAIN_CELLS + [artifacts.SPLIT_TEST] * (ENAS_CELLS - TRAIN_CELLS), np.int8
    )
    store.save_dataset(folder / "dataset.h5", ds)
    torch.manual_seed(0)
    model = SVGe(ModelConfig(vocab_size=sp.vocab_size, max_nodes=sp.max_nodes, **TINY)).train()
    _overfit(model, ds.ops, ds.adj, ds.n_nodes)
    mu, _ = codec.encode_arrays(model.eval(), ds.ops, ds.adj, ds.n_nodes)
    ck = checkpoints.snapshot(
        "enas",
        model,
        epoch=1,
        arrays={
            "train_rows": np.arange(TRAIN_CELLS, dtype=np.int32),
            "test_rows": np.arange(TRAIN_CELLS, ENAS_CELLS, dtype=np.int32),
            "latent_mean": mu.mean(0),
            "latent_std": mu.std(0),
        },
        meta={"dataset": str(folder / "dataset.h5"), "dataset_digest": dataset_digest(ds)},
    )
    store.save_checkpoint(folder / "last.h5", ck)
    (folder / "archs.jsonl").write_text("".join(format_arch(a, sp) + "\n" for a in ds.archs()))
    return Trained(folder / "last.h5", folder / "dataset.h5", folder / "archs.jsonl")


@pytest.fixture
def enas_ws(workdir: Path, trained: Trained) -> Path:
    """A workspace whose latest ENAS checkpoint is the tiny trained model."""
    trained.remember_in(workdir)
    return workdir
