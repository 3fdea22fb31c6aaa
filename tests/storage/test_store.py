"""The HDF5 store: round trips, refusal of wrong files, atomic writes, stdin/stdout."""

from __future__ import annotations

import io
import sys

import h5py
import numpy as np
import pytest

from svge_cli.arch import from_lists
from svge_cli.artifacts import Checkpoint, Dataset, Latents
from svge_cli.errors import StoreError
from svge_cli.storage import store


def chain(n: int, op: int = 2):
    adj = np.zeros((n, n), dtype=np.uint8)
    for i in range(n - 1):
        adj[i, i + 1] = 1
    return from_lists([0] + [op] * (n - 2) + [1], adj)


@pytest.fixture
def dataset() -> Dataset:
    archs = [chain(3), chain(4, 3), chain(5)]
    return Dataset.from_archs(
        "nb101",
        archs,
        ["a", "b", "c"],
        max_nodes=7,
        labels={"acc": np.array([0.5, np.nan, 0.9])},
        split=np.array([0, 0, 1], dtype=np.int8),
        source="test",
    )


def test_dataset_round_trip(tmp_path, dataset):
    path = tmp_path / "d.h5"
    store.save_dataset(path, dataset)
    back = store.load_dataset(path, "nb101")
    assert len(back) == 3
    assert [back.arch(i) for i in range(3)] == [dataset.arch(i) for i in range(3)]
    assert list(back.hashes) == ["a", "b", "c"]
    assert np.isnan(back.labels["acc"][1]) and back.labels["acc"][2] == pytest.approx(0.9)
    assert back.split.tolist() == [0, 0, 1]
    assert back.source == "test"


def test_dataset_of_another_space_is_refused(tmp_path, dataset):
    path = tmp_path / "d.h5"
    store.save_dataset(path, dataset)
    with pytest.raises(StoreError, match="holds a nb101 dataset, but space enas"):
        store.load_dataset(path, "enas")


def test_file_of_another_kind_is_refused(tmp_path, dataset):
    path = tmp_path / "d.h5"
    store.save_dataset(path, dataset)
    with pytest.raises(StoreError, match="expected an svge latents file"):
        store.load_latents(path)


def test_other_format_version_is_refused(tmp_path, dataset):
    path = tmp_path / "d.h5"
    store.save_dataset(path, dataset)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="format version 99"):
        store.load_dataset(path)


def test_truncated_and_garbage_files_give_one_clear_error(tmp_path, dataset):
    path = tmp_path / "d.h5"
    store.save_dataset(path, dataset)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(StoreError, match="d.h5"):
        store.load_dataset(path)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(StoreError, match="not a readable HDF5 file"):
        store.load_dataset(junk)
    with pytest.raises(StoreError, match="no such file"):
        store.load_dataset(tmp_path / "missing.h5")


def test_failed_write_keeps_the_old_file(tmp_path, dataset):
    path = tmp_path / "d.h5"
    store.save_dataset(path, dataset)
    before = path.read_bytes()
    broken = Dataset(
        "nb101", dataset.ops, dataset.adj, dataset.n_nodes, dataset.hashes, labels={"acc": object()}
    )  # not storable
    with pytest.raises(Exception):  # noqa: B017 - h5py raises several kinds for unstorable data
        store.save_dataset(path, broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def test_latents_travel_through_stdout_and_stdin(monkeypatch):
    lat = Latents(
        "enas",
        np.arange(12, dtype=np.float32).reshape(2, 6),
        np.zeros((2, 6), np.float32),
        np.array(["x", "y"]),
        checkpoint="abc",
    )
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out))
    store.save_latents("-", lat)
    data = out.getvalue()
    assert data.startswith(b"\x89HDF")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    back = store.load_latents("-", "enas")
    assert np.array_equal(back.mu, lat.mu) and list(back.hashes) == ["x", "y"] and back.checkpoint == "abc"


def test_empty_or_garbage_stdin_is_refused(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    with pytest.raises(StoreError, match="stdin is empty"):
        store.load_latents("-")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x01\x02 not hdf5")))
    with pytest.raises(StoreError, match="stdin: not a readable HDF5 file"):
        store.load_latents("-")


def test_latents_with_nan_are_refused(tmp_path):
    lat = Latents("enas", np.full((1, 3), np.nan, np.float32), np.zeros((1, 3), np.float32), np.array([""]))
    store.save_latents(tmp_path / "l.h5", lat)
    with pytest.raises(StoreError, match="NaN"):
        store.load_latents(tmp_path / "l.h5")


def test_checkpoint_round_trip_and_fingerprint(tmp_path):
    ck = Checkpoint(
        "nb201",
        {"latent": 56},
        {"w": np.ones((2, 2), np.float32)},
        epoch=3,
        history=[{"epoch": 1, "loss": 2.0}],
        optimizer=b"\x00\x01opt",
        arrays={"split": np.array([0, 1], np.int8)},
        meta={"dataset": "x"},
    )
    store.save_checkpoint(tmp_path / "c.h5", ck)
    back = store.load_checkpoint(tmp_path / "c.h5", "nb201", with_optimizer=True)
    assert back.epoch == 3 and back.history == ck.history and back.optimizer == ck.optimizer
    assert back.meta == {"dataset": "x"} and back.arrays["split"].tolist() == [0, 1]
    assert back.fingerprint() == ck.fingerprint()
    ck.state["w"][0, 0] = 2
    assert back.fingerprint() != ck.fingerprint()
