"""Performance prediction commands: finetune, predict."""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from svge_cli.arch import pad_batch
from svge_cli.artifacts import Dataset
from svge_cli.commands.common import (
    checkpoint_option,
    dataset_option,
    device_option,
    file_output_option,
    json_option,
    nproc_option,
    output_option,
    read_text_input,
    seed_option,
    space_option,
)
from svge_cli.console import Ui, emit_json, simple_table
from svge_cli.errors import SvgeError
from svge_cli.explore import plots
from svge_cli.model import checkpoints
from svge_cli.model.predictor import (
    label_column,
    labelled_dataset,
    load_predictor,
    match_truth,
    prediction_metrics,
    uncertainty_metrics,
    used_hashes,
)
from svge_cli.model.scaling import LABEL_TRANSFORMS
from svge_cli.networks.proxies import PROXIES
from svge_cli.networks.proxytable import DEFAULT_PROXIES, parse_proxies
from svge_cli.spaces import SPACES, get_space
from svge_cli.storage.archtext import read_archs
from svge_cli.storage.outputs import refuse_overwriting_inputs
from svge_cli.storage.store import write_text_lines
from svge_cli.training.finetune_run import FinetuneRequest, run_finetune
from svge_cli.training.labels import HEADS, POOLS, FinetuneConfig

labelled_dataset_option = dataset_option("Labelled dataset HDF5 [default: the workspace's import for the space].")
DEFAULTS = FinetuneConfig()
DEFAULT_PROXY_SETS = "; ".join(f"{space}: {','.join(names)}" for space, names in DEFAULT_PROXIES.items())


#: each built-in space's default label column, for --help
DEFAULT_TARGETS = ", ".join(f"{name}: {sp.default_target}" for name, sp in SPACES.items())


@click.command("finetune")
@space_option(required=True)
@click.option(
    "--labels",
    "n_labels",
    type=int,
    required=True,
    help="How many labelled cells to fine-tune on (drawn at random, seeded).",
)
@click.option(
    "--target",
    default=None,
    help=f"Label column to predict [default: {DEFAULT_TARGETS}].",
)
@checkpoint_option
@labelled_dataset_option
@click.option(
    "--pool",
    type=click.Choice(POOLS),
    default="all",
    show_default=True,
    help="Draw from every labelled cell, or from the dataset's train split only (e.g. D-VAE's ENAS split).",
)
@click.option(
    "--head",
    "head",
    type=click.Choice(HEADS),
    default=DEFAULTS.head,
    show_default=True,
    help="gp: exact GP on the frozen VAE's latent means (with --onehot, beside the one-hot cell), with "
    "uncertainty; mlp: the paper's joint training of the VAE and a regressor.",
)
@click.option(
    "--onehot/--latent-only",
    default=DEFAULTS.onehot,
    show_default=True,
    help="Whether the GP head reads the one-hot cell (ops + adjacency) beside the latent mean.",
)
@click.option(
    "--proxies",
    "proxies",
    default=None,
    metavar="NAMES",
    help="Zero-cost proxies the GP head reads beside the latent mean: comma-separated names "
    f"({', '.join(PROXIES)}), 'none' for latents and one-hot cells only [default: the measured set per space: "
    f"{DEFAULT_PROXY_SETS}; none with --head mlp].  Computed once per cell and cached in the workspace.",
)
@click.option(
    "--label-transform",
    type=click.Choice(LABEL_TRANSFORMS),
    default=DEFAULTS.label_transform,
    show_default=True,
    help="rank-gauss: labels mapped monotonically onto a normal before fitting "
    "(long tails of failed cells stop dominating); standard: (y - mean) / std.",
)
@click.option(
    "--heads",
    type=click.IntRange(min=1),
    default=DEFAULTS.heads,
    show_default=True,
    help="mlp only: regressors on the shared encoder; more than one reports their spread as uncertainty.",
)
@click.option(
    "--ranking-weight",
    type=click.FloatRange(min=0),
    default=DEFAULTS.ranking_weight,
    show_default=True,
    help="mlp only: weight of a pairwise logistic ranking loss beside the MSE.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS.epochs, show_default=True, help="mlp only.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS.lr, show_default=True)
@click.option(
    "--regression-share",
    type=click.FloatRange(0, 1),
    default=DEFAULTS.regression_share,
    show_default=True,
    help="p in loss = (1 - p) * VAE loss + p * regression MSE.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=DEFAULTS.patience,
    show_default=True,
    help="Stop after this many epochs without a better validation MSE.",
)
@file_output_option(
    "Checkpoint to write [default: <workdir>/<space>/checkpoints/finetuned-<target>-<N>.h5].", dash=False
)
@nproc_option(
    "--head mlp: train in N local processes (DistributedDataParallel; one GPU each on CUDA); --batch-size "
    "stays the global batch, the result is that of one process. On a cluster use torchrun (docs/scale.md)."
)
@seed_option
@device_option
@click.pass_obj
def finetune_cmd(
    ui: Ui,
    space: str,
    n_labels: int,
    target: str | None,
    checkpoint: str | None,
    dataset: str | None,
    pool: str,
    head: str,
    onehot: bool,
    proxies: str | None,
    label_transform: str,
    heads: int,
    ranking_weight: float,
    epochs: int,
    batch_size: int,
    lr: float,
    regression_share: float,
    patience: int,
    output: str | None,
    nproc: int,
    seed: int,
    device: str,
) -> None:
    """Fit a performance predictor on N labelled cells (paper Sec. IV-C).

    By default (--head gp) an exact GP with a Matern 5/2 ARD kernel is fitted on
    the pretrained VAE's latent means beside the one-hot cell, on rank-gauss
    transformed labels: the measured best in docs/results.md, in a minute or two
    on a CPU, with an uncertainty per prediction.  --head mlp trains the VAE and
    a regressor jointly, as in the paper.

    The cells come from an imported dataset (`svge data import`); cells whose
    label is NaN are skipped, never drawn.  A tenth of the N cells is kept for
    validation and picks the best epoch; every other labelled cell stays unseen,
    for `svge predict --truth`.  The checkpoint carries the regressor and becomes
    the space's latest.

    \b
    Example:
      svge data import nb201 nb201_cifar10.csv
      svge finetune --space nb201 --labels 1000
      svge finetune --space nb201 --labels 100 --proxies synflow,naswot
    """
    refuse_overwriting_inputs(
        {"-o": output},
        {
            "checkpoint": checkpoint or ui.workspace.latest_checkpoint(space),
            "--dataset": dataset or ui.workspace.dataset_path(space),
        },
    )
    sp = get_space(space)
    if head != "gp" and proxies is not None and parse_proxies(proxies, sp):
        raise SvgeError("--proxies are features of the GP head: use --head gp, or --proxies none")
    cfg = FinetuneConfig(
        head=head,
        onehot=onehot,
        proxies=parse_proxies(proxies, sp) if head == "gp" else (),
        label_transform=label_transform,
        heads=heads,
        ranking_weight=ranking_weight,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        regression_share=regression_share,
        patience=patience,
        seed=seed,
    )
    req = FinetuneRequest(
        space=space,
        labels=n_labels,
        target=target,
        checkpoint=checkpoint,
        dataset=dataset,
        pool=pool,
        output=output,
        device=device,
        config=cfg,
        nproc=nproc,
    )
    result = run_finetune(ui, req)
    if result is not None:  # rank 0 (or the launcher) speaks for the run
        click.echo(f"checkpoint: {result}")


@click.command("predict")
@click.argument("archs", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@space_option()
@checkpoint_option
@click.option("--truth", default=None, help="Label column to compare with: prints MSE, RMSE, correlations, top-k.")
@labelled_dataset_option
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="k of the top-k overlap (higher scores are better).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Draw predicted vs true scores (needs --truth) to a .png or .svg file; the top-k cells by truth "
    "and by prediction are highlighted.",
)
@click.option(
    "--std",
    "with_std",
    is_flag=True,
    help="Print each score's uncertainty (one standard deviation, from a GP or an ensemble head) beside it.",
)
@output_option
@json_option
@device_option
@click.pass_obj
def predict_cmd(
    ui: Ui,
    archs: str,
    space: str | None,
    checkpoint: str | None,
    truth: str | None,
    dataset: str | None,
    top_k: int,
    plot: str | None,
    with_std: bool,
    output: str,
    as_json: bool,
    device: str,
) -> None:
    """Predict the score of each architecture (a text file, or - for stdin) with a fine-tuned checkpoint.

    Prints one score per input line, in the target's units.  With --truth COLUMN
    the cells are looked up in the dataset, and those the checkpoint was not
    fine-tuned on are scored against the truth.

    \b
    Example:
      svge predict cells.txt --truth cifar10_valid_val --plot scatter.png
    """
    if plot is not None:
        if truth is None:
            raise SvgeError("--plot draws predicted against true scores: it needs --truth COLUMN")
        plots.figure_format(plot)
    lines, name = read_text_input(archs)
    records = read_archs(lines, get_space(space) if space else None, name)
    sp = records[0].space
    ck, ck_path = checkpoints.resolve(ui.workspace, sp.name, checkpoint, ui.note)
    refuse_overwriting_inputs(
        {"-o": output, "--plot": plot}, {"ARCHS": archs, "checkpoint": ck_path, "--dataset": dataset}
    )
    predictor = load_predictor(ck, checkpoints.pick_device(device), ui)
    truth_data = _truth_column(ui, sp, dataset, truth) if truth is not None else None  # bad input fails first
    cells = [r.arch for r in records]
    scores, spread = predictor.with_spread(*pad_batch(cells))
    if with_std and spread is None:
        raise SvgeError(
            "this checkpoint's head gives no uncertainty: fine-tune with --head gp (the default) "
            "or --head mlp --heads 5"
        )
    facts: dict[str, Any] = {"space": sp.name, "target": predictor.target, "checkpoint": str(ck_path)}
    if truth is not None:
        facts["evaluation"] = _evaluate(
            ui, [sp.hash(a) for a in cells], scores, spread, truth, truth_data, used_hashes(ck), top_k, plot
        )
    ui.note(f"predicted from {predictor.describe()}")
    if as_json:
        emit_json(facts | {"predictions": scores} | ({"std": spread} if spread is not None else {}))
        return
    if with_std:
        write_text_lines(output, (f"{s:.6g}\t{d:.3g}" for s, d in zip(scores, spread)))
    else:
        write_text_lines(output, (f"{s:.6g}" for s in scores))


def _truth_column(ui: Ui, sp, dataset: str | None, column: str) -> tuple[Dataset, str, np.ndarray]:
    """The labelled dataset, its name and the values of `column`; SvgeError when either is missing."""
    ds, source = labelled_dataset(ui.workspace, sp, dataset)
    return ds, source, label_column(ds, column, source)


def _evaluate(
    ui: Ui,
    hashes: list[str],
    scores: np.ndarray,
    spread: np.ndarray | None,
    column: str,
    truth_data: tuple[Dataset, str, np.ndarray],
    used: set[str],
    top_k: int,
    plot: str | None,
) -> dict[str, Any]:
    """Metrics on the input cells that the dataset has a truth for and the regressor has not seen."""
    ds, source, values = truth_data
    found = match_truth(hashes, ds, values, used)
    left_out = (
        f"{found.used:,} cells the checkpoint was fine-tuned on and {found.unknown:,} "
        f"without a {column} value in {source}"
    )
    if len(found.positions) < 2:
        raise SvgeError(
            f"only {len(found.positions)} of {len(hashes):,} input cells can be compared "
            f"(left out: {left_out}): at least 2 are needed"
        )
    if found.used or found.unknown:
        ui.note(f"left out {left_out}")
    pred = scores[found.positions]
    metrics = prediction_metrics(found.truth, pred, top_k)
    if spread is not None:
        metrics |= uncertainty_metrics(found.truth, pred, spread[found.positions])
    ui.table(
        simple_table(f"predicted vs true {column}", ["metric", "value"], [[k, f"{v:.6g}"] for k, v in metrics.items()])
    )
    if plot is not None:
        plots.prediction_scatter(
            plot,
            found.truth,
            pred,
            column,
            metrics,
            top_k=metrics["top_k"],
            spread=None if spread is None else spread[found.positions],
        )
        ui.note(f"wrote {plot}")
    return metrics | {"left_out_used": found.used, "left_out_unknown": found.unknown, "dataset": source}


COMMANDS = [finetune_cmd, predict_cmd]
