"""Options and I/O shared by the subcommands, so every command spells them the same way."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, TypeVar

import click

from svge_cli.errors import SvgeError
from svge_cli.spaces import known_spaces, resolve_space

F = TypeVar("F", bound=Callable)


class SpaceParam(click.ParamType):
    """A space's name, or a JSON spec file declaring a user space (kept in the workspace); gives the name."""

    name = "space"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "SPACE"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return resolve_space(value).name
        except SvgeError as e:
            self.fail(str(e), param, ctx)


SPACE_CHOICE = SpaceParam()

space_argument = click.argument("space", type=SPACE_CHOICE)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
output_option = click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Output file; - is stdout.",
)
text_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "native"]),
    default="jsonl",
    show_default=True,
    help="Architecture text: JSON lines or the space's native string.",
)


checkpoint_option = click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Checkpoint to use [default: the workspace's latest, else the shipped one].",
)


def dataset_option(help: str) -> Callable[[F], F]:
    """`--dataset FILE`: an HDF5 dataset; each command says what its default is."""
    return click.option("--dataset", type=click.Path(dir_okay=False), default=None, help=help)


def file_output_option(help: str, required: bool = False, dash: bool = True) -> Callable[[F], F]:
    """`-o/--output FILE` for a file a command writes (`-` is stdout where `dash`); no default."""
    return click.option(
        "-o", "--output", type=click.Path(dir_okay=False, allow_dash=dash), required=required, default=None, help=help
    )


def nproc_option(help: str) -> Callable[[F], F]:
    """`--nproc N`: train in N local processes (the elastic launcher); each command says how it shares the work."""
    return click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True, help=help)


def space_option(required: bool = False) -> Callable[[F], F]:
    return click.option(
        "--space",
        type=SPACE_CHOICE,
        required=required,
        default=None,
        help=f"Search space ({', '.join(known_spaces())}) or a JSON spec of your own "
        "(inferred from the input or checkpoint when omitted).",
    )


def seed_option(f: F) -> F:
    return click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(f)


def device_option(f: F) -> F:
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default="auto",
        show_default=True,
        help="Where the model runs.",
    )(f)


def read_text_input(path: str) -> tuple[list[str], str]:
    """Lines of a text file, or of stdin for "-", with a name for messages."""
    if path == "-":
        if sys.stdin.isatty():
            raise SvgeError("expected architectures on stdin, but stdin is a terminal (give a file or pipe one in)")
        raw = sys.stdin.buffer.read()
        name = "stdin"
    else:
        p = Path(path)
        if not p.is_file():
            raise SvgeError(f"{path}: no such file")
        raw = p.read_bytes()
        name = path
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SvgeError(f"{name}: not UTF-8 text (binary data where architectures were expected)") from None
    return text.splitlines(), name


def refuse_binary_to_terminal(output: str) -> None:
    """HDF5 bytes on a screen help nobody and can upset the terminal."""
    if output == "-" and sys.stdout.isatty():
        raise SvgeError("refusing to write binary HDF5 to a terminal: use -o FILE or pipe into another command")
