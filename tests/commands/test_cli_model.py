"""`svge train-vae`, `encode`, `decode` and `evaluate` from a shell user's point of view.

Models are tiny (hidden 16, latent 8).  The `trained` fixture has learnt six ENAS
cells by heart, so an encode -> decode round trip must give them back exactly.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, Runner, Trained, assert_one_line_error, shell

from svge_cli import artifacts
from svge_cli.arch import Arch
from svge_cli.model import ModelConfig, SVGe, checkpoints, codec
from svge_cli.spaces import get_space
from svge_cli.storage import store
from svge_cli.storage.archtext import read_archs
from svge_cli.storage.workspace import PRETRAINED_DIR, Workspace
from svge_cli.training import vae as vae_training

ABILITIES = {
    "space",
    "test_cells",
    "reconstruction",
    "reconstruction_greedy",
    "validity",
    "validity_in_space",
    "uniqueness",
    "novelty",
    "iso",
    "iso_pairs",
    "prior_points",
    "checkpoint",
}


@pytest.fixture
def tiny_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """train-vae builds tiny models, so a CLI training run takes a second."""
    monkeypatch.setattr(vae_training, "ModelConfig", functools.partial(ModelConfig, **TINY))


def other_space_checkpoint(path: Path) -> Path:
    sp = get_space("nb201")
    model = SVGe(ModelConfig(vocab_size=sp.vocab_size, max_nodes=sp.max_nodes, **TINY))
    store.save_checkpoint(path, checkpoints.snapshot("nb201", model))
    return path


def random_latents(path: Path, count: int, scale: float = 2.0) -> Path:
    z = (np.random.default_rng(0).standard_normal((count, TINY["latent"])) * scale).astype(np.float32)
    store.save_latents(path, artifacts.Latents("enas", z, np.zeros_like(z), np.full(count, "")))
    return path


# ---------------------------------------------------------------- train-vae


def test_train_vae_writes_last_h5_and_remembers_it(svge: Runner, workdir: Path, tiny_training: None) -> None:
    result = svge("train-vae", "--space", "enas", "--limit", "24", "--epochs", "1", "--batch-size", "8")
    assert result.code == 0, result.stderr
    path = Path(result.out.removeprefix("checkpoint: ").strip())
    assert path.name == "last.h5" and path.parent.parent == workdir / "enas" / "checkpoints"
    assert Workspace(workdir).latest_checkpoint("enas") == path.resolve()
    assert "epoch 1/1" in result.stderr
    ck = store.load_checkpoint(path, "enas")
    assert ck.epoch == 1 and [h["epoch"] for h in ck.history] == [1]
    assert len(ck.arrays["train_rows"]) + len(ck.arrays["test_rows"]) == 24
    assert ck.arrays["latent_mean"].shape == (TINY["latent"],)
    assert ck.meta["dataset"] == vae_training.EMBEDDED


def _interrupt_after_first_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C right after epoch 1's checkpoint was written."""
    fit = vae_training.fit

    def interrupted(*args, on_epoch, **kwargs):
        def stop(epoch: int, history: list) -> None:
            on_epoch(epoch, history)
            raise KeyboardInterrupt

        return fit(*args, on_epoch=stop, **kwargs)

    monkeypatch.setattr(vae_training, "fit", interrupted)


def test_resume_after_interruption_reaches_the_asked_epochs(
    svge: Runner, workdir: Path, tmp_path: Path, trained: Trained, tiny_training: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ds.h5").write_bytes(trained.dataset.read_bytes())
    args = ("train-vae", "--space", "enas", "--dataset", "ds.h5", "--epochs", "3", "--batch-size", "2", "--seed", "3")
    with monkeypatch.context() as m:
        _interrupt_after_first_epoch(m)
        stopped = svge(*args)
    assert stopped.code == 130 and stopped.stderr.strip().endswith("svge: interrupted")
    last = Workspace(workdir).latest_checkpoint("enas")
    assert store.load_checkpoint(last).epoch == 1
    # the interrupted run's checkpoint is a complete, usable model
    encoded = svge("encode", str(trained.archs_jsonl), "--checkpoint", str(last), "-o", "lat.h5")
    assert encoded.code == 0 and len(store.load_latents(tmp_path / "lat.h5")) == 6
    assert svge("decode", "lat.h5", "--checkpoint", str(last)).code == 0

    monkeypatch.chdir(tmp_path.parent)  # the run finds its dataset from any folder; its seed is remembered
    resumed = svge("train-vae", "--space", "enas", "--resume", "--epochs", "3")
    assert resumed.code == 0, resumed.stderr
    ck = store.load_checkpoint(last, with_optimizer=True)
    assert ck.epoch == 3 and [h["epoch"] for h in ck.history] == [1, 2, 3]
    assert ck.optimizer and "latent_mean" in ck.arrays
    assert_one_line_error(
        svge("train-vae", "--space", "enas", "--resume", "--epochs", "3"), "already finished 3 epochs", "--epochs"
    )

    monkeypatch.chdir(tmp_path)
    assert svge(*args, "--out", "uninterrupted").code == 0
    reference = store.load_checkpoint(tmp_path / "uninterrupted" / "last.h5")
    assert [h["loss"] for h in ck.history] == pytest.approx([h["loss"] for h in reference.history])
    for name, weights in reference.state.items():
        np.testing.assert_allclose(ck.state[name], weights, rtol=1e-5, atol=1e-6)


def test_out_folder_holding_a_run_needs_resume(
    svge: Runner, workdir: Path, tmp_path: Path, trained: Trained, tiny_training: None
) -> None:
    args = ("train-vae", "--space", "enas", "--dataset", str(trained.dataset), "--epochs", "1", "--out", "run")
    assert svge(*args).code == 0
    before = (tmp_path / "run" / "last.h5").read_bytes()
    assert_one_line_error(svge(*args), "run already holds a run", "--resume")
    assert (tmp_path / "run" / "last.h5").read_bytes() == before
    more = svge("train-vae", "--space", "enas", "--out", "run", "--resume", "--epochs", "2")
    assert more.code == 0 and store.load_checkpoint(tmp_path / "run" / "last.h5").epoch == 2


def test_resume_keeps_the_runs_precision_and_epoch_lines_show_elapsed_time(
    svge: Runner, trained: Trained, tiny_training: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[str] = []
    fit = vae_training.fit
    monkeypatch.setattr(vae_training, "fit", lambda *a, **k: used.append(a[7].precision) or fit(*a, **k))
    first = svge(
        "train-vae",
        "--space",
        "enas",
        "--dataset",
        str(trained.dataset),
        "--epochs",
        "1",
        "--precision",
        "bf16",
        "--out",
        "run",
    )
    assert first.code == 0 and re.search(r"epoch 1/1 .*\[\d+m \d\ds\]", first.stderr), first.stderr
    assert svge("train-vae", "--space", "enas", "--out", "run", "--resume", "--epochs", "2").code == 0
    assert used == ["bf16", "bf16"]
    assert (
        svge("train-vae", "--space", "enas", "--out", "run", "--resume", "--epochs", "3", "--precision", "fp32").code
        == 0
    )
    assert used[-1] == "fp32"


def test_resume_without_a_run(svge: Runner, workdir: Path) -> None:
    assert_one_line_error(svge("train-vae", "--space", "enas", "--resume"), "no enas run", "to resume")


# ---------------------------------------------------------------- encode / decode


def test_encode_decode_round_trip_through_stdout_and_stdin(svge: Runner, enas_ws: Path, trained: Trained) -> None:
    cells = trained.archs_jsonl.read_text()
    latents = svge("encode", "-", "-o", "-", stdin=cells)
    assert latents.code == 0 and latents.stdout.startswith(b"\x89HDF")
    decoded = svge("decode", "-", stdin=latents.stdout)
    assert decoded.code == 0 and decoded.out == cells
    native = svge("decode", "-", "--format", "native", stdin=latents.stdout)
    assert native.lines == native_lines(trained)


def native_lines(trained: Trained) -> list[str]:
    sp = get_space("enas")
    return [sp.format_native(r.arch) for r in read_archs(trained.archs_jsonl.read_text().splitlines(), sp, "x")]


def test_encode_to_a_file_keeps_cells_hashes_and_checkpoint(
    svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path
) -> None:
    result = svge("encode", str(trained.archs_jsonl), "-o", "lat.h5")
    assert result.code == 0 and result.out == "" and "encoded 6 enas cells into lat.h5" in result.stderr
    lat = store.load_latents(tmp_path / "lat.h5", "enas")
    assert lat.mu.shape == lat.logvar.shape == (6, TINY["latent"])
    assert lat.checkpoint == store.load_checkpoint(trained.checkpoint).fingerprint()
    sp = get_space("enas")
    assert lat.hashes.tolist() == [sp.hash(Arch(lat.ops[i, :n], lat.adj[i, :n, :n])) for i, n in enumerate(lat.n_nodes)]


def test_pipe_round_trip_between_processes(enas_ws: Path, trained: Trained, tmp_path: Path) -> None:
    """Binary HDF5 leaves one process on stdout and enters the next on stdin, through a real pipe."""
    done = shell(
        f"cat {trained.archs_jsonl} | svge encode - -o - | svge decode -", tmp_path, {"SVGE_WORKDIR": str(enas_ws)}
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == trained.archs_jsonl.read_text()


def test_decode_attempts_keep_the_first_valid_sample(
    svge: Runner, enas_ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first decode of every point is spoilt: greedy shows it, a second sampled attempt repairs it."""
    real = codec.decode_once
    calls: list[bool] = []

    def first_try_fails(model, z, greedy, max_nodes, generator):
        calls.append(greedy)
        spoilt = Arch(np.array([0, 1]), np.array([[0, 1], [0, 0]]))
        return [spoilt] * len(z) if len(calls) == 1 else real(model, z, greedy, max_nodes, generator)

    random_latents(tmp_path / "z.h5", 5)
    monkeypatch.setattr(codec, "decode_once", first_try_fails)
    greedy = svge("decode", "z.h5")
    assert calls == [True] and all(json.loads(line)["valid"] is False for line in greedy.lines)
    calls.clear()
    sampled = svge("decode", "z.h5", "--attempts", "6", "--seed", "1")
    assert sampled.code == 0 and calls[:2] == [False, False]
    assert len(sampled.lines) == 5 and all("valid" not in json.loads(line) for line in sampled.lines)


def test_more_attempts_never_lose_a_valid_decode(svge: Runner, enas_ws: Path, tmp_path: Path) -> None:
    random_latents(tmp_path / "z.h5", 40, scale=3.0)
    runs = {k: svge("decode", "z.h5", "--attempts", str(k), "--seed", "5").lines for k in (2, 8)}
    assert runs[2] == svge("decode", "z.h5", "--attempts", "2", "--seed", "5").lines  # seeded
    valid = {k: [i for i, line in enumerate(lines) if "valid" not in json.loads(line)] for k, lines in runs.items()}
    assert len(runs[2]) == len(runs[8]) == 40
    assert set(valid[2]) <= set(valid[8])
    assert all(runs[2][i] == runs[8][i] for i in valid[2])


@pytest.mark.parametrize("fmt", ["jsonl", "native"])
def test_invalid_decodes_are_marked_in_place(
    svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    real = codec.decode_once

    def every_second_spoilt(model, z, greedy, max_nodes, generator):
        out = real(model, z, greedy, max_nodes, generator)
        return [Arch(np.array([0, 1]), np.array([[0, 1], [0, 0]])) if i % 2 else a for i, a in enumerate(out)]

    svge("encode", str(trained.archs_jsonl), "-o", "lat.h5")
    monkeypatch.setattr(codec, "decode_once", every_second_spoilt)
    result = svge("decode", "lat.h5", "--format", fmt, "-o", "out.txt")
    assert result.code == 0
    assert "3 of 6 decoded graphs are not valid enas cells" in result.stderr
    lines = (tmp_path / "out.txt").read_text().splitlines()
    cells = trained.archs_jsonl.read_text().splitlines() if fmt == "jsonl" else native_lines(trained)
    assert len(lines) == 6
    for i, line in enumerate(lines):
        if i % 2 == 0:
            assert line == cells[i]
        elif fmt == "jsonl":
            obj = json.loads(line)
            assert obj["valid"] is False and "layer" in obj["reason"] and obj["ops"] == ["input", "output"]
        else:
            assert line.startswith("# invalid: ") and "layer" in line


# ---------------------------------------------------------------- evaluate


def test_evaluate_json(svge: Runner, enas_ws: Path, trained: Trained) -> None:
    result = svge("evaluate", "--encodes", "2", "--decodes", "2", "--prior-points", "8", "--json")
    assert result.code == 0, result.stderr
    facts = json.loads(result.out)
    assert ABILITIES <= set(facts)
    assert facts["space"] == "enas" and facts["test_cells"] == 2 and facts["prior_points"] == 8
    assert facts["reconstruction_greedy"] == 1.0  # the tiny model knows its test cells by heart
    for key in ("reconstruction", "validity", "validity_in_space", "uniqueness", "novelty"):
        assert 0.0 <= facts[key] <= 1.0
    assert facts["validity"] == facts["validity_in_space"]  # one rule for ENAS's fixed-shape cells
    assert Path(facts["checkpoint"]).resolve() == trained.checkpoint.resolve()


def test_evaluate_table(svge: Runner, enas_ws: Path) -> None:
    result = svge("evaluate", "--space", "enas", "--encodes", "1", "--decodes", "1", "--prior-points", "4")
    assert result.code == 0 and "autoencoder abilities" in result.stderr
    assert result.out.startswith("reconstruction=") and "iso=" in result.out


# ---------------------------------------------------------------- which checkpoint


@pytest.mark.parametrize(
    "command",
    [
        ("encode", "{cells}", "-o", "lat.h5"),
        ("decode", "{latents}", "-o", "lat.h5"),
        ("evaluate", "--space", "enas"),
    ],
)
def test_a_checkpoint_of_another_space_is_refused(
    svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path, command: tuple[str, ...]
) -> None:
    random_latents(tmp_path / "z.h5", 3)
    foreign = other_space_checkpoint(tmp_path / "nb201.h5")
    args = [a.format(cells=trained.archs_jsonl, latents="z.h5") for a in command]
    assert_one_line_error(svge(*args, "--checkpoint", str(foreign)), "nb201", "enas")
    assert not (tmp_path / "lat.h5").exists()


def test_no_checkpoint_anywhere(
    svge: Runner, workdir: Path, trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("svge_cli.storage.workspace.PRETRAINED_DIR", tmp_path / "none-shipped")
    assert_one_line_error(
        svge("encode", str(trained.archs_jsonl), "-o", "lat.h5"), "no enas checkpoint", "svge train-vae --space enas"
    )
    assert_one_line_error(svge("evaluate"), "no space given", "--space")


def test_falls_back_to_the_shipped_checkpoint_and_says_so(
    svge: Runner, workdir: Path, trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = tmp_path / "pretrained"
    shipped.mkdir()
    (shipped / "enas.h5").write_bytes(trained.checkpoint.read_bytes())
    monkeypatch.setattr("svge_cli.storage.workspace.PRETRAINED_DIR", shipped)
    result = svge("encode", str(trained.archs_jsonl), "-o", "lat.h5")
    assert result.code == 0
    assert "no enas checkpoint in" in result.stderr and "pretrained one shipped with svge" in result.stderr
    assert len(store.load_latents(tmp_path / "lat.h5")) == 6


@pytest.mark.skipif(not (PRETRAINED_DIR / "enas.h5").exists(), reason="no pretrained ENAS checkpoint shipped")
def test_the_real_shipped_checkpoint_is_used_in_an_empty_workspace(svge: Runner, workdir: Path) -> None:
    cells = svge("data", "sample", "enas", "-n", "3").out
    latents = svge("encode", "-", "-o", "-", stdin=cells)
    assert latents.code == 0 and "pretrained one shipped with svge (enas.h5)" in latents.stderr
    decoded = svge("decode", "-", stdin=latents.stdout)
    assert decoded.code == 0 and len(decoded.lines) == 3
