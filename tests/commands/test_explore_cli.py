"""`svge decode-circle`, `svge extrapolate` and `svge show` as a shell user runs them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from cells import NB101_BEST, NB101_TINY
from conftest import TINY, Runner, assert_one_line_error

from svge_cli.artifacts import Checkpoint
from svge_cli.model import ModelConfig, SVGe, checkpoints
from svge_cli.model.predictor import Predictor, predictor_state
from svge_cli.model.regressor import Regressor
from svge_cli.model.scaling import LabelScale
from svge_cli.spaces import get_space
from svge_cli.storage import store
from svge_cli.storage.archtext import format_arch

NB101 = get_space("nb101")
BEST, SMALL = NB101_BEST, NB101_TINY
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Models:
    """Tiny untrained NB101 checkpoints: a plain VAE and one with a regressor (fine-tuned)."""

    vae: Path
    finetuned: Path
    enas_finetuned: Path


def _finetuned(space: str, model: SVGe, target: str) -> Checkpoint:
    predictor = Predictor(model, Regressor(model.cfg.latent), LabelScale(0.9, 0.02), target)
    base = checkpoints.snapshot(space, model)
    return Checkpoint(
        space,
        base.config | {"regressor": predictor.head.config()},
        predictor_state(predictor),
        meta={"target": target, "label_mean": 0.9, "label_std": 0.02},
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    folder = tmp_path_factory.mktemp("explore-models")
    torch.manual_seed(0)
    nb101 = SVGe(ModelConfig(vocab_size=NB101.vocab_size, max_nodes=NB101.max_nodes, **TINY))
    store.save_checkpoint(folder / "vae.h5", checkpoints.snapshot("nb101", nb101))
    store.save_checkpoint(folder / "finetuned.h5", _finetuned("nb101", nb101, "val_acc_108"))
    enas = get_space("enas")
    enas_model = SVGe(ModelConfig(vocab_size=enas.vocab_size, max_nodes=enas.max_nodes, **TINY))
    store.save_checkpoint(folder / "enas.h5", _finetuned("enas", enas_model, "ws_acc"))
    return Models(folder / "vae.h5", folder / "finetuned.h5", folder / "enas.h5")


# ---------------------------------------------------------------- show


def test_show_prints_the_nodes_in_order(svge: Runner, workdir: Path) -> None:
    r = svge("show", BEST)
    assert r.code == 0, r.stderr
    assert "nb101 cell: 7 nodes, 9 edges" in r.out
    assert any(line.split() == ["│", "4", "│", "conv3x3-bn-relu", "│", "0,", "3", "│"] for line in r.lines)


def test_show_draws_png_and_svg_and_reads_files_and_json_lines(svge: Runner, workdir: Path) -> None:
    cell = workdir.parent / "cell.jsonl"
    cell.write_text("# one cell\n" + format_arch(NB101.parse_native(BEST), NB101) + "\n")
    r = svge("show", str(cell), "-o", "cell.png")
    assert r.code == 0, r.stderr
    assert Path("cell.png").read_bytes().startswith(PNG_MAGIC)
    r = svge("show", "[[0], [5, 1]]", "-o", "enas.svg")
    assert r.code == 0 and "<svg" in Path("enas.svg").read_text()


def test_show_draws_cells_larger_than_the_space(svge: Runner, workdir: Path) -> None:
    eight = "ops=conv3x3,conv3x3,conv3x3,conv3x3,conv1x1,maxpool;adj=" + "/".join(
        "".join("1" if j == i + 1 or (i == 0 and j == 7) else "0" for j in range(8)) for i in range(8)
    )
    r = svge("show", eight)
    assert r.code == 0 and "beyond the space's 7 nodes" in r.out


@pytest.mark.parametrize(
    "args, words",
    [
        (["not a cell"], ["not a JSON line or a native string", "ARCH takes"]),
        (["ops=conv3x3;adj=010/101/000", "--space", "nb101"], ["strictly upper triangular"]),
        (["ops=conv3x3;adj=010/101/000"], ["not a JSON line or a native string of any space"]),
        (["ops=conv3x3;adj=010/001/000", "--space", "enas"], ["not an ENAS row"]),
        (
            ['{"space": "nb201", "ops": ["input", "output"], "adj": [[0, 1], [0, 0]]}', "--space", "nb101"],
            ["holds a nb201 cell, but space nb101"],
        ),
        ([BEST, "-o", "cell.pdf"], [".png or .svg"]),
    ],
)
def test_show_refuses_bad_input_in_one_line(svge: Runner, workdir: Path, args: list[str], words: list[str]) -> None:
    assert_one_line_error(svge("show", *args), *words)
    assert not Path("cell.pdf").exists()


def test_show_wants_exactly_one_cell(svge: Runner, workdir: Path) -> None:
    two = workdir.parent / "two.txt"
    two.write_text(f"{BEST}\n{SMALL}\n")
    assert_one_line_error(svge("show", str(two)), "expected one architecture, found 2")


# ---------------------------------------------------------------- decode-circle


def test_decode_circle_walks_around_and_back(svge: Runner, workdir: Path, models: Models) -> None:
    r = svge(
        "decode-circle",
        "--space",
        "nb101",
        "--checkpoint",
        str(models.vae),
        "--steps",
        "6",
        "--seed",
        "3",
        "--json",
        "-o",
        "circle.png",
        "--latents-out",
        "circle.h5",
    )
    assert r.code == 0, r.stderr
    facts = json.loads(r.out)
    points = facts["points"]
    assert facts["steps"] == 6 and [p["step"] for p in points] == list(range(7))
    assert points[0]["arch"] == points[-1]["arch"] and points[0]["edits"] is None
    assert (
        facts["start"] == "ops=conv3x3,conv3x3,conv3x3,conv3x3,conv3x3;"
        "adj=0100000/0010000/0001000/0000100/0000010/0000001/0000000"
    )
    assert Path("circle.png").read_bytes().startswith(PNG_MAGIC)
    lat = store.load_latents("circle.h5", "nb101")
    assert lat.mu.shape == (7, TINY["latent"]) and np.array_equal(lat.mu[0], lat.mu[-1])
    dist = np.linalg.norm(np.diff(lat.mu, axis=0), axis=1)
    assert np.allclose(dist, dist[0], rtol=1e-4)


def test_decode_circle_is_repeatable_and_prints_a_table(svge: Runner, workdir: Path, models: Models) -> None:
    args = ("decode-circle", "--checkpoint", str(models.vae), "--start", SMALL, "--steps", "4")
    first, second = svge(*args), svge(*args)
    assert first.code == 0 and first.out == second.out
    assert "circle of 4 steps" in first.out and "start" in first.out and "4 (= 0)" in first.out


def test_decode_circle_refuses_bad_input(svge: Runner, workdir: Path, models: Models) -> None:
    ck = str(models.vae)
    assert_one_line_error(svge("decode-circle", "--checkpoint", ck, "--start", "[[1]]"), "NB101 text needs")
    assert_one_line_error(svge("decode-circle", "--checkpoint", ck, "--space", "enas"), "holds a nb101 checkpoint")
    assert_one_line_error(svge("decode-circle", "--checkpoint", ck, "--space", "nb101", "-o", "c.jpg"), ".png or .svg")
    assert_one_line_error(svge("decode-circle"), "pass --space")


# ---------------------------------------------------------------- extrapolate


def test_extrapolate_without_a_regressor_ranks_by_a_zero_cost_proxy(
    svge: Runner, workdir: Path, models: Models
) -> None:
    base = ("extrapolate", "--space", "nb101", "--from", BEST, "--checkpoint", str(models.vae), "--top", "2")
    r = svge(*base, "--max-candidates", "3")
    assert r.code == 0, r.stderr
    assert "no regressor" in r.stderr and "zero-cost proxy synflow" in r.stderr
    assert all("predicted proxy:synflow" in c for c in r.lines[0::2])
    counted = svge(*base, "--max-candidates", "30", "--proxy", "params")
    scores = [float(c.split()[-1]) for c in counted.lines[0::2]]
    assert counted.code == 0 and scores == sorted(scores, reverse=True) and scores[0] > 1e6
    assert_one_line_error(svge(*base, "--proxy", "vibes"), "unknown proxy")


def test_extrapolate_prints_the_top_cells_and_the_family_size(svge: Runner, workdir: Path, models: Models) -> None:
    r = svge(
        "extrapolate",
        "--space",
        "nb101",
        "--nodes",
        "8",
        "--from",
        BEST,
        "--checkpoint",
        str(models.finetuned),
        "--top",
        "3",
    )
    assert r.code == 0, r.stderr
    assert "single family at 8 nodes: 958 distinct valid cells (1,566 valid of 1,566 candidates)" in r.stderr
    assert "limit of 9 edges is lifted" in r.stderr
    comments, cells = r.lines[0::2], r.lines[1::2]
    assert len(cells) == 3 and all(c.startswith("# ") and "predicted val_acc_108" in c for c in comments)
    scores = [float(c.split()[-1]) for c in comments]
    assert scores == sorted(scores, reverse=True)
    assert all(NB101.parse_native(c).n_nodes == 8 for c in cells)  # ready to train elsewhere: native text


def test_extrapolate_paper_family_as_json(svge: Runner, workdir: Path, models: Models) -> None:
    r = svge("extrapolate", "--family", "paper", "--from", BEST, "--checkpoint", str(models.finetuned), "--json")
    assert r.code == 0, r.stderr
    facts = json.loads(r.out)
    assert facts["counts"]["cells"] == 1384 and facts["target"] == "val_acc_108"
    assert facts["counts"]["parts"] == {"output side": 192, "input side": 192, "random": 1000}
    assert len(facts["top"]) == 5 and facts["top"][0]["rank"] == 1


def test_extrapolate_starts_from_the_best_imported_cell(svge: Runner, workdir: Path, models: Models) -> None:
    cells = {SMALL: 0.91, BEST: 0.95, "ops=maxpool;adj=010/001/000": 0.5}
    data = workdir.parent / "labelled.jsonl"
    data.write_text(
        "".join(format_arch(NB101.parse_native(c), NB101, "jsonl", {"val_acc_108": v}) + "\n" for c, v in cells.items())
    )
    assert svge("data", "import", "nb101", str(data)).code == 0
    r = svge(
        "extrapolate",
        "--space",
        "nb101",
        "--checkpoint",
        str(models.finetuned),
        "--format",
        "jsonl",
        "--json",
        "-o",
        "top.jsonl",
    )
    assert r.code == 0, r.stderr
    assert json.loads(r.out)["seed"] == BEST and "val_acc_108 = 0.95" in r.stderr
    rows = [json.loads(line) for line in Path("top.jsonl").read_text().splitlines()]
    assert [row["rank"] for row in rows] == [1, 2, 3, 4, 5] and all(len(row["ops"]) == 8 for row in rows)


def test_long_native_strings_are_not_taken_for_file_names(svge: Runner, workdir: Path) -> None:
    enas = get_space("enas")
    row = enas.format_native(enas.sample(1, seed=0, layers=14)[0])
    assert len(row) > 255  # longer than a file name may be
    r = svge("show", row)
    assert r.code == 0, r.stderr
    assert "enas cell: 16 nodes" in r.out


def test_extrapolate_grows_enas_layer_by_layer(svge: Runner, workdir: Path, models: Models) -> None:
    r = svge(
        "extrapolate",
        "--space",
        "enas",
        "--layers",
        "4",
        "--from",
        "[[0], [1, 1]]",
        "--checkpoint",
        str(models.enas_finetuned),
        "--json",
    )
    assert r.code == 0, r.stderr
    facts = json.loads(r.out)
    assert facts["nodes"] == 6 and len(facts["counts"]["per_step"]) == 2
    assert all(len(json.loads(t["arch"])) == 4 for t in facts["top"])


@pytest.mark.parametrize(
    "args, words",
    [
        (["--from", "ops=conv3x3;adj=0100/0010"], ["--from, line 1", "adj row 0 has 4 entries"]),
        (["--from", "[[0], [1, 1]]", "--space", "nb101"], ["NB101 text needs"]),
        (["--from", BEST, "--space", "enas"], ["not an ENAS row"]),
        (["--from", BEST, "--layers", "12"], ["--layers is for spaces of layers such as ENAS"]),
        (["--from", BEST, "--nodes", "7"], ["already has 7 nodes"]),
        (["--from", BEST, "--family", "paper", "--nodes", "9"], ["exactly one node"]),
        (["--from", BEST, "--max-edges", "9"], ["no valid 8-node nb101 cell", "edges"]),
        (["--space", "nb101"], ["no imported nb101 dataset", "svge data import nb101"]),
    ],
)
def test_extrapolate_refuses_bad_input_in_one_line(
    svge: Runner, workdir: Path, models: Models, args: list[str], words: list[str]
) -> None:
    assert_one_line_error(svge("extrapolate", "--checkpoint", str(models.finetuned), *args), *words)
