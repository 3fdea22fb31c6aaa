"""Architectures as text, one per line: JSON lines or a space's native string.

Every command reads and writes cells through this module, so all of them accept
the same inputs: ``{"space": "nb201", "ops": [...names...], "adj": [[...]], ...}``
lines (extra keys travel along as labels) or native strings (NB201 ``|op~0|+...``,
D-VAE's ENAS rows ``[[1], [4, 0], ...]``, NB101's own form).  The kind of text is
decided once per file from its first line; blank lines and ``#`` comments are
skipped.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, NamedTuple

import numpy as np

from svge_cli.arch import Arch, ArchError
from svge_cli.spaces import SPACES, SearchSpace
from svge_cli.spaces.jsonline import CELL_KEYS, parse_json_arch

FORMATS = ("jsonl", "native")


class ArchRecord(NamedTuple):
    """One parsed line: the cell (checked, canonical), its extra keys, its space and line number."""

    arch: Arch
    extra: dict[str, Any]
    space: SearchSpace
    line: int


def read_archs(
    lines: Iterable[str], space: SearchSpace | None, source: str, node_limit: int | None = None
) -> list[ArchRecord]:
    """Parse and check every cell; ArchError("<source>, line N: reason") on the first bad line.

    With `space` None the space comes from the first line (its "space" key, or the
    one space whose native format it parses as); all lines must then agree.
    `node_limit` raises the space's node limit, for extrapolation to larger cells.

    Args:
        lines: the text to parse, one cell per line; blank lines and ``#`` comments are skipped.
        space: the space every cell must belong to; None takes it from the first line.
        source: how errors name the text (a file path or "stdin"), as in "<source>, line N".
        node_limit: the largest node count a cell may have; None keeps the space's own limit.

    Returns:
        One record per cell line, in the order of the text, each checked and in canonical form.
    """
    records: list[ArchRecord] = []
    as_json: bool | None = None
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if as_json is None:
            as_json = text.startswith("{")
        try:
            if as_json:
                arch, space, extra = parse_json_arch(text, space)
            else:
                space = space or infer_native_space(text)
                arch, extra = space.parse_native(text), {}
            arch = space.check(arch, node_limit)
        except ArchError as e:
            raise ArchError(f"{source}, line {number}: {e}") from None
        records.append(ArchRecord(arch, extra, space, number))
    if not records:
        raise ArchError(f"no architectures in {source}")
    return records


def infer_native_space(text: str) -> SearchSpace:
    """The one space whose native format parses `text`; ArchError when none or several do."""
    matches = []
    for name, space in SPACES.items():
        try:
            space.parse_native(text)
        except ArchError:
            continue
        matches.append(name)
    if len(matches) == 1:
        return SPACES[matches[0]]
    if not matches:
        raise ArchError(
            f"not a JSON line or a native string of any space ({', '.join(SPACES)}): {text[:60]!r} "
            "(pass --space to hear what is wrong with it)"
        )
    raise ArchError(f"could be a cell of {' or '.join(matches)}; pass --space")


def format_arch(arch: Arch, space: SearchSpace, fmt: str = "jsonl", extra: dict[str, Any] | None = None) -> str:
    """One line of text for a cell; `extra` keys ride along in JSON lines (native strings have no room).

    Args:
        arch: the cell to write.
        space: the space the cell belongs to, which names its ops and writes its native string.
        fmt: "jsonl" for a JSON object or "native" for the space's own string; ArchError otherwise.
        extra: keys to add to the JSON object (numpy values and non-finite floats made JSON-safe);
            ignored for native strings, and ArchError when one would overwrite space, ops or adj.

    Returns:
        The line, without a trailing newline.
    """
    if fmt == "native":
        return space.format_native(arch)
    if fmt != "jsonl":
        raise ArchError(f"unknown architecture text format {fmt!r} (known: {', '.join(FORMATS)})")
    extra = extra or {}
    clash = [k for k in CELL_KEYS if k in extra]
    if clash:
        raise ArchError(f"extra keys {clash} would overwrite the cell's own keys")
    obj = {"space": space.name, "ops": space.ops_names(arch), "adj": arch.adj.tolist()}
    obj.update({k: _plain(v) for k, v in extra.items()})
    return json.dumps(obj, allow_nan=False)


def _plain(value: Any) -> Any:
    """JSON-safe form: numpy scalars and arrays become Python values, NaN and inf become null."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
