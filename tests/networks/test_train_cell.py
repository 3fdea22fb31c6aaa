"""`svge train-cell` on a generated two-class data set in CIFAR-10's python-pickle format."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Runner, assert_one_line_error

from svge_cli.networks.cifar import load_cifar, write_batch
from svge_cli.networks.training import TrainConfig, split_rows, train_cell
from svge_cli.spaces import get_space

CELL = "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
OTHER = "|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"


def images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 is reddish, class 1 bluish: learnable in a step or two."""
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 60, (n, 3, 32, 32)).astype(np.uint8)
    x[y == 0, 0] += 180
    x[y == 1, 2] += 180
    return x, y


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar"
    folder.mkdir()
    write_batch(folder / "data_batch_1", *images(12, rng))
    write_batch(folder / "data_batch_2", *images(12, rng))
    write_batch(folder / "test_batch", *images(10, rng))
    return folder


def test_train_cell_prints_validation_and_test_accuracy(svge: Runner, data: Path) -> None:
    r = svge("train-cell", CELL, "--data", str(data), "--epochs", "2", "--batch-size", "8", "--json")
    assert r.code == 0, r.stderr
    out = json.loads(r.out)
    assert 0 <= out["valid_acc"] <= 100 and 0 <= out["test_acc"] <= 100
    assert len(out["history"]) == 2 and Path(out["checkpoint"]).is_file()
    r = svge("train-cell", CELL, "--data", str(data), "--epochs", "1", "--batch-size", "8")
    assert r.code == 0 and r.lines[0].startswith("validation accuracy: ") and r.lines[1].startswith("test accuracy: ")


def test_stdin_mode_answers_one_score_per_cell(svge: Runner, data: Path) -> None:
    cells = [
        json.dumps(
            {
                "space": "nb201",
                "ops": get_space("nb201").ops_names(get_space("nb201").parse_native(t)),
                "adj": get_space("nb201").parse_native(t).adj.tolist(),
                "native": t,
            }
        )
        for t in (CELL, OTHER)
    ]
    r = svge(
        "train-cell",
        "--stdin",
        "--data",
        str(data),
        "--epochs",
        "1",
        "--batch-size",
        "12",
        stdin="\n".join(cells) + "\n",
    )
    assert r.code == 0, r.stderr
    assert len(r.lines) == 2 and all(0 <= float(v) <= 100 for v in r.lines)


def test_resume_continues_exactly(tmp_path: Path, data: Path) -> None:
    space = get_space("nb201")
    arch = space.parse_native(CELL)
    cifar = load_cifar(data)
    cfg = TrainConfig(epochs=2, batch_size=8, seed=1)
    full = train_cell(space, arch, cifar, cfg, torch.device("cpu"), checkpoint=tmp_path / "a.pt")

    def stop(stats: dict) -> None:
        if stats["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cell(space, arch, cifar, cfg, torch.device("cpu"), checkpoint=tmp_path / "b.pt", on_epoch=stop)
    resumed = train_cell(space, arch, cifar, cfg, torch.device("cpu"), checkpoint=tmp_path / "b.pt", resume=True)
    assert resumed.history == full.history
    a, b = torch.load(tmp_path / "a.pt"), torch.load(tmp_path / "b.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_validation_rows_are_held_out_and_seeded() -> None:
    train, valid = split_rows(50, 0.2, seed=4)
    assert len(valid) == 10 and not set(train) & set(valid) and len(train) + len(valid) == 50
    assert np.array_equal(split_rows(50, 0.2, seed=4)[1], valid)


def test_missing_or_malformed_data_is_one_line(svge: Runner, tmp_path: Path, data: Path) -> None:
    assert_one_line_error(svge("train-cell", CELL, "--data", str(tmp_path / "nowhere")), "no such folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(svge("train-cell", CELL, "--data", str(empty)), "no CIFAR-10 python batches")
    (data / "data_batch_2").write_bytes(b"not a pickle")
    assert_one_line_error(svge("train-cell", CELL, "--data", str(data)), "data_batch_2", "not a CIFAR-10")
    with open(data / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, f)
    assert_one_line_error(svge("train-cell", CELL, "--data", str(data)), "uint8 of shape")
    assert_one_line_error(svge("train-cell", "--data", str(data)), "ARCH")
