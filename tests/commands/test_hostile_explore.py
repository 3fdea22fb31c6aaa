"""Hostile input to the exploration commands (decode-circle, extrapolate, show): issue 20's cases."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import Runner, Trained, assert_one_line_error

NB201_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_show_refuses_to_draw_over_its_cell_file(svge: Runner, tmp_path: Path) -> None:
    cell = tmp_path / "cell.svg"
    cell.write_text(NB201_CELL + "\n")
    os.symlink(cell, tmp_path / "link.svg")
    assert_one_line_error(svge("show", str(cell), "-o", str(tmp_path / "link.svg")), "ARCH")
    assert cell.read_text() == NB201_CELL + "\n"


def test_decode_circle_refuses_latents_over_its_checkpoint_or_one_file_twice(
    svge: Runner, enas_ws: Path, trained: Trained, tmp_path: Path
) -> None:
    before = trained.checkpoint.read_bytes()
    r = svge("decode-circle", "--space", "enas", "--steps", "4", "--latents-out", str(trained.checkpoint))
    assert_one_line_error(r, "--latents-out is the same file as the input (checkpoint")
    assert trained.checkpoint.read_bytes() == before
    out = tmp_path / "c.svg"
    r = svge("decode-circle", "--space", "enas", "--steps", "4", "-o", str(out), "--latents-out", str(out))
    assert_one_line_error(r, "-o and --latents-out name the same file")
    assert not out.exists()


def test_extrapolate_refuses_to_write_over_its_seed_file(svge: Runner, enas_ws: Path, trained: Trained) -> None:
    seed = trained.archs_jsonl.with_name("seed.jsonl")
    seed.write_text(trained.archs_jsonl.read_text().splitlines()[0] + "\n")
    before = seed.read_bytes()
    r = svge("extrapolate", "--space", "enas", "--from", str(seed), "--proxy", "params", "-o", str(seed))
    assert_one_line_error(r, "(--from:")
    assert seed.read_bytes() == before


def test_a_circle_beyond_memory_is_refused(svge: Runner, enas_ws: Path) -> None:
    r = svge("decode-circle", "--space", "enas", "--steps", "100000000000")
    assert_one_line_error(r, "a circle of 100,000,000,000 steps needs about", "take fewer steps")
