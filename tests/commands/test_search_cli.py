"""`svge bo --strategy pool|random|evolution --budget N`: exact budgets, no repeats, every query recorded, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bo_helpers import NB201, TARGET, score_of
from conftest import Result, Runner, assert_one_line_error
from test_bo_cli import EXAMPLE, make_workspace

from svge_cli.networks.proxytable import DEFAULT_PROXIES, settings_for
from svge_cli.storage.proxycache import ProxyCache, cache_path
from svge_cli.storage.workspace import Workspace


@pytest.fixture()
def ws(workdir: Path) -> Workspace:
    return make_workspace(workdir)


def search(svge: Runner, results: Path, *args: str) -> Result:
    return svge("bo", "--space", "nb201", "--target", TARGET, "--results", str(results), *args)


def queries(results: Path) -> list[list[dict]]:
    return [t["queries"] for t in json.loads(results.read_text())["trials"]]


def proposed(results: Path) -> list[list[tuple]]:
    """What a search queried, in order: the parts of its queries that do not depend on timing."""
    return [[(q["arch"], q["score"], q["status"], q["round"]) for q in t] for t in queries(results)]


@pytest.mark.parametrize("strategy", ["pool", "random", "evolution"])
def test_a_search_spends_its_budget_exactly_and_never_repeats_a_cell(
    ws: Workspace, svge: Runner, tmp_path: Path, strategy: str
) -> None:
    results = tmp_path / "s.json"
    r = search(svge, results, "--strategy", strategy, "--budget", "23", "--batch", "5", "--trials", "2")
    assert r.code == 0, r.stderr
    for trial in queries(results):
        assert len(trial) == 23
        assert len({q["hash"] for q in trial}) == 23
        assert all(q["strategy"] == strategy for q in trial)
        assert all(q["score"] == pytest.approx(score_of(q["arch"])) for q in trial)
        assert [q["round"] for q in trial] == sorted(q["round"] for q in trial)
    (best,) = r.lines
    assert NB201.format_native(NB201.parse_native(best)) == best
    assert "queries 23  best so far" in r.stderr  # the per-round line


def test_pool_search_is_the_default_where_the_space_can_be_listed(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    results = tmp_path / "s.json"
    facts = json.loads(search(svge, results, "--budget", "15", "--json").lines[-1])
    assert facts["strategy"] == "pool" and facts["at_queries"][-1]["queries"] == 15
    assert (Path(ws.space_dir("nb201")) / "pools").is_dir()  # the pool's latents are cached


def test_pool_search_finds_better_cells_than_random_search(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    best = {}
    for strategy in ("pool", "random"):
        args = ("--strategy", strategy, "--budget", "40", "--trials", "3", "--json")
        facts = json.loads(search(svge, tmp_path / f"{strategy}.json", *args).lines[-1])
        best[strategy] = facts["at_queries"][-1]["best_mean"]
    assert best["pool"] > best["random"]


def test_a_resumed_search_continues_exactly_where_it_stopped(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole.json", tmp_path / "cut.json"
    args = ("--strategy", "pool", "--budget", "25", "--batch", "5")
    assert search(svge, whole, *args).code == 0
    doc = json.loads(whole.read_text())
    doc["trials"][0]["queries"] = doc["trials"][0]["queries"][:15]  # as if Ctrl-C came after round 2
    doc["trials"][0]["complete"] = False
    cut.write_text(json.dumps(doc))
    assert search(svge, cut, *args, "--resume").code == 0
    assert proposed(cut) == proposed(whole)


def test_resuming_with_other_settings_is_refused(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    results = tmp_path / "s.json"
    assert search(svge, results, "--strategy", "random", "--budget", "10").code == 0
    before = results.read_bytes()
    assert_one_line_error(search(svge, results, "--strategy", "random", "--budget", "12", "--resume"), "--budget")
    assert_one_line_error(search(svge, results, "--strategy", "evolution", "--budget", "10", "--resume"), "strategy")
    assert results.read_bytes() == before


def test_baselines_run_on_an_external_evaluator(workdir: Path, svge: Runner, tmp_path: Path) -> None:
    make_workspace(workdir, table=False)
    for strategy in ("random", "evolution"):
        results = tmp_path / f"{strategy}.json"
        r = svge(
            "bo",
            "--space",
            "nb201",
            "--strategy",
            strategy,
            "--evaluator",
            f"python {EXAMPLE}",
            "--budget",
            "12",
            "--results",
            str(results),
        )
        assert r.code == 0, r.stderr
        assert len(queries(results)[0]) == 12


def test_bad_budgets_are_one_line(ws: Workspace, svge: Runner, tmp_path: Path) -> None:
    assert_one_line_error(search(svge, tmp_path / "a.json", "--budget", "20000"), "15,625")
    assert_one_line_error(svge("bo", "--space", "enas", "--strategy", "pool", "--evaluator", "true"), "latent")


def test_without_a_table_or_an_evaluator_a_zero_cost_proxy_stands_in_and_says_so(
    workdir: Path, svge: Runner, tmp_path: Path
) -> None:
    make_workspace(workdir, table=False)
    results = tmp_path / "proxy.json"
    r = svge("bo", "--space", "nb201", "--strategy", "random", "--budget", "4", "--results", str(results), "--json")
    assert r.code == 0, r.stderr
    assert "zero-cost proxy synflow" in r.stderr
    facts = json.loads(r.lines[-1])
    assert facts["objective"] == "proxy" and facts["target"] == "proxy:synflow"
    assert all(q["score"] is not None for q in queries(results)[0])


def test_a_named_proxy_is_an_objective_and_unknown_ones_are_refused(
    ws: Workspace, svge: Runner, tmp_path: Path
) -> None:
    r = search(svge, tmp_path / "p.json", "--strategy", "random", "--budget", "3", "--objective", "proxy:params")
    assert r.code == 0, r.stderr
    assert all(q["score"] > 0 for q in queries(tmp_path / "p.json")[0])
    bad = search(svge, tmp_path / "q.json", "--objective", "proxy:vibes")
    assert bad.code == 2 and "unknown proxy 'vibes'" in bad.stderr


@pytest.mark.parametrize("features", ["latent+proxies", "latent+proxy-prior"])
def test_pool_search_on_latents_and_proxies_reads_them_from_the_workspace_cache(
    ws: Workspace, svge: Runner, tmp_path: Path, features: str
) -> None:
    pool = NB201.enumerate_dataset()
    hashes = [NB201.hash(pool.arch(i)) for i in range(len(pool))]
    cache = ProxyCache(cache_path(ws, "nb201"), "nb201")
    rng = np.random.default_rng(0)
    for name in DEFAULT_PROXIES["nb201"]:
        cache.add(settings_for(NB201).key(name), hashes, rng.uniform(1, 100, len(hashes)))
    cache.save()
    results = tmp_path / "p.json"
    r = search(svge, results, "--strategy", "pool", "--budget", "15", "--features", features, "--json")
    assert r.code == 0, r.stderr
    assert "computing" not in r.stderr  # every proxy came from the cache
    facts = json.loads(r.lines[-1])
    assert facts["features"] == features and len(queries(results)[0]) == 15
    assert facts["best"]["score"] == pytest.approx(score_of(facts["best"]["arch"]))
    other = search(svge, tmp_path / "q.json", "--strategy", "pool", "--budget", "15")
    assert other.code == 0 and proposed(tmp_path / "q.json") != proposed(results)  # the proxies steer the search
    resumed = search(svge, results, "--strategy", "pool", "--budget", "15", "--resume")
    assert_one_line_error(resumed, "cannot resume", "features")
