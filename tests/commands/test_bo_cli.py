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

from svge_cli import artifacts
from svge_cli.model import ModelConfig, SVGe, checkpoints
from svge_cli.search.journal import journal_path
from svge_cli.search.latent import LatentBO
from svge_cli.spaces import get_space
from svge_cli.storage import store
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
    assert facts["strategy"] == "latent" and facts["objective"] == "benchmark" and not facts["surrogate"]
    assert facts["best"]["score"] == pytest.approx(score_of(facts["best"]["arch"]))
    doc = json.loads(results.read_text())
    assert doc["kind"] == "svge-search-results" and doc["settings"]["iters"] == 1
    (trial,) = doc["trials"]
    assert trial["complete"] and 8 <= len(trial["queries"]) <= 8 + 3
    for q in trial["queries"]:
        assert q["status"] == "queried" and q["score"] == pytest.approx(score_of(q["arch"]))
    (rnd,) = trial["rounds"]
    assert rnd["points"] == 3 and rnd["new"] + rnd["duplicates"] + rnd["invalid"] == 3
    assert rnd["new"] == len(trial["queries"]) - 8
    assert rnd["gp"]["points"] > 100  # round 1 reports the GP's quality on the test split
    notes = [json.loads(line) for line in journal_path(results).read_text().splitlines() if '"note"' in line]
    assert len(notes) == 1 and len(notes[0]["invalid"]) == rnd["invalid"]


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


def test_trials_and_random_baseline_spend_equal_budgets(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    results = tmp_path / "t.json"
    args = ("--target", TARGET, "--trials", "2", "--random-baseline", "--seed", "5", "--results", str(results))
    facts = last_json(svge(*QUICK, *args, "--json"))
    assert [t["seed"] for t in facts["trials"]] == [5, 6]
    baseline = facts["baseline"]
    assert baseline["results"] == str(tmp_path / "t.random.json")
    assert [t["queries"] for t in baseline["trials"]] == [8 + 3, 8 + 3]
    assert json.loads((tmp_path / "t.random.json").read_text())["strategy"] == "random"


def test_pool_search_takes_a_random_baseline_too(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    facts = last_json(
        svge("bo", "--space", "nb201", "--budget", "12", "--target", TARGET, "--random-baseline", "--json")
    )
    assert facts["strategy"] == "pool" and facts["baseline"]["trials"][0]["queries"] == 12


def test_an_evaluator_scores_the_cells(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    cmd = f"{sys.executable} {EXAMPLE}"
    results = tmp_path / "e.json"
    facts = last_json(svge(*QUICK, "--evaluator", cmd, "--results", str(results), "--json"))
    assert facts["objective"] == "evaluator" and facts["evaluator"] == cmd
    for q in json.loads(results.read_text())["trials"][0]["queries"]:
        inner = NB201.ops_names(NB201.parse_native(q["arch"]))[1:-1]
        expected = sum("conv" in o for o in inner) / 6 + 0.5 * sum("3x3" in o for o in inner) / 6
        assert q["score"] == pytest.approx(expected, abs=1e-6)


def test_an_interrupted_search_resumes_to_what_the_uninterrupted_run_found(
    ws: Workspace, svge: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole, cut = tmp_path / "whole.json", tmp_path / "cut.json"
    args = (*QUICK, "--iters", "2", "--target", TARGET)
    assert svge(*args, "--results", str(whole)).code == 0
    real_round = LatentBO._round

    def interrupted(self, history, *rest):
        if len(self.rounds) == 1:
            raise KeyboardInterrupt
        return real_round(self, history, *rest)

    monkeypatch.setattr(LatentBO, "_round", interrupted)
    r = svge(*args, "--results", str(cut))
    assert r.code == 130 and f"--resume --results {cut}" in r.stderr
    trial = json.loads(cut.read_text())["trials"][0]
    assert len(trial["rounds"]) == 1 and not trial["complete"]

    monkeypatch.setattr(LatentBO, "_round", real_round)
    r = svge(*args, "--results", str(cut), "--resume")
    assert r.code == 0, r.stderr
    resumed, expected = (json.loads(p.read_text())["trials"][0] for p in (cut, whole))
    assert resumed["complete"] and [q["hash"] for q in resumed["queries"]] == [q["hash"] for q in expected["queries"]]
    assert [r["points"] for r in resumed["rounds"]] == [3, 3]


def test_a_latent_search_runs_asynchronously_on_dask_workers(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    results = tmp_path / "w.json"
    cmd = f"{sys.executable} {EXAMPLE}"
    facts = last_json(svge(*QUICK, "--iters", "2", "--evaluator", cmd, "--workers", "2", "--results", str(results),
                           "--json"))  # fmt: skip
    (trial,) = json.loads(results.read_text())["trials"]
    assert trial["complete"] and sum(r["points"] for r in trial["rounds"]) == 2 * 3
    hashes = [q["hash"] for q in trial["queries"]]
    assert len(hashes) == len(set(hashes)) <= 8 + 6 and facts["workers"] == 2


def test_resume_refuses_a_different_search(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    results = str(tmp_path / "r.json")
    assert svge(*QUICK, "--iters", "0", "--target", TARGET, "--results", results).code == 0
    r = svge(*QUICK, "--iters", "0", "--target", TARGET, "--results", results, "--resume", "--batch", "4")
    assert_one_line_error(r, "cannot resume", "--batch 3", "asks for 4")


def test_results_of_the_old_decode_based_bo_are_refused_and_kept(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"kind": "svge-bo-results", "format_version": 1, "trials": []}))
    before = old.read_bytes()
    assert_one_line_error(
        svge(*QUICK, "--target", TARGET, "--results", str(old), "--resume"), "earlier svge", "new search"
    )
    assert old.read_bytes() == before and not journal_path(old).exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (("--objective", "benchmark", "--evaluator", "true"), ("drop --objective",)),
        (("--target", "nope"), ("no label column 'nope'",)),
        (("--results", "-"), ("needs a file name",)),
        (("--init", "20000", "--target", TARGET), ("budget of 20,003 queries", "more than the 15,625 cells")),
        (("--init", "15000", "--target", TARGET), ("--init 15000", "more cells than")),
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
    assert facts["settings"]["init"] is None and facts["settings"]["budget"] == 3
    # the labelled training split is the initial data, not queries (D-VAE): every query is a decoded cell
    (trial,) = json.loads(Path(facts["results"]).read_text())["trials"]
    (rnd,) = trial["rounds"]
    assert len(trial["queries"]) == rnd["new"] <= 3
    assert rnd["gp"]["points"] == int((table.split == artifacts.SPLIT_TEST).sum())


def test_without_a_table_a_table_objective_is_refused_with_what_to_do(workdir: Path, svge: Runner) -> None:
    make_workspace(workdir, table=False)
    assert_one_line_error(svge(*QUICK, "--objective", "benchmark"), "svge data import nb201", "--evaluator")
