"""Options and I/O shared by the subcommands, so every command spells them the same way."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import click

from ..errors import SvgeError
from ..spaces import SPACES

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


def write_text_lines(path: str, lines: Iterable[str]) -> None:
    """Write lines to stdout, or atomically to a file (the old file survives a failure)."""
    if path == "-":
        for line in lines:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            for line in lines:
                f.write(line + "\n")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
