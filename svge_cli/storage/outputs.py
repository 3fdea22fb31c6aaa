"""The one rule for output paths: no command writes over one of its own inputs.

Every write is atomic (a temporary renamed over the target), so `svge encode a.txt
-o a.txt` would read a.txt, then replace it with latents: exit 0, input gone.
Commands therefore name their inputs and outputs once their paths are known and
before any work starts; an output that is the same file as an input, by its name,
a symbolic link or a hard link (`os.path.samefile`), is refused, and so are two
outputs that name the same file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from svge_cli.errors import StoreError
from svge_cli.storage.store import STDIO

PathLike = str | Path | None


def refuse_overwriting_inputs(
    outputs: Mapping[str, PathLike], inputs: Mapping[str, PathLike] | Iterable[tuple[str, PathLike]]
) -> None:
    """StoreError when an output names an input file or another output; labels are the options' names."""
    named = {label: str(p) for label, p in outputs.items() if p is not None and str(p) != STDIO}
    sources = list(inputs.items() if isinstance(inputs, Mapping) else inputs)
    for label, out in named.items():
        for in_label, source in sources:
            if source is not None and _same_file(out, source):
                shown = "stdin" if str(source) == STDIO else f"{in_label}: {source}"
                raise StoreError(
                    f"{out}: {label} is the same file as the input ({shown}); writing it would destroy "
                    "the input, so nothing was done: choose another output file"
                )
    labels = list(named)
    for i, first in enumerate(labels):
        for second in labels[i + 1 :]:
            a, b = named[first], named[second]
            if os.path.realpath(a) == os.path.realpath(b) or _same_file(a, b):
                raise StoreError(f"{b}: {first} and {second} name the same file; give each output its own file")


def _same_file(out: str, source: str | Path) -> bool:
    """Whether writing `out` would replace `source` (stdin included, when it is a redirected file)."""
    try:
        if not os.path.exists(out):
            return False
        if str(source) == STDIO:
            return os.path.samestat(os.stat(out), os.fstat(sys.stdin.fileno()))
        return os.path.exists(source) and os.path.samefile(out, source)
    except (OSError, ValueError, AttributeError):  # stdin with no file behind it (a pipe, a test stream)
        return False
