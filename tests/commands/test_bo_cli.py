"""`svge bo` end to end: a tiny model, a synthetic NB201 table over every cell, the results file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bo_helpers import NB201, TARGET, make_workspace, score_of
from conftest import Result, Runner, assert_one_line_error

from svge_cli.model import ModelConfig, SVGe
from svge_cli.search import loop as bo_run
from svge_cli.spaces import get_space
from svge_cli.storage import checkpoints, store
from svge_cli.storage.workspace import Workspace

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "evaluator.py"
QUICK = (
    "bo",
    "--space",
    "nb201",
    "--strategy",
    "latent",
    "--iters",
    "1",
    "--batch",
    "3",
    "--init",
    "8",
    "--inducing",
    "8",
    "--attempts",
    "3",
)


@pytest.fixture()
def ws(workdir: Path) -> Workspace:
    return make_workspace(workdir)


def last_json(result: Result) -> dict:
    assert result.code == 0, result.stderr
    return json.loads(result.lines[-1])


def test_bo_on_a_full_benchmark_table_reports_every_query(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    results = tmp_path / "bo.json"
    facts = last_json(svge(*QUICK, "--target", TARGET, "--results", str(results), "--json"))
    assert facts["objective"] == "benchmark" and not facts["surrogate"]
    best = facts["bo"]["best"]
    assert best["score"] == pytest.approx(score_of(best["arch"]))
    assert [r["round"] for r in facts["bo"]["rounds"]] == [0, 1]
    (trial,) = json.loads(results.read_text())["trials"]
    assert trial["complete"] and len(trial["queries"]) == 8 + 3
    for q in trial["queries"]:
        assert len(q["latent"]) == 8 and q["round"] in (0, 1)
        assert q["status"] in (bo_run.QUERIED, bo_run.DUPLICATE, bo_run.INVALID)
        if q["status"] == bo_run.QUERIED:
            assert q["score"] == pytest.approx(score_of(q["arch"]))
    assert trial["rounds"][1]["gp"]["points"] > 100  # round 1 reports the GP's quality on the test split


def test_bo_prints_the_best_cell_in_native_text(ws: Workspace, svge: Runner) -> None:
    r = svge(*QUICK, "--target", TARGET, "--iters", "0")
    assert r.code == 0, r.stderr
    (best,) = r.lines
    assert NB201.format_native(NB201.parse_native(best)) == best
    assert "round" in r.stderr and "best acc: " in r.stderr


def test_results_go_to_the_workspace_by_default(ws: Workspace, svge: Runner) -> None:
    facts = last_json(svge(*QUICK, "--target", TARGET, "--iters", "0", "--json"))
    assert Path(facts["results"]).parent == ws.space_dir("nb201") / "bo"
    assert json.loads(Path(facts["results"]).read_text())["trials"][0]["complete"]


def test_trials_and_random_baseline_spend_equal_queries(ws: Workspace, svge: Runner) -> None:
    facts = last_json(svge(*QUICK, "--target", TARGET, "--trials", "2", "--random-baseline", "--seed", "5", "--json"))
    assert [t["seed"] for t in facts["bo"]["trials"]] == [5, 6]
    for bo, rnd in zip(facts["bo"]["trials"], facts["random"]["trials"]):
        assert bo["queries"] == rnd["queries"] and rnd["distinct"] == rnd["queries"]
    assert facts["random"]["rounds"][0]["trials"] == 2


def test_an_evaluator_scores_the_cells(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    cmd = f"{sys.executable} {EXAMPLE}"
    results = tmp_path / "e.json"
    facts = last_json(svge(*QUICK, "--evaluator", cmd, "--results", str(results), "--json"))
    assert facts["objective"] == "evaluator" and facts["evaluator"] == cmd
    for q in json.loads(results.read_text())["trials"][0]["queries"]:
        if q["status"] == bo_run.QUERIED:
            inner = NB201.ops_names(NB201.parse_native(q["arch"]))[1:-1]
            expected = sum("conv" in o for o in inner) / 6 + 0.5 * sum("3x3" in o for o in inner) / 6
            assert q["score"] == pytest.approx(expected, abs=1e-6)


def test_an_interrupted_search_keeps_finished_rounds_and_resumes(
    ws: Workspace, svge: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "r.json"
    args = (*QUICK, "--iters", "2", "--target", TARGET, "--results", str(results))
    real_round = bo_run.bo_round

    def interrupted(problem, state, settings, rnd):
        if rnd == 2:
            raise KeyboardInterrupt
        return real_round(problem, state, settings, rnd)

    monkeypatch.setattr(bo_run, "bo_round", interrupted)
    r = svge(*args)
    assert r.code == 130 and f"--resume --results {results}" in r.stderr
    trial = json.loads(results.read_text())["trials"][0]
    assert [s["round"] for s in trial["rounds"]] == [0, 1] and not trial["complete"]

    monkeypatch.setattr(bo_run, "bo_round", real_round)
    r = svge(*args, "--resume")
    assert r.code == 0, r.stderr
    trial = json.loads(results.read_text())["trials"][0]
    assert [s["round"] for s in trial["rounds"]] == [0, 1, 2] and trial["complete"]
    assert len(trial["queries"]) == 8 + 3 + 3


def test_resume_refuses_a_different_search(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    results = str(tmp_path / "r.json")
    assert svge(*QUICK, "--iters", "0", "--target", TARGET, "--results", results).code == 0
    r = svge(*QUICK, "--iters", "0", "--target", TARGET, "--results", results, "--resume", "--batch", "4")
    assert_one_line_error(r, "cannot resume", "batch=3")


@pytest.mark.parametrize(
    "args, words",
    [
        (("--objective", "benchmark", "--evaluator", "true"), ("drop --objective",)),
        (("--target", "nope"), ("no label column 'nope'",)),
        (("--results", "-"), ("needs a file name",)),
        (("--init", "20000", "--target", TARGET), ("more cells than",)),
        (("--resume",), ("no results file",)),
        (("--evaluator", "/no/such/evaluator"), ("cannot start",)),
    ],
)
def test_bad_requests_end_with_one_clear_line(
    ws: Workspace, svge: Runner, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    assert_one_line_error(svge(*QUICK, *args), *words)


def test_a_sampled_table_defaults_to_surrogate_predictions_from_the_labelled_split(workdir: Path, svge: Runner) -> None:
    ws = Workspace(workdir)
    enas = get_space("enas")
    table = enas.default_dataset(n=80)
    table.labels["ws_acc"] = np.random.default_rng(0).uniform(0.70, 0.75, len(table))
    store.save_dataset(ws.dataset_path("enas"), table)
    torch.manual_seed(0)
    model = SVGe(ModelConfig(vocab_size=enas.vocab_size, max_nodes=8, hidden=16, latent=8))
    path = ws.checkpoint_dir("enas") / "tiny.h5"
    store.save_checkpoint(path, checkpoints.snapshot("enas", model))
    ws.remember_checkpoint("enas", path)
    r = svge("bo", "--space", "enas", "--iters", "1", "--batch", "3", "--inducing", "8", "--attempts", "3", "--json")
    facts = last_json(r)
    assert facts["objective"] == "surrogate" and facts["surrogate"] and "SURROGATE" in facts["objective_description"]
    assert "SURROGATE" in r.stderr
    rounds = facts["bo"]["rounds"]
    assert rounds[0]["queries"] == 0  # the labelled training split is the initial data, not queries (D-VAE)
    assert facts["settings"]["init"] is None
    (trial,) = json.loads(Path(facts["results"]).read_text())["trials"]
    assert trial["rounds"][1]["gp"]["points"] == int((table.split == store.SPLIT_TEST).sum())


def test_without_a_table_a_table_objective_is_refused_with_what_to_do(workdir: Path, svge: Runner) -> None:
    make_workspace(workdir, table=False)
    assert_one_line_error(svge(*QUICK, "--objective", "benchmark"), "svge data import nb201", "--evaluator")
