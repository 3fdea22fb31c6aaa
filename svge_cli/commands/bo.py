"""`svge bo`: search a space for its best cell with a query budget (pool, the paper's latent BO, baselines)."""

from __future__ import annotations

from typing import Any

import click

from svge_cli.commands.common import checkpoint_option, device_option, json_option, seed_option, space_option
from svge_cli.console import Ui, emit_json
from svge_cli.errors import SvgeError
from svge_cli.search import report
from svge_cli.search.catalog import STRATEGIES
from svge_cli.search.cluster import ClusterOptions, Executor, parse_gpus
from svge_cli.search.latent import DEFAULT_ATTEMPTS, DEFAULT_INIT, DEFAULT_ITERS, LatentSettings
from svge_cli.search.objectives import DEFAULT_PROXY, DEFAULT_TIMEOUT, OBJECTIVE_KINDS, PROXY_PREFIX, parse_objective
from svge_cli.search.options import SearchOptions
from svge_cli.search.pool_bo import DEFAULT_POOL, FEATURES
from svge_cli.search.registry import entries, entry
from svge_cli.search.runner import DEFAULT_BUDGET, Plan, StrategyRequest, TrialRecord, default_strategy
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
    help="; ".join(f"{e.name} = {e.summary}" for e in entries())
    + " [default: pool where the space can be listed (NB201, NB101), else latent].",
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
    help="What pool search's GP sees: the checkpoint's latent means; the same beside the space's default zero-cost "
    "proxies (latent+proxies, computed once per cell and cached); the latent means over a prior mean that a ridge "
    "regression on those proxies predicts (latent+proxy-prior); or one-hot cells (to measure what the latent "
    "space adds).",
)
@click.option(
    "--iters",
    type=click.IntRange(min=0),
    default=None,
    help=f"BO rounds [default: {DEFAULT_ITERS} with --strategy latent; with --workers N the same number of points, "
    "selected one by one as workers free up].",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=None,
    help="Cells queried per round [default: "
    + "; ".join(f"{e.name} {e.batch}" for e in entries())
    + "; evolution's batch of Q runs Q tournaments on the same population].",
)
@click.option(
    "--inducing", type=click.IntRange(min=1), default=500, show_default=True, help="Inducing points of the sparse GP."
)
@click.option(
    "--attempts",
    type=click.IntRange(min=1),
    default=DEFAULT_ATTEMPTS,
    show_default=True,
    help="Decodes per selected point (1 greedy, then sampled) until a valid cell not scored before.",
)
@click.option(
    "--objective",
    callback=lambda ctx, param, value: _objective_choice(value),
    default=None,
    metavar="|".join(k.choice for k in OBJECTIVE_KINDS.values()),
    help="; ".join(f"{k.choice} = {k.summary}" for k in OBJECTIVE_KINDS.values())
    + " [default: benchmark when the table labels every cell of the space, else surrogate; "
    f"without a table or an evaluator, {PROXY_PREFIX}{DEFAULT_PROXY}].",
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
@click.option(
    "--random-baseline",
    is_flag=True,
    help="Then run random search with the same budget and objective (results in NAME.random.json beside --results).",
)
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
    query, in order, to the results file.  Every evaluation is journaled (a JSON-lines
    file beside the results): --workers N, --gpus or --scheduler-file evaluate N cells
    at once, proposing a new one as each finishes, and --resume continues after Ctrl-C
    or a crash without re-running a finished cell.

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
    if strategy == "latent":
        # the design card's `--iters 10 --batch 50`: rounds of points; a --budget alone runs rounds until it is spent
        latent = LatentSettings(init, iters if iters is not None or budget is not None else DEFAULT_ITERS,
                                batch or entry(strategy).batch, inducing, attempts)  # fmt: skip
        req = StrategyRequest(space, strategy, budget, latent.batch, init, seed, trials, features, options, latent)
    else:
        batch = batch or entry(strategy).batch
        if budget is None:
            budget = (init or DEFAULT_POOL["init"]) + iters * batch if iters is not None else DEFAULT_BUDGET
        req = StrategyRequest(space, strategy, budget, batch, init, seed, trials, features, options)
    _search(ui, req, cluster, retries, as_json, random_baseline)


def _objective_choice(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_objective(value)
        except SvgeError as e:
            raise click.BadParameter(str(e)) from None
    return value


def _search(
    ui: Ui, req: StrategyRequest, cluster: ClusterOptions, retries: int, as_json: bool, random_baseline: bool
) -> None:
    """Prepare the search (and its random baseline), run each on the workers, print tables and the best cell."""
    from svge_cli.search import runner
    from svge_cli.search.cluster import connect

    remote = req.options.evaluator is not None and not cluster.inline
    executor = connect(cluster) if remote else None  # first: an unreachable scheduler is all the user sees
    try:
        plans = [runner.prepare(ui, req)]
        if random_baseline:
            plans.append(runner.prepare(ui, runner.baseline_request(plans[0])))
        summaries = [_run(ui, plan, cluster, executor, retries) for plan in plans]
    finally:
        if executor is not None:
            executor.close()
    main, baseline = summaries[0], (summaries[1] if random_baseline else None)
    facts = {**plans[0].meta, "results": str(plans[0].results), **main}
    if baseline is not None:
        facts["baseline"] = {"results": str(plans[1].results), **baseline}
    if as_json:
        emit_json(facts)
        return
    for trial in main["trials"]:
        if trial.get("rounds"):
            ui.table(report.rounds_table(req.space, trial))
    ui.table(report.best_table(main, plans[0].meta, baseline))
    failures = main["failures"]
    if failures["count"]:
        why = report.reasons(failures["reasons"])
        ui.note(f"{failures['count']} cell(s) failed: {why} (each with its reason in {plans[0].results})")
    best = main["best"]
    if best is None:
        raise SvgeError(f"no cell got a score: {report.reasons(failures['reasons']) or 'nothing was evaluated'}")
    name = report.score_name(plans[0].meta)
    ui.note(f"best {name}: {best['score']:.6g} (round {best['round']}); {main['wall_seconds']:.1f} s")
    click.echo(best["arch"])


def _run(ui: Ui, plan: Plan, cluster: ClusterOptions, executor: Executor | None, retries: int) -> dict[str, Any]:
    """One search to its budget with a live line; its summary (best so far at query counts, run facts)."""
    from svge_cli.search import runner

    req = plan.request
    mode = "in this process" if cluster.inline or not plan.remote else "on Dask workers, asynchronously"
    objective = plan.meta["objective_description"]
    ui.note(f"{req.strategy} search, {plan.budget} queries a trial ({mode}); objective: {objective}")
    ui.note(f"results file: {plan.results} (journal beside it)")
    with ui.progress(f"{req.strategy} search", plan.budget * req.trials) as bar:

        def on_result(trial: TrialRecord, record: dict, counts: dict) -> None:
            status = report.live(counts)
            bar.advance(1, status)
            done = len(trial.queries)
            if not ui.interactive and (done % req.batch == 0 or trial.complete):
                best = report.short(_best(trial))
                ui.note(f"[{req.strategy} seed {trial.seed}] queries {done}  best so far {best}  {status}")

        def on_round(seed: int, note: dict) -> None:
            ui.note(report.round_line(seed, note))

        try:
            run = runner.run(plan, cluster, executor, retries, on_result, ui.note, on_round)
        except KeyboardInterrupt:
            ui.note(
                f"interrupted: every finished evaluation is in {plan.results}; continue with "
                f"`svge bo --resume --results {plan.results}` and the same options"
            )
            raise
    seeds = range(req.seed, req.seed + req.trials)
    return runner.summarize(run.trials, seeds, plan.budget) | runner.run_facts(run, seeds)


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count()


def _best(trial: TrialRecord) -> float | None:
    b = trial.best()
    return None if b is None else b["score"]


COMMANDS = [bo_cmd]
