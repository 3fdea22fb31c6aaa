"""Hostile input to the model commands (encode, decode, export, predict, the workspace): issue 20's cases.

Each case ends in one `svge: error:` line and exit 1, or does what was meant and
says so; no file that existed before a refused command changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest
from conftest import Runner, Trained, alias, assert_one_line_error, dead_pid

from svge_cli.storage import store
from svge_cli.storage.workspace import Workspace

LINKS = ["same path", "symlink", "hard link"]


def unchanged(path: Path, before: bytes) -> bool:
    return path.read_bytes() == before


@pytest.fixture
def archs(tmp_path: Path, trained: Trained) -> Path:
    path = tmp_path / "a.txt"
    path.write_bytes(trained.archs_jsonl.read_bytes())
    return path


@pytest.fixture
def latents(svge: Runner, enas_ws: Path, archs: Path, tmp_path: Path) -> Path:
    path = tmp_path / "l.h5"
    assert svge("encode", str(archs), "-o", str(path)).code == 0
    return path


@pytest.mark.parametrize("how", LINKS)
def test_encode_refuses_to_write_over_its_input(svge: Runner, enas_ws: Path, archs: Path, how: str) -> None:
    before = archs.read_bytes()
    out = alias(archs, how)
    assert_one_line_error(svge("encode", str(archs), "-o", str(out)), "same file as the input", "ARCHS")
    assert unchanged(archs, before)


@pytest.mark.parametrize("how", LINKS)
def test_decode_refuses_to_write_over_its_latents(svge: Runner, latents: Path, how: str) -> None:
    before = latents.read_bytes()
    assert_one_line_error(svge("decode", str(latents), "-o", str(alias(latents, how))), "LATENTS")
    assert unchanged(latents, before)


@pytest.mark.parametrize("how", LINKS)
def test_export_refuses_to_write_over_its_checkpoint(svge: Runner, tmp_path: Path, trained: Trained, how: str) -> None:
    ck = tmp_path / "ck.h5"
    ck.write_bytes(trained.checkpoint.read_bytes())
    before = ck.read_bytes()
    assert_one_line_error(svge("export", str(ck), "-o", str(alias(ck, how)), "--fp16"), "CHECKPOINT")
    assert unchanged(ck, before)


@pytest.mark.parametrize("how", LINKS)
def test_predict_refuses_to_write_over_its_cells(svge: Runner, enas_ws: Path, archs: Path, how: str) -> None:
    before = archs.read_bytes()
    assert_one_line_error(svge("predict", str(archs), "-o", str(alias(archs, how))), "ARCHS")
    assert unchanged(archs, before)


def test_encode_refuses_to_write_over_the_checkpoint_it_uses(
    svge: Runner, enas_ws: Path, archs: Path, trained: Trained
) -> None:
    before = trained.checkpoint.read_bytes()
    assert_one_line_error(svge("encode", str(archs), "-o", str(trained.checkpoint)), "checkpoint")
    assert unchanged(trained.checkpoint, before)


def test_encode_refuses_one_file_for_latents_and_plot(svge: Runner, enas_ws: Path, archs: Path, tmp_path: Path) -> None:
    out = tmp_path / "both.png"
    assert_one_line_error(svge("encode", str(archs), "-o", str(out), "--plot", str(out)), "-o and --plot")
    assert not out.exists()


def test_export_to_stdout_writes_a_readable_checkpoint(svge: Runner, tmp_path: Path, trained: Trained) -> None:
    r = svge("export", str(trained.checkpoint), "-o", "-", "--fp16")
    assert r.code == 0 and r.stderr == ""
    (tmp_path / "x.h5").write_bytes(r.stdout)
    assert store.load_checkpoint(tmp_path / "x.h5").meta["fp16"] is True
    assert_one_line_error(svge("export", str(trained.checkpoint), "-o", "-", tty=("stdout",)), "terminal")


def test_decode_with_a_node_limit_beyond_memory_is_refused(svge: Runner, latents: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.txt"
    r = svge("decode", str(latents), "--max-nodes", "1000000", "-o", str(out))
    assert_one_line_error(r, "of up to 1,000,000 nodes needs about", "decode fewer or smaller")
    assert not out.exists()


def test_a_marker_of_random_bytes_is_ignored_with_a_note(
    svge: Runner, enas_ws: Path, archs: Path, tmp_path: Path
) -> None:
    marker = enas_ws / "enas" / "latest"
    marker.write_bytes(bytes(range(128, 256)) * 4)
    result = svge("encode", str(archs), "-o", str(tmp_path / "l.h5"))
    assert result.code == 0, result.stderr
    assert f"{marker}: unreadable workspace marker (not text); ignoring it" in result.stderr
    assert "using the pretrained one shipped with svge" in result.stderr


def test_a_marker_naming_a_deleted_checkpoint_says_which_and_what_is_used(
    svge: Runner, workdir: Path, archs: Path, tmp_path: Path, trained: Trained
) -> None:
    gone = tmp_path / "gone.h5"
    gone.write_bytes(trained.checkpoint.read_bytes())
    Workspace(workdir).remember_checkpoint("enas", gone)
    gone.unlink()
    result = svge("encode", str(archs), "-o", str(tmp_path / "l.h5"))
    assert result.code == 0, result.stderr
    assert f"remembers the checkpoint {gone}, which no longer exists" in result.stderr
    assert "using the pretrained one shipped with svge (enas.h5)" in result.stderr


def test_markers_are_written_through_unique_temporaries_and_stale_ones_are_swept(
    tmp_path: Path, trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace(tmp_path)
    (tmp_path / "enas").mkdir()
    stale = tmp_path / "enas" / f".latest.{dead_pid()}-killed.tmp"
    stale.write_text("/half/written")
    names: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (names.append(Path(src).name), real_replace(src, dst)))
    ws.remember_checkpoint("enas", trained.checkpoint)
    ws.remember_checkpoint("enas", trained.checkpoint)
    assert not stale.exists()
    assert len(set(names)) == len(names) == 4 and all(f".{os.getpid()}-" in n for n in names)
    assert sorted(p.name for p in (tmp_path / "enas").iterdir()) == ["latest"]
    assert ws.latest_checkpoint("enas") == trained.checkpoint.resolve()


@pytest.mark.parametrize("name", ["mu", "logvar"])
def test_decode_of_latents_holding_strings_names_the_file_and_dataset(
    svge: Runner, latents: Path, tmp_path: Path, name: str
) -> None:
    with h5py.File(latents, "a") as f:
        shape = f[name].shape
        del f[name]
        f.create_dataset(name, data=[["0.5"] * shape[1]] * shape[0], dtype=h5py.string_dtype())
    result = svge("decode", str(latents), "-o", str(tmp_path / "cells.txt"))
    assert_one_line_error(result, str(latents), f"/{name} holds strings, not numbers")
    assert not (tmp_path / "cells.txt").exists()


@pytest.mark.parametrize(
    "line",
    [
        '{"space": "enas", "ops": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"a": ' * 100_000 + "1" + "}" * 100_000,
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["deep ops", "deep object", "deep native row"],
)
def test_encode_of_a_line_nested_100000_deep_names_the_line(
    svge: Runner, enas_ws: Path, tmp_path: Path, line: str
) -> None:
    cells = tmp_path / "deep.txt"
    cells.write_text(line + "\n")
    assert_one_line_error(
        svge("encode", str(cells), "--space", "enas", "-o", str(tmp_path / "l.h5")), f"{cells}, line 1"
    )


def test_train_vae_with_a_limit_above_the_dataset_says_what_it_trains_on(
    svge: Runner, workdir: Path, trained: Trained
) -> None:
    args = ("train-vae", "--space", "enas", "--dataset", str(trained.dataset), "--epochs", "1", "--limit", "100")
    result = svge(*args)
    assert result.code == 0, result.stderr
    line = next(s for s in result.stderr.splitlines() if s.startswith("training enas on "))
    assert line.startswith("training enas on 4 cells (2 held out; --limit 100 is more than the dataset's 6 cells: ")


def test_a_space_marker_of_random_bytes_is_named_before_asking_for_a_space(svge: Runner, workdir: Path) -> None:
    marker = workdir / "latest_space"
    workdir.mkdir(exist_ok=True)
    marker.write_bytes(bytes(range(128, 256)))
    result = svge("evaluate")
    assert result.code == 1
    assert result.stderr.splitlines() == [
        f"{marker}: unreadable workspace marker (not text); ignoring it",
        "svge: error: no space given and no checkpoint in the workspace: pass --space",
    ]
