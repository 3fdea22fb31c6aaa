"""`svge bo`: batch Bayesian optimisation with a sparse GP in the latent space (paper IV-D)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import click

from svge_cli.commands.common import device_option, json_option, seed_option, space_option
from svge_cli.commands.model import checkpoint_option
from svge_cli.console import Ui, emit_json, simple_table
from svge_cli.errors import SvgeError
from svge_cli.search.cluster import ClusterOptions, parse_gpus
from svge_cli.search.loop import BO, RANDOM, RoundStats, Settings, Trial
from svge_cli.search.objectives import DEFAULT_TIMEOUT
from svge_cli.search.results import summarize
from svge_cli.search.runner import (
    DEFAULT_BATCH,
    DEFAULT_BUDGET,
    FEATURES,
    STRATEGIES,
    StrategyRequest,
    TrialRecord,
    default_strategy,
)
from svge_cli.search.setup import DEFAULT_INIT, OBJECTIVES, Request, SearchOptions, prepare, run
from svge_cli.search.strategies import DEFAULT_POOL
from svge_cli.spaces import get_space


@click.command("bo")
@space_option()
@checkpoint_option
@click.option(
    "--init",
    type=click.IntRange(min=2),
    default=None,
    help=f"Initial cells, queried at random [default: {DEFAULT_INIT}; with a surrogate objective, "
    "every labelled training cell, as in D-VAE, not counted as queries].",
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default=None,
    help="pool = BO over every cell of an enumerable space, ranked by a GP on their latents; latent = the "
    "paper's BO, decoding points of the latent space; random; evolution = regularised evolution "
    "[default: pool where the space can be listed (NB201, NB101), else latent].",
)
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=None,
    help=f"Queries per trial, initial cells included [default: {DEFAULT_BUDGET} for pool, random and evolution; "
    "latent: init + iters x batch].",
)
@click.option(
    "--features",
    type=click.Choice(FEATURES),
    default="latent",
    show_default=True,
    help="What pool search's GP sees: the checkpoint's latent means, or one-hot cells (to measure what the "
    "latent space adds).",
)
@click.option(
    "--iters", type=click.IntRange(min=0), default=None, help="BO rounds [default: 10 with --strategy latent]."
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=None,
    help=f"Cells queried per round [default: {DEFAULT_BATCH}; evolution 1 (a batch of Q runs Q tournaments on "
    "the same population); latent 50].",
)
@click.option(
    "--inducing", type=click.IntRange(min=1), default=500, show_default=True, help="Inducing points of the sparse GP."
)
@click.option(
    "--attempts",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Decodes per selected point (1 greedy, then sampled) until a valid cell not scored before.",
)
@click.option(
    "--objective",
    callback=lambda ctx, param, value: _objective_choice(value),
    default=None,
    metavar="|".join(OBJECTIVES),
    help="benchmark = look cells up in the imported table; surrogate = a regressor fitted on it; "
    "proxy:NAME = a zero-cost proxy of the cell's network (synflow, snip, grad_norm, jacob_cov, naswot, params, "
    "flops) [default: benchmark when the table labels every cell of the space, else surrogate; "
    "without a table or an evaluator, proxy:synflow].",
)
@click.option(
    "--evaluator",
    metavar="CMD",
    default=None,
    help="Score cells with an external program (run without a shell): JSON lines in on stdin, one score per line out.",
)
@click.option(
    "--timeout",
    "--evaluator-timeout",
    "timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds the evaluator may take per cell (0 = no limit); past it the cell is recorded as failed.",
)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Evaluations in flight at once, on a local Dask cluster of this many worker processes (1: in this "
    "process, batch by batch). With N > 1 the search is asynchronous: a new cell is proposed as each finishes.",
)
@click.option("--gpus", metavar="0,1,3", default=None, help="One local worker per listed GPU (CUDA_VISIBLE_DEVICES).")
@click.option(
    "--scheduler", metavar="tcp://HOST:PORT", default=None, help="Evaluate on a running Dask cluster's scheduler."
)
@click.option(
    "--scheduler-file",
    metavar="FILE",
    default=None,
    help="Evaluate on the Dask cluster whose scheduler wrote FILE (`dask scheduler --scheduler-file FILE`).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Times a cell goes out again after its worker was lost, before it counts as failed.",
)
@click.option(
    "--target",
    metavar="COLUMN",
    default=None,
    help="Label column to maximise [default: cifar10_valid_val / val_acc_108 / ws_acc].",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Repeat with seeds SEED .. SEED+TRIALS-1.",
)
@click.option("--random-baseline", is_flag=True, help="Also run random search at the same number of queries.")
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    default=None,
    help="Results file (JSON) [default: <workdir>/<space>/bo/bo-<time>.json].",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the search in --results (default: the newest in the workspace), same options.",
)
@click.option("--force", is_flag=True, help="Replace an existing --results file (and its journal).")
@json_option
@seed_option
@device_option
@click.pass_obj
def bo_cmd(
    ui: Ui,
    space: str | None,
    checkpoint: str | None,
    init: int | None,
    strategy: str | None,
    budget: int | None,
    features: str,
    iters: int | None,
    batch: int | None,
    inducing: int,
    attempts: int,
    objective: str | None,
    evaluator: str | None,
    timeout: float,
    workers: int,
    gpus: str | None,
    scheduler: str | None,
    scheduler_file: str | None,
    retries: int,
    target: str | None,
    trials: int,
    random_baseline: bool,
    results: str | None,
    resume: bool,
    force: bool,
    as_json: bool,
    seed: int,
    device: str,
) -> None:
    """Search for the best cell of a space with a query budget.

    pool (default for NB201, NB101): every cell's latent mean is encoded once per
    checkpoint (cached); a GP on the queried cells ranks the unqueried ones by
    expected improvement, and a batch is picked with the kriging believer.  latent
    (default elsewhere; the paper's BO): a sparse GP and q-EI in the training latents'
    bounding box, points decoded into cells not scored before.  random and evolution
    are the baselines, on the same objective.  The best cell goes to stdout in the
    space's native text, a table of best-so-far against queries to stderr, and every
    query, in order, to the results file.  pool, random and evolution journal every
    evaluation (a JSON-lines file beside the results): --workers N, --gpus or
    --scheduler-file evaluate N cells at once, proposing a new one as each finishes,
    and --resume continues after Ctrl-C or a crash without re-running a finished cell.

    \b
    Examples:
      svge data import nb201 nb201_cifar10.csv
      svge bo --space nb201 --budget 150
      svge bo --space nb201 --budget 150 --strategy evolution --trials 5
      svge bo --space nb201 --strategy latent --iters 10 --batch 50 --random-baseline
      svge bo --space nb201 --evaluator 'python examples/evaluator.py' --budget 30
      svge bo --space nb201 --evaluator 'python examples/evaluator.py' --workers 4
      svge bo --space nb201 --evaluator CMD --scheduler-file sched.json --budget 150
    """
    if results == "-":
        raise SvgeError("--results needs a file name (stdout carries the best cell)")
    space = space or ui.workspace.latest_space()
    if space is None:
        raise SvgeError("no space given and no checkpoint in the workspace: pass --space")
    strategy = strategy or default_strategy(get_space(space))
    options = SearchOptions(
        checkpoint=checkpoint,
        objective=objective,
        evaluator=evaluator,
        evaluator_timeout=timeout or None,
        target=target,
        device=device,
        results=results,
        resume=resume,
        force=force,
    )
    cluster = ClusterOptions(workers, parse_gpus(gpus), scheduler, scheduler_file)
    cluster.check(_cuda_devices)
    if init is not None and budget is not None and init > budget:
        raise SvgeError(f"--init {init} is more than --budget {budget}: the initial cells are part of the budget")
    if strategy != "latent":
        if random_baseline:
            raise SvgeError("--random-baseline is for --strategy latent; run --strategy random for the baseline")
        batch = batch or (1 if strategy == "evolution" else DEFAULT_BATCH)  # evolution: one child per tournament
        if budget is None:
            budget = (init or DEFAULT_POOL["init"]) + iters * batch if iters is not None else DEFAULT_BUDGET
        req = StrategyRequest(space, strategy, budget, batch, init, seed, trials, features, options)
        _run_strategy(ui, req, cluster, retries, as_json)
        return
    if not cluster.inline:
        raise SvgeError(
            "--strategy latent evaluates round by round in this process; --workers, --gpus and --scheduler are "
            "for pool, random and evolution"
        )
    batch = batch or 50
    if budget is not None:
        start = init or DEFAULT_INIT
        if budget <= start:
            raise SvgeError(f"--budget {budget} leaves no queries after the {start} initial cells")
        iters = math.ceil((budget - start) / batch)
    iters = 10 if iters is None else iters
    settings = Settings(
        init=init,
        iters=iters,
        batch=batch,
        inducing=inducing,
        attempts=attempts,
        seed=seed,
        trials=trials,
        random_baseline=random_baseline,
    )
    req = Request(space=space, settings=settings, options=options)
    search = prepare(ui.workspace, req, ui.note)
    ui.note(f"objective: {search.meta['objective_description']}")
    ui.note(f"results file: {search.results}")
    try:
        done = run(search, lambda t, s: ui.note(_round_line(t, s)))
    except KeyboardInterrupt:
        ui.note(
            f"interrupted: the finished rounds are in {search.results}; continue with "
            f"`svge bo --resume --results {search.results}` and the same options"
        )
        raise
    seeds = range(seed, seed + trials)
    for t in done:
        if t.seed in seeds:
            ui.table(_trial_table(t, search.meta))
    summary = summarize(done, seeds)
    facts = {**search.meta, "results": str(search.results), "settings": asdict(search.settings), **summary}
    if as_json:
        emit_json(facts)
        return
    if trials > 1:
        ui.table(_summary_table(summary, search.meta))
    best = summary[BO]["best"]
    if best is None:
        raise SvgeError("no cell got a score: see the results file for what went wrong")
    ui.note(f"best {_score_name(search.meta)}: {best['score']:.6g} (round {best['round']})")
    click.echo(best["arch"])


def _objective_choice(value: str | None) -> str | None:
    if value is None or value in ("benchmark", "surrogate"):
        return value
    if value.startswith("proxy:"):
        from svge_cli.networks.proxies import PROXIES

        if value.removeprefix("proxy:") in PROXIES:
            return value
        raise click.BadParameter(f"{value!r}: known proxies are {', '.join(PROXIES)}")
    raise click.BadParameter(f"{value!r} is not one of benchmark, surrogate, proxy:NAME")


def _score_name(meta: dict[str, Any]) -> str:
    name = meta.get("target") or "score"
    return f"{name} (SURROGATE prediction)" if meta.get("surrogate") else name


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _round_line(trial: Trial, s: RoundStats) -> str:
    gp = ""
    if s.gp:
        gp = f"  GP test RMSE {s.gp['rmse']:.3f} ll {s.gp['loglik']:.3f} r {s.gp['pearson']:.3f}"
    return (
        f"[{trial.method} seed {trial.seed}] round {s.round}: best {_fmt(s.best)}  batch mean "
        f"{_fmt(s.batch_mean)}  valid {_fmt(s.valid_share, 2)}  distinct {s.distinct}  queries {s.queries}  "
        f"({s.seconds:.1f} s){gp}"
    )


def _trial_table(trial: Trial, meta: dict[str, Any]):
    name = "random search" if trial.method == RANDOM else "BO"
    title = f"{meta['space']} {name}, seed {trial.seed}: {_score_name(meta)}"
    rows = [
        [
            s.round,
            s.queries,
            _fmt(s.best),
            _fmt(s.batch_mean),
            _fmt(s.valid_share, 2),
            s.distinct,
            "" if not s.gp else f"{s.gp['rmse']:.3f} / {s.gp['loglik']:.3f} / {s.gp['pearson']:.3f}",
        ]
        for s in trial.rounds
    ]
    return simple_table(
        title,
        ["round", "queries", "best so far", "batch mean", "share valid", "distinct cells", "GP test RMSE / ll / r"],
        rows,
    )


def _summary_table(summary: dict[str, Any], meta: dict[str, Any]):
    bo, rnd = summary[BO]["rounds"], summary.get(RANDOM, {}).get("rounds", [])
    rows = []
    for i, r in enumerate(bo):
        other = rnd[i] if i < len(rnd) else None
        rows.append(
            [
                r["round"],
                f"{r['queries']:.0f}",
                f"{_fmt(r['best_mean'])} ± {_fmt(r['best_std'])}",
                "-" if other is None else f"{_fmt(other['best_mean'])} ± {_fmt(other['best_std'])}",
            ]
        )
    return simple_table(
        f"{meta['space']}: best {_score_name(meta)} over {bo[0]['trials']} trials (mean ± std)",
        ["round", "queries", "BO", "random search"],
        rows,
    )


def _run_strategy(ui: Ui, req: StrategyRequest, cluster: ClusterOptions, retries: int, as_json: bool) -> None:
    """pool / random / evolution: run every trial on the workers, print the tables and the best cell."""
    from svge_cli.search.cluster import connect

    remote = req.options.evaluator is not None and not cluster.inline
    executor = connect(cluster) if remote else None  # first: an unreachable scheduler is all the user sees
    try:
        _search_on(ui, req, cluster, executor, retries, as_json)
    finally:
        if executor is not None:
            executor.close()


def _search_on(ui: Ui, req: StrategyRequest, cluster: ClusterOptions, executor, retries: int, as_json: bool) -> None:
    from svge_cli.search import runner

    plan = runner.prepare(ui.workspace, req, ui.note)
    mode = "in this process" if cluster.inline else "on Dask workers, asynchronously"
    ui.note(
        f"{req.strategy} search, {req.budget} queries a trial ({mode}); objective: {plan.meta['objective_description']}"
    )
    ui.note(f"results file: {plan.results} (journal beside it)")
    interrupted = (
        f"interrupted: every finished evaluation is in {plan.results}; continue with "
        f"`svge bo --resume --results {plan.results}` and the same options"
    )
    with ui.progress(f"{req.strategy} search", req.budget * req.trials) as bar:

        def on_result(trial: TrialRecord, record: dict, counts: dict) -> None:
            status = _live(counts)
            bar.advance(1, status)
            done = len(trial.queries)
            if not ui.interactive and (done % req.batch == 0 or trial.complete):
                best = _short(_best(trial))
                ui.note(f"[{req.strategy} seed {trial.seed}] queries {done}  best so far {best}  {status}")

        try:
            report = runner.run(plan, cluster, executor, retries, on_result, ui.note)
        except KeyboardInterrupt:
            ui.note(interrupted)
            raise
    seeds = range(req.seed, req.seed + req.trials)
    summary = runner.summarize(report.trials, seeds, req.budget) | runner.run_facts(report, seeds)
    facts = {**plan.meta, "results": str(plan.results), **summary}
    if as_json:
        emit_json(facts)
        return
    name = plan.meta.get("target") or "score"
    rows = [[a["queries"], f"{_short(a['best_mean'])} ± {_short(a['best_std'])}"] for a in summary["at_queries"]]
    ui.table(
        simple_table(
            f"{req.space} {req.strategy} search: best {name} so far, mean ± std over {len(summary['trials'])} trial(s)",
            ["queries", f"best {name}"],
            rows,
        )
    )
    failures = summary["failures"]
    if failures["count"]:
        why = _reasons(failures["reasons"])
        ui.note(f"{failures['count']} cell(s) failed: {why} (each with its reason in {plan.results})")
    best = summary["best"]
    if best is None:
        raise SvgeError(f"no cell got a score: {_reasons(failures['reasons']) or 'nothing was evaluated'}")
    ui.note(f"best {name}: {best['score']:.6g} (round {best['round']}); {summary['wall_seconds']:.1f} s")
    click.echo(best["arch"])


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count()


def _live(counts: dict) -> str:
    return (
        f"in flight {counts['in_flight']}  finished {counts['finished']}  failed {counts['failed']}  "
        f"best {_short(counts['best'])}  workers {counts['workers']}"
    )


def _best(trial: TrialRecord) -> float | None:
    b = trial.best()
    return None if b is None else b["score"]


def _reasons(reasons: dict[str, int]) -> str:
    return "; ".join(f"{n} x {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))


def _short(x: float | None) -> str:
    """Scores in a few digits whatever their scale (accuracies, or proxies such as synflow's 1e36)."""
    return "-" if x is None else f"{x:.6g}"


COMMANDS = [bo_cmd]
