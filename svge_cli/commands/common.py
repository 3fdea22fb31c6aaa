"""Options and I/O shared by the subcommands, so every command spells them the same way."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import click

from ..errors import SvgeError
from ..spaces import SPACES
from ..store import atomic_path

F = TypeVar("F", bound=Callable)

SPACE_CHOICE = click.Choice(sorted(SPACES))

space_argument = click.argument("space", type=SPACE_CHOICE)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
output_option = click.option("-o", "--output", default="-", show_default=True,
                             type=click.Path(dir_okay=False, allow_dash=True), help="Output file; - is stdout.")
text_format_option = click.option("--format", "fmt", type=click.Choice(["jsonl", "native"]), default="jsonl",
                                  show_default=True, help="Architecture text: JSON lines or the space's native string.")


def space_option(required: bool = False) -> Callable[[F], F]:
    return click.option("--space", type=SPACE_CHOICE, required=required, default=None,
                        help="Search space (inferred from the input or checkpoint when omitted).")


def seed_option(f: F) -> F:
    return click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")(f)


def device_option(f: F) -> F:
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                        help="Where the model runs.")(f)


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


def write_text_lines(path: str, lines: Iterable[str]) -> None:
    """Write lines to stdout, or atomically to a file (the old file survives a failure)."""
    if path == "-":
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return
    with atomic_path(Path(path)) as tmp, open(tmp, "w") as f:
        for line in lines:
            f.write(line + "\n")
