"""Model commands: train-vae, encode, decode, evaluate."""

from __future__ import annotations

from dataclasses import asdict

import click

from svge_cli.arch import pad_batch
from svge_cli.artifacts import Latents
from svge_cli.commands.common import (
    checkpoint_option,
    dataset_option,
    device_option,
    json_option,
    nproc_option,
    output_option,
    read_text_input,
    refuse_binary_to_terminal,
    seed_option,
    space_option,
    text_format_option,
)
from svge_cli.console import Ui, emit_json, simple_table
from svge_cli.errors import SvgeError
from svge_cli.evaluation.abilities import SHARES, decodes_needed
from svge_cli.evaluation.abilities import evaluate as evaluate_abilities
from svge_cli.explore import plots
from svge_cli.model import checkpoints, codec
from svge_cli.model.predictor import latent_scores
from svge_cli.spaces import get_space
from svge_cli.storage import store
from svge_cli.storage.archtext import format_arch, read_archs
from svge_cli.storage.outputs import refuse_overwriting_inputs
from svge_cli.storage.store import write_text_lines
from svge_cli.training.vae import TrainRequest, held_out_split, train_vae


@click.command("train-vae")
@space_option(required=True)
@dataset_option("Dataset HDF5 [default: the workspace's import for the space, else the embedded default].")
@click.option(
    "--model",
    "model_kind",
    type=click.Choice(["svge", "dgmg"]),
    default="svge",
    show_default=True,
    help="svge = two-sided decoder; dgmg = the paper's forward-only ablation.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Epochs [default: per space; 10 for ENAS and NB201, about 10 min on a 2-core CPU].",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Batch size [default: per space].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Peak learning rate.")
@click.option("--limit", type=click.IntRange(min=2), default=None, help="Train on a seeded subset of N cells.")
@click.option("--eval-every", type=click.IntRange(min=1), default=None, help="Test reconstruction every k epochs.")
@click.option(
    "--grad-clip",
    type=click.FloatRange(min=0),
    default=None,
    help="Clip the gradient norm (0 = off) [default: 1.0, paper schedule 0].",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default=None,
    help="bf16 runs the matmuls on bfloat16 inputs; faster only where torch has fast bf16 kernels for "
    "the CPU (with torch 2.13 on an AVX512-BF16 Xeon it was slower than fp32; docs/results.md) "
    "[default: fp32; --resume keeps the run's].",
)
@click.option(
    "--warmup",
    "warmup_steps",
    type=click.IntRange(min=0),
    default=None,
    help="Ramp the learning rate up over the first N steps [default: 0]; helps with --init-from.",
)
@click.option(
    "--paper", is_flag=True, help="The paper's schedule: 300 epochs, lr 1e-4 reduced on plateau, batch 32 (NB101: 128)."
)
@click.option("--resume", is_flag=True, help="Continue the last run of this space from its last checkpoint.")
@click.option(
    "--init-from",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Start a fresh run from this checkpoint's weights (e.g. a shipped one); "
    "schedule, optimizer and split are the new run's.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the run's last.h5 [default: <workdir>/<space>/checkpoints/run-<time>].",
)
@nproc_option(
    "Train in N local processes (DistributedDataParallel; one GPU each on CUDA); --batch-size stays "
    "the global batch. On a cluster use torchrun instead (docs/scale.md)."
)
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="With --nproc: restart every process from the last checkpoint up to N times after one fails.",
)
@seed_option
@device_option
@click.pass_obj
def train_vae_cmd(
    ui: Ui,
    space: str,
    dataset: str | None,
    model_kind: str,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    limit: int | None,
    eval_every: int | None,
    grad_clip: float | None,
    precision: str | None,
    warmup_steps: int | None,
    paper: bool,
    resume: bool,
    init_from: str | None,
    out_dir: str | None,
    nproc: int,
    max_restarts: int,
    seed: int,
    device: str,
) -> None:
    """Train the SVGe autoencoder, unsupervised, on the architectures of a space.

    Each run gets its own folder; last.h5 is written atomically after every epoch,
    so Ctrl-C keeps the last complete epoch, and --resume continues the newest run.

    \b
    Example:
      svge train-vae --space nb201 --epochs 5 --limit 2000
      svge train-vae --space nb101 --nproc 4 --batch-size 512
    """
    if resume and init_from:
        raise SvgeError("--resume continues a run's own weights; --init-from starts a new run: pass one of them")
    if max_restarts and nproc == 1:
        raise SvgeError("--max-restarts restarts the processes of --nproc N (under torchrun, give it to torchrun)")
    req = TrainRequest(
        space=space,
        dataset=dataset,
        model_kind=model_kind,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        limit=limit,
        eval_every=eval_every,
        grad_clip=grad_clip,
        precision=precision,
        warmup_steps=warmup_steps,
        paper=paper,
        resume=resume,
        init_from=init_from,
        out_dir=out_dir,
        seed=seed,
        device=device,
        nproc=nproc,
        max_restarts=max_restarts,
    )
    result = train_vae(ui, req)
    if result is not None:  # rank 0 (or the launcher) speaks for the run
        click.echo(f"checkpoint: {result}")


@click.command("encode")
@click.argument("archs", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@space_option()
@checkpoint_option
@output_option
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also draw the latents' first two principal components (.png or .svg), coloured by "
    "predicted score when the checkpoint is fine-tuned.",
)
@device_option
@click.pass_obj
def encode_cmd(
    ui: Ui, archs: str, space: str | None, checkpoint: str | None, output: str, plot: str | None, device: str
) -> None:
    """Encode architectures (a text file, or - for stdin) into latents (HDF5).

    \b
    Example:
      svge data sample enas -n 3 | svge encode - -o latents.h5
    """
    refuse_binary_to_terminal(output)
    lines, name = read_text_input(archs)
    records = read_archs(lines, get_space(space) if space else None, name)
    sp = records[0].space
    ck, ck_path, model = checkpoints.load_model(ui.workspace, sp.name, checkpoint, device, ui.note)
    refuse_overwriting_inputs({"-o": output, "--plot": plot}, {"ARCHS": archs, "checkpoint": ck_path})
    cells = [r.arch for r in records]
    mu, logvar = codec.encode_archs(model, cells)
    if plot is not None:  # drawn first: a bad picture path then leaves no latents file behind
        plots.latent_pca(
            plot, mu, latent_scores(ck, mu), f"predicted {ck.meta.get('target')}", f"{sp.name} latent space"
        )
    ops, adj, n = pad_batch(cells)
    store.save_latents(output, Latents(sp.name, mu, logvar, [sp.hash(a) for a in cells], ck.fingerprint(), ops, adj, n))
    if output != "-":
        ui.note(f"encoded {len(cells)} {sp.name} cells into {output}")


@click.command("decode")
@click.argument("latents", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@checkpoint_option
@click.option(
    "--attempts",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="1 = greedy decode; K > 1 keeps the first valid of K sampled decodes.",
)
@click.option("--max-nodes", type=click.IntRange(min=2), default=None, help="Allow larger cells than in training.")
@output_option
@text_format_option
@seed_option
@device_option
@click.pass_obj
def decode_cmd(
    ui: Ui,
    latents: str,
    checkpoint: str | None,
    attempts: int,
    max_nodes: int | None,
    output: str,
    fmt: str,
    seed: int,
    device: str,
) -> None:
    """Decode latents (HDF5 file, or - for stdin) into architectures as text.

    Invalid decodes are kept in place and marked: in JSON lines with "valid": false
    and the reason, in native format as a '# invalid: ...' line.

    \b
    Example:
      svge encode archs.jsonl -o - | svge decode - --format native
    """
    lat = store.load_latents(latents)
    sp = get_space(lat.space)
    ck, ck_path, model = checkpoints.load_model(ui.workspace, sp.name, checkpoint, device, ui.note)
    refuse_overwriting_inputs({"-o": output}, {"LATENTS": latents, "checkpoint": ck_path})
    if lat.checkpoint and lat.checkpoint != ck.fingerprint():
        ui.note(f"note: these latents were encoded by checkpoint {lat.checkpoint}, decoding with {ck.fingerprint()}")
    if lat.mu.shape[1] != model.cfg.latent:
        raise SvgeError(
            f"{'stdin' if latents == '-' else latents}: latents of dimension {lat.mu.shape[1]}, but the "
            f"checkpoint's model decodes dimension {model.cfg.latent}"
        )
    decoded = codec.decode_latents(model, sp, lat.mu, attempts=attempts, seed=seed, max_nodes=max_nodes)
    write_text_lines(output, (_decoded_line(d, sp, fmt) for d in decoded))
    bad = sum(not d.valid for d in decoded)
    if bad:
        ui.note(f"{bad} of {len(decoded)} decoded graphs are not valid {sp.name} cells (marked in the output)")


def _decoded_line(d: codec.Decoded, sp, fmt: str) -> str:
    if d.valid:
        return format_arch(d.arch, sp, fmt)
    if fmt == "native":
        return f"# invalid: {d.reason}"
    return format_arch(d.arch, sp, "jsonl", {"valid": False, "reason": d.reason})


@click.command("evaluate")
@space_option()
@checkpoint_option
@dataset_option("Dataset the checkpoint was trained on [default: as train-vae chooses].")
@click.option("--encodes", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--decodes", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--prior-points", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use only the first N test cells: time falls in proportion, and the "
    "reconstruction figure's standard error grows as 1/sqrt(N) (about 0.16 points at N=2000 for 99.5%; "
    "NB101's full tenth, 42k cells x 100 decodes, takes hours on a CPU).",
)
@json_option
@seed_option
@device_option
@click.pass_obj
def evaluate_cmd(
    ui: Ui,
    space: str | None,
    checkpoint: str | None,
    dataset: str | None,
    encodes: int,
    decodes: int,
    prior_points: int,
    limit: int | None,
    as_json: bool,
    seed: int,
    device: str,
) -> None:
    """Measure the autoencoder abilities of the paper's Table I, and ISO.

    Reconstruction accuracy on the held-out cells (ENCODES x DECODES sampled, and
    greedy), validity / uniqueness / novelty of PRIOR_POINTS x DECODES decodes
    from the prior scaled to the training latents, and the share of renumbered
    (isomorphic) cells that land on the same latent point.  Validity is the
    paper's (valid DAGs: every vertex on an input-output path); validity_in_space
    also applies the space's budgets (NB101: at most 9 edges).

    \b
    Example:
      svge evaluate --space nb201 --prior-points 200 --limit 500
    """
    space = space or ui.workspace.latest_space(ui.note)
    if space is None:
        raise SvgeError("no space given and no checkpoint in the workspace: pass --space")
    sp = get_space(space)
    ck, ck_path, model = checkpoints.load_model(ui.workspace, sp.name, checkpoint, device, ui.note)
    ds, train_idx, test_idx = held_out_split(ui.workspace, sp, ck, dataset)
    if limit is not None:
        test_idx = test_idx[:limit]
    total = decodes_needed(len(test_idx), encodes, decodes, prior_points)
    with ui.progress("evaluate (graphs decoded)", total=total) as bar:
        result = evaluate_abilities(
            model,
            sp,
            ds,
            train_idx,
            test_idx,
            encodes,
            decodes,
            prior_points,
            seed,
            step=lambda what: bar.advance(0, status=what),
            on_decoded=bar.advance,
        )
    facts = asdict(result) | {"checkpoint": str(ck_path)}
    if as_json:
        emit_json(facts)
        return
    rows = [[k, _pct(facts[k])] for k in SHARES]
    ui.table(
        simple_table(
            f"{space}: autoencoder abilities ({result.test_cells} test cells, "
            f"{result.iso_pairs} ISO pairs) — {ck_path}",
            ["ability", "%"],
            rows,
        )
    )
    if ui.quiet or not ui.err.is_terminal:
        click.echo(" ".join(f"{k}={v}" for k, v in rows))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


COMMANDS = [train_vae_cmd, encode_cmd, decode_cmd, evaluate_cmd]
