"""`svge finetune --proxies`, `svge predict` and `svge extrapolate` with proxy features, as a shell user runs them."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cells import NB101_BEST
from conftest import TINY, Runner, assert_one_line_error

from svge_cli.artifacts import Dataset
from svge_cli.model import ModelConfig, SVGe, checkpoints
from svge_cli.spaces import get_space
from svge_cli.storage import store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_proxy_features import _nb101_cells  # noqa: E402

NB201, NB101 = get_space("nb201"), get_space("nb101")
EXAMPLE_SPACE = Path(__file__).resolve().parents[2] / "examples" / "toy_space.json"


def _files(tmp_path: Path, space: str, archs: list, target: str) -> dict[str, Path]:
    sp = get_space(space)
    ds = Dataset.from_archs(space, archs, [sp.hash(a) for a in archs])
    ds.labels = {target: np.array([80.0 + a.n_edges + (a.ops == 2).sum() for a in archs], dtype=np.float64)}
    store.save_dataset(tmp_path / f"{space}.h5", ds)
    torch.manual_seed(0)
    model = SVGe(ModelConfig(vocab_size=sp.vocab_size, max_nodes=sp.max_nodes, **TINY))
    store.save_checkpoint(tmp_path / f"{space}-vae.h5", checkpoints.snapshot(space, model))
    (tmp_path / f"{space}.txt").write_text("".join(sp.format_native(a) + "\n" for a in archs))
    return {
        "dataset": tmp_path / f"{space}.h5",
        "vae": tmp_path / f"{space}-vae.h5",
        "cells": tmp_path / f"{space}.txt",
    }


def _finetune(space: str, files: dict[str, Path], target: str, *extra: str) -> list[str]:
    return [
        "finetune", "--space", space, "--labels", "24", "--batch-size", "8", "--target", target,
        "--checkpoint", str(files["vae"]), "--dataset", str(files["dataset"]), *extra,
    ]  # fmt: skip


@pytest.fixture
def nb201(tmp_path: Path) -> dict[str, Path]:
    archs = list({NB201.hash(a): a for a in NB201.sample(120, 3)}.values())[:40]
    return _files(tmp_path, "nb201", archs, "acc")


def test_a_second_finetune_and_predict_compute_no_proxy(svge: Runner, workdir: Path, nb201: dict[str, Path]) -> None:
    first = svge(*_finetune("nb201", nb201, "acc", "--proxies", "synflow,params"))
    assert first.code == 0, first.stderr
    assert "computing synflow, params for 24 nb201 cells" in first.stderr
    assert (workdir / "nb201" / "proxies.h5").is_file()
    again = svge(*_finetune("nb201", nb201, "acc", "--proxies", "synflow,params", "-o", "again.h5"))
    assert again.code == 0 and "computing" not in again.stderr, again.stderr
    predicted = svge("predict", str(nb201["cells"]))
    assert predicted.code == 0, predicted.stderr
    assert "computing synflow, params for 16 nb201 cells" in predicted.stderr  # the unseen cells only
    assert "predicted from latent means, proxies (synflow, params) and one-hot cells" in predicted.stderr
    repeat = svge("predict", str(nb201["cells"]))
    assert repeat.code == 0 and "computing" not in repeat.stderr
    assert repeat.lines == predicted.lines and len(repeat.lines) == 40


def test_proxies_none_is_todays_predictor(svge: Runner, workdir: Path, nb201: dict[str, Path]) -> None:
    done = svge(*_finetune("nb201", nb201, "acc", "--proxies", "none"))
    assert done.code == 0 and "computing" not in done.stderr, done.stderr
    ck = store.load_checkpoint(workdir / "nb201" / "checkpoints" / "finetuned-acc-24.h5", "nb201")
    assert ck.config["features"]["proxies"] == [] and ck.config["regressor"]["proxy_dim"] == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--proxies", "synflow,fisher"], ["unknown proxy 'fisher'"]),
        (["--proxies", "synflow", "--head", "mlp"], ["--head gp"]),
    ],
)
def test_bad_proxy_options_are_one_line(
    svge: Runner, nb201: dict[str, Path], args: list[str], words: list[str]
) -> None:
    assert_one_line_error(svge(*_finetune("nb201", nb201, "acc", *args)), *words)


def test_proxies_on_a_space_without_networks_are_one_line(svge: Runner) -> None:
    r = svge("finetune", "--space", str(EXAMPLE_SPACE), "--labels", "20", "--proxies", "synflow")
    assert_one_line_error(r, "no network builder", "--proxies none")


def test_a_cache_of_another_space_is_refused_and_kept(svge: Runner, workdir: Path, nb201: dict[str, Path]) -> None:
    path = workdir / "nb201" / "proxies.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        f.attrs.update({"kind": "svge-proxy-cache", "format": 1, "space": "nb101"})
    before = path.read_bytes()
    assert_one_line_error(svge(*_finetune("nb201", nb201, "acc", "--proxies", "params")), "caches nb101 proxies")
    assert path.read_bytes() == before and not (workdir / "nb201" / "checkpoints").exists()


def test_extrapolate_scores_larger_cells_with_the_default_kind_of_predictor(
    svge: Runner, workdir: Path, tmp_path: Path
) -> None:
    files = _files(tmp_path, "nb101", _nb101_cells(40), "val_acc_108")
    done = svge(*_finetune("nb101", files, "val_acc_108", "--proxies", "params,flops"))
    assert done.code == 0, done.stderr
    grown = svge("extrapolate", "--space", "nb101", "--nodes", "8", "--family", "paper", "--from", NB101_BEST)
    assert grown.code == 0, grown.stderr
    assert "scored from latent means and proxies (params, flops)" in grown.stderr
    assert len([line for line in grown.lines if not line.startswith("#")]) >= 1
