"""The `svge` command: a Click group whose subcommands parse, call one core function, print.

Errors a user can cause end as one line on stderr and a non-zero exit code; a
traceback only with --debug.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from svge_cli import __version__
from svge_cli.console import Ui
from svge_cli.errors import USER_ERRORS
from svge_cli.spaces import use_workspace
from svge_cli.storage.workspace import Workspace

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 3


#: every subcommand: name -> (module of svge_cli.commands that defines it, one line for `svge --help`).
#: A module is imported only when one of its commands runs, so `svge --help` and `svge data ...`
#: start in a fraction of a second instead of paying for torch, BoTorch and matplotlib.
COMMANDS: dict[str, tuple[str, str]] = {
    "bo": ("bo", "Bayesian optimisation in the latent space (sparse GP, q-EI)."),
    "data": ("data", "Enumerate, sample, import and inspect architecture datasets."),
    "decode": ("model", "Decode latents (HDF5) into architectures as text."),
    "decode-circle": ("explore", "Decode a circle of latent points through a cell."),
    "encode": ("model", "Encode architectures (text) into latents (HDF5)."),
    "evaluate": ("model", "Reconstruction, validity, uniqueness, novelty and ISO."),
    "export": ("export", "Write a slim, shareable copy of a checkpoint."),
    "extrapolate": ("explore", "Rank cells larger than any seen in training."),
    "net": ("networks", "Parameters, multiply-adds and layers of a cell's benchmark network."),
    "finetune": ("predict", "Train the VAE and a performance regressor on labelled cells."),
    "predict": ("predict", "Predict the scores of architectures with a fine-tuned model."),
    "score": ("networks", "Score cells with a zero-cost proxy (synflow, snip, jacob_cov ...)."),
    "show": ("explore", "Draw a cell as a table, or as a picture with -o."),
    "train-cell": ("networks", "Train a cell's network on a local CIFAR-10 copy (also an evaluator for bo)."),
    "train-vae": ("model", "Train the SVGe autoencoder on the architectures of a space."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__package__}.commands.{COMMANDS[cmd_name][0]}")
        return {command.name: command for command in module.COMMANDS}[cmd_name]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, line) for name, (_, line) in sorted(COMMANDS.items())])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="svge")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="SVGE_WORKDIR",
    help="Workspace folder that remembers datasets and checkpoints per space [default: .svge/].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or tables on stderr.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    envvar="SVGE_THREADS",
    help="CPU threads for the model [default: one per core; use 1 on a busy machine].",
)
@click.pass_context
def cli(ctx: click.Context, workdir: str | None, debug: bool, quiet: bool, threads: int | None) -> None:
    """svge: neural architecture search in a smooth variational graph embedding (SVGe).

    \b
    Typical session:
      svge train-vae --space enas        # train the autoencoder on the embedded default
      svge evaluate --space enas         # reconstruction, validity, uniqueness, novelty
      svge encode archs.jsonl -o - | svge decode -
    """
    if "torch" in sys.modules:  # the command's module is imported before this runs; without torch no threads
        from svge_cli.model import configure_cpu

        configure_cpu(threads)
    ctx.obj = Ui(Workspace.resolve(workdir), debug=debug, quiet=quiet)
    use_workspace(ctx.obj.workspace.root)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the group, turning every failure into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="svge", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()  # `svge` or `svge data` alone: the help is the answer
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"svge: error: {_one_line(e)}", err=True)
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("svge: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error worth a line
        sys.exit(EXIT_USER_ERROR)
    except USER_ERRORS as e:
        if debug:
            traceback.print_exc()
        click.echo(f"svge: error: {e}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        click.echo(f"svge: internal error: {e.__class__.__name__}: {e} (rerun with --debug for details)", err=True)
        sys.exit(EXIT_INTERNAL)


def _one_line(e: click.ClickException) -> str:
    """A usage mistake as one line, with the way to the command's help."""
    message = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    return f"{message} (see '{ctx.command_path} --help')" if ctx is not None else message
