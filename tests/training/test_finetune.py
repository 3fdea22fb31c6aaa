"""Fine-tuning and prediction: the regressor learns a simple label, checkpoints carry it, the CLI guards input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, Runner, assert_one_line_error

from svge_cli import artifacts
from svge_cli.artifacts import Dataset
from svge_cli.errors import SvgeError
from svge_cli.model import ModelConfig, SVGe, checkpoints, codec
from svge_cli.model.predictor import (
    is_finetuned,
    load_predictor,
    scale_from_checkpoint,
    spearman,
    uncertainty_metrics,
    used_hashes,
)
from svge_cli.model.regressor import STATE_PREFIX, Regressor
from svge_cli.model.scaling import LabelScale, RankGaussScale, fit_scale
from svge_cli.spaces import get_space
from svge_cli.storage import store
from svge_cli.training.finetune import finetune, pairwise_ranking_loss
from svge_cli.training.finetune_run import finetuned_checkpoint
from svge_cli.training.labels import FinetuneConfig, LabelDraw, draw_labels

SP = get_space("nb201")
CONV = SP.type_index("nor_conv_3x3")
CELLS = 160


def conv_dataset(n: int = CELLS, seed: int = 3) -> Dataset:
    """Distinct NB201 cells labelled by their number of 3x3 convolutions, and a percent-like accuracy."""
    archs = list({SP.hash(a): a for a in SP.sample(3 * n, seed)}.values())[:n]
    ds = Dataset.from_archs("nb201", archs, [SP.hash(a) for a in archs])
    convs = np.array([float((a.ops == CONV).sum()) for a in archs])
    ds.labels = {"convs": convs, "acc": 80.0 + 2.0 * convs}
    ds.split = (np.arange(n) % 10 == 0).astype(np.int8)
    return ds


def tiny_vae(seed: int = 0) -> SVGe:
    torch.manual_seed(seed)
    return SVGe(ModelConfig(vocab_size=SP.vocab_size, max_nodes=SP.max_nodes, **TINY))


FAST = FinetuneConfig(head="mlp", epochs=2, batch_size=8, patience=5)


# ---------------------------------------------------------------- the regressor and the label draw


def test_regressor_has_the_papers_widths_and_gives_one_score_per_point() -> None:
    head = Regressor(56)
    assert [(m.in_features, m.out_features) for m in head.layers] == [(56, 28), (28, 14), (14, 7), (7, 1)]
    assert head(torch.zeros(5, 56)).shape == (5,)
    again = Regressor.from_config(head.config())
    assert again.hidden == (28, 14, 7) and again.in_dim == 56
    with pytest.raises(ValueError):
        Regressor(8, [4, 0])


def test_draw_is_seeded_disjoint_and_leaves_every_other_label_unseen() -> None:
    values = np.arange(100, dtype=float)
    values[[5, 50]] = np.nan
    draw = draw_labels(values, 40, FinetuneConfig(seed=1))
    assert len(draw.train) == 36 and len(draw.validation) == 4 and draw.skipped_nan == 2
    assert not set(draw.train) & set(draw.validation)
    assert sorted([*draw.drawn, *draw.unseen]) == [i for i in range(100) if i not in (5, 50)]
    assert np.array_equal(draw.train, draw_labels(values, 40, FinetuneConfig(seed=1)).train)
    assert not np.array_equal(draw.train, draw_labels(values, 40, FinetuneConfig(seed=2)).train)


def test_draw_from_a_pool_keeps_the_rest_unseen() -> None:
    values = np.ones(50)
    draw = draw_labels(values, 20, FinetuneConfig(batch_size=8), pool=np.arange(25))
    assert draw.drawn.max() < 25 and set(range(25, 50)) <= set(draw.unseen)


@pytest.mark.parametrize(
    "n, batch, words", [(9, 8, "at least 10"), (20, 32, "at least 32"), (60, 8, "more cells than have a label")]
)
def test_draw_refuses_too_few_or_too_many_labels(n: int, batch: int, words: str) -> None:
    values = np.r_[np.ones(50), np.full(10, np.nan)]
    with pytest.raises(SvgeError, match=words):
        draw_labels(values, n, FinetuneConfig(batch_size=batch))


# ---------------------------------------------------------------- joint training


def test_joint_training_learns_a_monotone_label() -> None:
    ds = conv_dataset()
    values = ds.labels["convs"]
    cfg = FinetuneConfig(head="mlp", label_transform="standard", epochs=10, batch_size=8, lr=5e-3, patience=10)
    draw = draw_labels(values, 100, cfg)
    predictor, history = finetune(tiny_vae(), ds, values, "convs", draw, cfg)
    assert [h["epoch"] for h in history] == list(range(1, 11))
    assert history[-1]["val_mse"] < 0.5 * history[0]["val_mse"]
    rows = draw.unseen
    pred = predictor.from_arrays(ds.ops[rows], ds.adj[rows], ds.n_nodes[rows])
    assert spearman(values[rows], pred) > 0.8
    assert abs(pred.mean() - values[rows].mean()) < 0.5  # scores come back in the label's units


def test_early_stopping_keeps_the_best_validation_epoch() -> None:
    ds = conv_dataset(60)
    values = ds.labels["acc"]
    cfg = FinetuneConfig(head="mlp", epochs=30, batch_size=8, lr=0.05, patience=2)  # a rate that soon stops helping
    draw = draw_labels(values, 50, cfg)
    predictor, history = finetune(tiny_vae(), ds, values, "acc", draw, cfg)
    best = min(history, key=lambda h: h["val_mse"])
    assert len(history) == best["epoch"] + 2 < 30
    pred = predictor.scale.normalize(
        predictor.from_arrays(ds.ops[draw.validation], ds.adj[draw.validation], ds.n_nodes[draw.validation])
    )
    y = predictor.scale.normalize(values[draw.validation])
    assert np.mean((pred - y) ** 2) == pytest.approx(best["val_mse"], rel=1e-4)


def finetuned(tmp_path: Path, cfg: FinetuneConfig = FAST) -> tuple[artifacts.Checkpoint, Dataset, LabelDraw]:
    ds = conv_dataset(60)
    base = checkpoints.snapshot(
        "nb201", tiny_vae(), arrays={"train_rows": np.arange(3, dtype=np.int32)}, meta={"dataset": "elsewhere"}
    )
    draw = draw_labels(ds.labels["acc"], 20, cfg)
    predictor, history = finetune(tiny_vae(), ds, ds.labels["acc"], "acc", draw, cfg)
    ck = finetuned_checkpoint(base, tmp_path / "base.h5", predictor, ds, "data.h5", draw, cfg, history, "all")
    store.save_checkpoint(tmp_path / "ft.h5", ck)
    return store.load_checkpoint(tmp_path / "ft.h5", "nb201"), ds, draw


HEAD_CONFIGS = {
    "mlp": FAST,
    "mlp-ensemble": replace(FAST, heads=3, ranking_weight=0.5),
    "gp": FinetuneConfig(batch_size=8),
    "gp-latent": FinetuneConfig(batch_size=8, onehot=False),
}


@pytest.mark.parametrize("kind", HEAD_CONFIGS)
def test_a_finetuned_checkpoint_rebuilds_the_same_predictor(tmp_path: Path, kind: str) -> None:
    ck, ds, draw = finetuned(tmp_path, HEAD_CONFIGS[kind])
    assert is_finetuned(ck) and ck.meta["target"] == "acc" and ck.meta["labels"] == 20
    assert any(k.startswith(STATE_PREFIX) for k in ck.state)
    assert np.array_equal(ck.arrays["labelled_rows"], draw.train)
    assert np.array_equal(ck.arrays["validation_rows"], draw.validation)
    assert np.array_equal(ck.arrays["unseen_rows"], draw.unseen)
    assert used_hashes(ck) == set(ds.hashes[draw.drawn].tolist())
    assert ck.meta["dataset"] == "elsewhere" and "latent_mean" in ck.arrays  # the VAE's facts travel along
    first = load_predictor(ck).from_arrays(ds.ops, ds.adj, ds.n_nodes)
    second = load_predictor(store.load_checkpoint(tmp_path / "ft.h5")).from_arrays(ds.ops, ds.adj, ds.n_nodes)
    assert np.array_equal(first, second) and np.isfinite(first).all()
    predictor = load_predictor(ck)
    scores, spread = predictor.with_spread(ds.ops, ds.adj, ds.n_nodes)
    assert np.allclose(scores, first)
    assert (spread is None) == (kind == "mlp")
    if spread is not None:
        assert spread.shape == scores.shape and (spread >= 0).all() and spread.max() > 0
    mu, _ = codec.encode_arrays(predictor.model, ds.ops[:5], ds.adj[:5], ds.n_nodes[:5])
    assert np.isfinite(predictor.from_latents(mu)).all()  # latent points alone (a GP reading cells decodes them)
    vae = checkpoints.model_from_checkpoint(ck)  # every VAE command can still use it
    assert isinstance(vae, SVGe)


def test_a_plain_vae_checkpoint_has_no_predictor() -> None:
    ck = checkpoints.snapshot("nb201", tiny_vae())
    assert not is_finetuned(ck)
    with pytest.raises(SvgeError, match="no regressor"):
        load_predictor(ck)


# ---------------------------------------------------------------- the commands


@pytest.fixture
def nb201_files(tmp_path: Path) -> dict[str, Path]:
    ds = conv_dataset(80)
    ds.labels["acc"][[1, 2]] = np.nan
    store.save_dataset(tmp_path / "ds.h5", ds)
    store.save_checkpoint(tmp_path / "vae.h5", checkpoints.snapshot("nb201", tiny_vae()))
    enas = get_space("enas")
    torch.manual_seed(0)
    other = SVGe(ModelConfig(vocab_size=enas.vocab_size, max_nodes=enas.max_nodes, **TINY))
    store.save_checkpoint(tmp_path / "enas.h5", checkpoints.snapshot("enas", other))
    (tmp_path / "cells.txt").write_text("".join(SP.format_native(a) + "\n" for a in ds.archs()))
    return {
        "dataset": tmp_path / "ds.h5",
        "vae": tmp_path / "vae.h5",
        "enas": tmp_path / "enas.h5",
        "cells": tmp_path / "cells.txt",
    }


def finetune_args(files: dict[str, Path], **options: str | None) -> list[str]:
    """`svge finetune` on the fixture files; options override the defaults here, None drops one."""
    chosen = {
        "checkpoint": str(files["vae"]),
        "dataset": str(files["dataset"]),
        "target": "acc",
        "epochs": "2",
        "batch_size": "8",
    } | options
    flags = [[f"--{k.replace('_', '-')}", v] for k, v in chosen.items() if v is not None]
    return ["finetune", "--space", "nb201", *[x for pair in flags for x in pair]]


def test_finetune_then_predict_end_to_end(
    svge: Runner, workdir: Path, nb201_files: dict[str, Path], tmp_path: Path
) -> None:
    done = svge(*finetune_args(nb201_files, labels="30"))
    assert done.code == 0, done.stderr
    written = workdir / "nb201" / "checkpoints" / "finetuned-acc-30.h5"
    assert done.out.strip() == f"checkpoint: {written}" and "skipped 2 cells" in done.stderr
    assert (workdir / "nb201" / "latest").read_text().strip() == str(written.resolve())

    cells = str(nb201_files["cells"])
    plain = svge("predict", cells)  # the workspace's latest: the fine-tuned checkpoint
    assert plain.code == 0, plain.stderr
    assert len(plain.lines) == 80 and all(np.isfinite(float(x)) for x in plain.lines)

    judged = svge(
        "predict",
        cells,
        "--truth",
        "acc",
        "--dataset",
        str(nb201_files["dataset"]),
        "--json",
        "--plot",
        str(tmp_path / "scatter.png"),
    )
    assert judged.code == 0, judged.stderr
    facts = json.loads(judged.lines[-1])
    assert facts["target"] == "acc" and len(facts["predictions"]) == 80
    assert [float(x) for x in plain.lines] == pytest.approx(facts["predictions"], rel=1e-5)
    ev = facts["evaluation"]
    assert ev["left_out_used"] == 30 and ev["left_out_unknown"] == 2 and ev["cells"] == 48
    assert {"mse", "rmse", "pearson", "spearman", "kendall_tau", "top_k_overlap"} <= set(ev)
    assert {"mean_std", "within_1std", "within_2std"} <= set(ev) and len(facts["std"]) == 80  # the GP's spread
    with_std = svge("predict", cells, "--std")
    assert with_std.code == 0, with_std.stderr
    assert [len(line.split("\t")) for line in with_std.lines] == [2] * 80
    assert (tmp_path / "scatter.png").read_bytes().startswith(b"\x89PNG")

    pca = svge("encode", cells, "-o", str(tmp_path / "lat.h5"), "--plot", str(tmp_path / "pca.svg"))
    assert pca.code == 0, pca.stderr
    assert "<svg" in (tmp_path / "pca.svg").read_text() and (tmp_path / "lat.h5").exists()


def test_finetune_starts_from_the_vae_beneath_a_finetuned_latest(
    svge: Runner, workdir: Path, nb201_files: dict[str, Path]
) -> None:
    assert svge(*finetune_args(nb201_files, labels="20")).code == 0
    again = svge(*finetune_args(nb201_files, labels="24", checkpoint=None))
    assert again.code == 0, again.stderr
    assert f"starting from its VAE {nb201_files['vae'].resolve()}" in again.stderr
    ck = store.load_checkpoint(workdir / "nb201" / "checkpoints" / "finetuned-acc-24.h5")
    assert ck.meta["base_checkpoint"] == str(nb201_files["vae"].resolve())


@pytest.mark.parametrize(
    "options, words",
    [
        ({"labels": "5"}, ["--labels 5 is too few", "at least 10"]),
        ({"labels": "12", "batch_size": "16"}, ["at least 16"]),
        ({"labels": "79"}, ["78 of the 80 cells"]),
        ({"labels": "30", "target": "val_acc"}, ["no label column 'val_acc'", "available: acc, convs"]),
        ({"labels": "30", "dataset": None}, ["no imported nb201 dataset", "svge data import nb201"]),
    ],
)
def test_finetune_bad_input_is_one_line(
    svge: Runner, workdir: Path, nb201_files: dict[str, Path], options: dict[str, str | None], words: list[str]
) -> None:
    assert_one_line_error(svge(*finetune_args(nb201_files, **options)), *words)
    assert not (workdir / "nb201" / "checkpoints").exists()


def test_finetune_refuses_a_checkpoint_of_another_space(
    svge: Runner, workdir: Path, nb201_files: dict[str, Path]
) -> None:
    wrong = svge(*finetune_args(nb201_files, labels="30", checkpoint=str(nb201_files["enas"])))
    assert_one_line_error(wrong, "holds a enas checkpoint", "nb201")


def test_predict_bad_input_is_one_line(svge: Runner, workdir: Path, nb201_files: dict[str, Path]) -> None:
    cells = str(nb201_files["cells"])
    assert_one_line_error(
        svge("predict", cells, "--checkpoint", str(nb201_files["vae"])), "no regressor", "svge finetune"
    )
    assert_one_line_error(svge("predict", cells, "--plot", "s.png"), "needs --truth")
    assert svge(*finetune_args(nb201_files, labels="20", head="mlp", output="mlp.h5")).code == 0
    assert_one_line_error(svge("predict", cells, "--std", "--checkpoint", "mlp.h5"), "no uncertainty", "--head gp")
    assert svge(*finetune_args(nb201_files, labels="30")).code == 0
    assert_one_line_error(
        svge("predict", cells, "--truth", "acc", "--plot", "s.jpg", "--dataset", str(nb201_files["dataset"])),
        ".png or .svg",
    )
    assert_one_line_error(
        svge("predict", cells, "--truth", "nope", "--dataset", str(nb201_files["dataset"])),
        "no label column 'nope'",
        "available: acc, convs",
    )
    one = SP.format_native(next(conv_dataset(80).archs())) + "\n"
    assert_one_line_error(
        svge("predict", "-", "--truth", "acc", "--dataset", str(nb201_files["dataset"]), stdin=one),
        "at least 2 are needed",
    )


# ---------------------------------------------------------------- heads, losses and label transforms


@pytest.mark.parametrize(
    "cfg",
    [
        FinetuneConfig(batch_size=8),
        FinetuneConfig(batch_size=8, onehot=False),
        FinetuneConfig(head="mlp", heads=3, ranking_weight=1.0, epochs=10, batch_size=8, lr=5e-3, patience=10),
    ],
    ids=["gp", "gp-latent", "mlp-ensemble-ranking"],
)
def test_every_head_learns_a_monotone_label(cfg: FinetuneConfig) -> None:
    ds = conv_dataset()
    values = ds.labels["acc"]
    draw = draw_labels(values, 100, cfg)
    predictor, history = finetune(tiny_vae(), ds, values, "acc", draw, cfg)
    rows = draw.unseen
    pred, spread = predictor.with_spread(ds.ops[rows], ds.adj[rows], ds.n_nodes[rows])
    assert spearman(values[rows], pred) > 0.8
    assert abs(np.median(pred) - np.median(values[rows])) < 2.0  # back in the label's units
    assert spread is not None and (spread >= 0).all() and np.isfinite(spread).all()
    assert np.isfinite(history[0]["val_mse"])


def test_gp_head_is_confident_where_it_has_seen_cells() -> None:
    ds = conv_dataset()
    values = ds.labels["acc"]
    cfg = FinetuneConfig(batch_size=8)
    draw = draw_labels(values, 60, cfg)
    predictor, _ = finetune(tiny_vae(), ds, values, "acc", draw, cfg)
    seen = predictor.with_spread(ds.ops[draw.drawn], ds.adj[draw.drawn], ds.n_nodes[draw.drawn])
    unseen = predictor.with_spread(ds.ops[draw.unseen], ds.adj[draw.unseen], ds.n_nodes[draw.unseen])
    assert seen[1].mean() < unseen[1].mean()
    assert np.abs(seen[0] - values[draw.drawn]).mean() < np.abs(unseen[0] - values[draw.unseen]).mean() + 1e-9


def test_ranking_loss_rewards_the_right_order_only() -> None:
    target = torch.tensor([0.0, 1.0, 2.0, 3.0])
    right = pairwise_ranking_loss(torch.tensor([0.0, 10.0, 20.0, 30.0]), target)
    wrong = pairwise_ranking_loss(torch.tensor([30.0, 20.0, 10.0, 0.0]), target)
    shifted = pairwise_ranking_loss(torch.tensor([100.0, 110.0, 120.0, 130.0]), target)
    assert right.item() < 1e-4 and wrong.item() > 9 and shifted.item() == pytest.approx(right.item())
    assert pairwise_ranking_loss(torch.ones(3, requires_grad=True), torch.ones(3)).item() == 0.0  # no ordered pair


def test_rank_gauss_scale_is_monotone_invertible_and_stored(tmp_path: Path) -> None:
    values = np.array([10.0, 10.0, 55.0, 80.0, 85.0, 86.0, 90.0, 91.0, 91.0, 93.0])
    scale = RankGaussScale.fit(values)
    z = scale.normalize(values)
    assert np.all(np.diff(z) >= 0) and abs(z.mean()) < 0.3 and z.std() < 1.5  # the tail is pulled in
    grid = np.linspace(0, 100, 201)
    assert np.all(np.diff(scale.normalize(grid)) > 0)  # strictly monotone, past both ends too
    assert np.allclose(scale.restore(scale.normalize(grid)), grid)
    assert scale.restore_spread(np.zeros(1), np.full(1, 0.1))[0] > 0
    assert fit_scale(values, "standard") == LabelScale.fit(values)
    cfg = FinetuneConfig(head="mlp", epochs=1, batch_size=8)
    ck, _, _ = finetuned(tmp_path, cfg)
    assert ck.meta["label_transform"] == "rank-gauss"
    again = scale_from_checkpoint(ck)
    assert isinstance(again, RankGaussScale) and np.allclose(again.knots_y, load_predictor(ck).scale.knots_y)


def test_a_checkpoint_from_before_the_new_heads_still_loads(tmp_path: Path) -> None:
    """No label_transform, no kind / heads in the regressor config: a plain Regressor and LabelScale."""
    ck, ds, _ = finetuned(tmp_path, replace(FAST, label_transform="standard"))
    meta = {k: v for k, v in ck.meta.items() if k not in ("label_transform", "head")}
    old = artifacts.Checkpoint(
        ck.space,
        ck.config,
        ck.state,
        epoch=ck.epoch,
        history=ck.history,
        arrays={k: v for k, v in ck.arrays.items() if not k.startswith("label_knots")},
        meta=meta,
    )
    predictor = load_predictor(old)
    assert type(predictor.scale) is LabelScale and isinstance(predictor.head, Regressor)
    assert not predictor.has_uncertainty and predictor.spread_from_latents(np.zeros((2, 8))) is None
    assert np.allclose(
        predictor.from_arrays(ds.ops, ds.adj, ds.n_nodes), load_predictor(ck).from_arrays(ds.ops, ds.adj, ds.n_nodes)
    )


def test_uncertainty_metrics_read_errors_against_the_spread() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    m = uncertainty_metrics(truth, truth + np.array([0.1, -0.5, 1.5, 0.0]), np.array([0.2, 0.3, 1.0, 0.1]))
    assert m["within_1std"] == 0.5 and m["within_2std"] == 1.0 and m["mean_std"] == pytest.approx(0.4)
    assert m["error_std_spearman"] > 0.5
