"""`svge finetune --head mlp --nproc N`: the joint training on several gloo processes gives one process's weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import Runner, assert_one_line_error
from test_finetune import finetune_args, nb201_files  # noqa: F401 - nb201_files is a fixture

from svge_cli.storage import store

MLP = {"labels": "30", "head": "mlp", "epochs": "2", "batch_size": "8"}  # 27 fitted cells: a short last batch


def test_two_processes_finetune_as_one(
    svge: Runner,
    workdir: Path,
    nb201_files: dict[str, Path],  # noqa: F811
    capfd: pytest.CaptureFixture[str],
) -> None:
    one = svge(*finetune_args(nb201_files, **MLP, output="one.h5"))
    assert one.code == 0, one.stderr
    two = svge(*finetune_args(nb201_files, **MLP, output="two.h5"), "--nproc", "2")
    assert two.code == 0, two.stderr
    assert two.lines == ["checkpoint: two.h5"]
    assert "up to 2 epochs in 2 processes" in capfd.readouterr().err  # rank 0 speaks, from its own process
    a, b = store.load_checkpoint("one.h5"), store.load_checkpoint("two.h5")
    assert a.state.keys() == b.state.keys() and any(k.startswith("regressor") for k in a.state)
    for k in a.state:  # Adam's first steps amplify float rounding of tiny gradients a little
        gap = float(np.abs(a.state[k] - b.state[k]).max())
        assert np.allclose(a.state[k], b.state[k], rtol=1e-3, atol=1e-4), (k, gap)
    for ha, hb in zip(a.history, b.history, strict=True):
        assert hb["loss"] == pytest.approx(ha["loss"], rel=1e-5)
        assert hb["val_mse"] == pytest.approx(ha["val_mse"], rel=1e-4)
    assert b.meta["best_epoch"] == a.meta["best_epoch"]
    assert np.array_equal(a.arrays["labelled_rows"], b.arrays["labelled_rows"])
    assert (workdir / "nb201" / "latest").read_text().strip() == str(Path("two.h5").resolve())


@pytest.mark.parametrize(
    "options, words",
    [
        ({"head": "gp"}, ("--head gp", "one process")),
        ({"ranking_weight": "0.5"}, ("--ranking-weight", "one process")),
        ({"batch_size": "7"}, ("--batch-size 7", "multiple of 2")),
        ({"device": "cuda"}, ("--nproc 2 with --device cuda", "GPUs")),
    ],
)
def test_bad_world_sizes_fail_before_anything_starts(
    svge: Runner,
    workdir: Path,
    nb201_files: dict[str, Path],  # noqa: F811
    options: dict[str, str],
    words: tuple[str, ...],
) -> None:
    before = set(psutil.Process().children(recursive=True))
    assert_one_line_error(svge(*finetune_args(nb201_files, **(MLP | options), output="out.h5"), "--nproc", "2"), *words)
    assert not Path("out.h5").exists() and not (workdir / "nb201").exists()
    assert set(psutil.Process().children(recursive=True)) <= before


def test_more_processes_than_fitted_cells_is_refused(
    svge: Runner,
    workdir: Path,
    nb201_files: dict[str, Path],  # noqa: F811
) -> None:
    result = svge(*finetune_args(nb201_files, **(MLP | {"batch_size": "28"}), output="out.h5"), "--nproc", "28")
    assert_one_line_error(result, "28 processes for 27 training cells")
    assert not Path("out.h5").exists()
    zero = svge(*finetune_args(nb201_files, **MLP), "--nproc", "0")
    assert zero.code == 2 and "--nproc" in zero.stderr
