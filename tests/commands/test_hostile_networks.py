"""Hostile input to the network commands (`svge score`, `svge train-cell`): issue 20's cases.

A CIFAR-10 batch is a pickle, and a pickle can ask for any callable to run while
it loads. Each crafted batch here would create a marker file if its payload ran;
the tests check the command refuses the file by name and that the marker is absent.
"""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import Runner, assert_one_line_error

from svge_cli.networks.cifar import load_cifar, write_batch

NB201_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


class _Payload:
    """Pickles as a call of `fn(*args)`: what an attacker's batch would carry."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker: Path) -> dict[str, object]:
    touch = f"open({str(marker)!r}, 'w').write('ran')"
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.eval": _Payload(eval, touch),
        "subprocess.Popen": _Payload(subprocess.Popen, ["touch", str(marker)]),
    }


def _tiny_batches(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("data_batch_1", 8), ("test_batch", 4)):
        write_batch(folder / name, rng.integers(0, 255, (n, 3, 32, 32)).astype(np.uint8), rng.integers(0, 2, n))
    return folder


def _poison(folder: Path, name: str, payload: object, protocol: int) -> None:
    """Replace one batch with a dict that carries `payload` beside real-looking data."""
    data = np.zeros((4, 3072), np.uint8)
    with open(folder / name, "wb") as f:
        pickle.dump({b"data": data, b"labels": [0, 1, 0, 1], b"batch_label": payload}, f, protocol=protocol)


COMMANDS = {
    "score": lambda data: ("score", "-", "--proxy", "naswot", "--data", str(data), "--batch-size", "4"),
    "train-cell": lambda data: ("train-cell", NB201_CELL, "--data", str(data), "--epochs", "1", "--batch-size", "4"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.Popen"])
@pytest.mark.parametrize("protocol", [2, 5])
def test_a_crafted_batch_runs_nothing_and_is_refused_by_name(
    svge: Runner, tmp_path: Path, command: str, kind: str, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    data = _tiny_batches(tmp_path / "cifar")
    _poison(data, "data_batch_1", _payloads(marker)[kind], protocol)
    r = svge(*COMMANDS[command](data), stdin=NB201_CELL + "\n")
    assert_one_line_error(r, "data_batch_1", "refused", kind.rsplit(".", 1)[1])
    assert not marker.exists()


def test_a_payload_in_the_test_batch_is_refused_too(svge: Runner, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = _tiny_batches(tmp_path / "cifar")
    _poison(data, "test_batch", _payloads(marker)["os.system"], 2)
    assert_one_line_error(svge(*COMMANDS["train-cell"](data)), "test_batch", "system")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_real_batches_of_every_protocol_still_load(tmp_path: Path, protocol: int) -> None:
    """Arrays (C and Fortran order), numpy scalars, bytes and str: all a batch may hold."""
    folder = tmp_path / "cifar"
    folder.mkdir()
    data = np.asfortranarray(np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072) % 256).astype(np.uint8, order="F")
    batch = {b"data": data, b"labels": [np.int64(1), 0], b"batch_label": "training batch 1 of 5", b"filenames": [b"a"]}
    for name in ("data_batch_1", "test_batch"):
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
    cifar = load_cifar(folder)
    assert cifar.train_x.shape == (2, 3, 32, 32) and cifar.train_y.tolist() == [1, 0]
    assert np.array_equal(cifar.test_x.reshape(2, -1), data)


def test_a_python2_style_batch_loads(tmp_path: Path) -> None:
    """The official files were written by Python 2's cPickle: byte strings are STRING opcodes, numpy.core paths."""
    folder = _tiny_batches(tmp_path / "cifar")
    legacy = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [3]}, protocol=2)
    legacy = legacy.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (folder / "data_batch_1").write_bytes(legacy)
    assert load_cifar(folder).train_y.tolist() == [3]


def test_a_bytes_codec_other_than_latin1_is_refused(svge: Runner, tmp_path: Path) -> None:
    folder = _tiny_batches(tmp_path / "cifar")
    _poison(folder, "data_batch_1", _Payload(__import__("_codecs").encode, "eJw=", "base64"), 2)
    assert_one_line_error(svge(*COMMANDS["train-cell"](folder)), "data_batch_1", "_codecs.encode")


def test_labels_that_are_not_a_flat_list_are_one_line(svge: Runner, tmp_path: Path) -> None:
    folder = _tiny_batches(tmp_path / "cifar")
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [[0], [1, 2]]}, f)
    assert_one_line_error(svge(*COMMANDS["train-cell"](folder)), "data_batch_1", "b'labels'")


def test_train_cell_refuses_a_checkpoint_over_a_batch_or_its_cell(svge: Runner, tmp_path: Path) -> None:
    data = _tiny_batches(tmp_path / "cifar")
    before = (data / "data_batch_1").read_bytes()
    r = svge("train-cell", NB201_CELL, "--data", str(data), "--checkpoint", str(data / "data_batch_1"))
    assert_one_line_error(r, "--checkpoint is the same file as the input (--data")
    assert (data / "data_batch_1").read_bytes() == before
    cell = tmp_path / "cell.txt"
    cell.write_text(NB201_CELL + "\n")
    r = svge("train-cell", str(cell), "--data", str(data), "--checkpoint", str(cell))
    assert_one_line_error(r, "(ARCH:")
    assert cell.read_text() == NB201_CELL + "\n"


@pytest.mark.parametrize("command", ["score", "net"])
def test_score_and_net_refuse_to_write_over_their_cells(svge: Runner, tmp_path: Path, command: str) -> None:
    cells = tmp_path / "cells.txt"
    cells.write_text(NB201_CELL + "\n")
    os.link(cells, tmp_path / "hard.txt")
    extra = ["--proxy", "params"] if command == "score" else []
    assert_one_line_error(svge(command, str(cells), *extra, "-o", str(tmp_path / "hard.txt")), "ARCHS")
    assert cells.read_text() == NB201_CELL + "\n"


def test_a_proxy_batch_beyond_memory_is_refused(svge: Runner) -> None:
    r = svge("score", "-", "--proxy", "jacob_cov", "--batch-size", "100000000", stdin=NB201_CELL + "\n")
    assert_one_line_error(r, "a proxy batch of 100,000,000 images needs about", "--batch-size")


def test_train_cell_with_no_validation_share_reports_no_validation_score(svge: Runner, tmp_path: Path) -> None:
    data = _tiny_batches(tmp_path / "cifar")
    args = ("train-cell", NB201_CELL, "--data", str(data), "--epochs", "1", "--batch-size", "4", "--valid-share", "0")
    text = svge(*args)
    assert text.code == 0, text.stderr
    assert text.lines[0] == "validation accuracy: none (--valid-share 0 holds no images out)"
    assert text.lines[1].startswith("test accuracy: ") and "nan" not in text.out + text.stderr
    as_json = svge(*args, "--json")
    assert as_json.code == 0 and '"valid_acc": null' in as_json.out


def test_train_cell_as_an_evaluator_refuses_to_hold_no_validation_images(svge: Runner, tmp_path: Path) -> None:
    data = _tiny_batches(tmp_path / "cifar")
    result = svge("train-cell", "--stdin", "--data", str(data), "--valid-share", "0", stdin=NB201_CELL + "\n")
    assert_one_line_error(result, "--valid-share 0", "--stdin")
