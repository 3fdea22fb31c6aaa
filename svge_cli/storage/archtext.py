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
from svge_cli.spaces import SPACES, SearchSpace, get_space

#: keys of a JSON line that describe the cell; every other key is an extra (label)
CELL_KEYS = ("space", "ops", "adj")
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


def parse_json_arch(text: str, space: SearchSpace | None) -> tuple[Arch, SearchSpace, dict[str, Any]]:
    """(cell, its space, extra keys) of one JSON line; the cell is parsed, not yet checked."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ArchError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise ArchError("JSON nested too deeply to be a cell") from None
    if not isinstance(obj, dict):
        raise ArchError('a JSON line must be an object like {"space": ..., "ops": [...], "adj": [[...]]}')
    space = _json_space(obj, space)
    for key in ("ops", "adj"):
        if key not in obj:
            raise ArchError(f'missing "{key}"')
    ops = obj["ops"]
    if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
        raise ArchError('"ops" must be a list of op names')
    adj = _adjacency(obj["adj"], len(ops))
    arch = Arch(np.asarray([space.type_index(o) for o in ops], dtype=np.int64), adj)
    return arch, space, {k: v for k, v in obj.items() if k not in CELL_KEYS}


def _json_space(obj: dict[str, Any], space: SearchSpace | None) -> SearchSpace:
    name = obj.get("space")
    if name is None:
        if space is None:
            raise ArchError('no "space" key and no space given; pass --space')
        return space
    if space is not None and name != space.name:
        raise ArchError(f"holds a {name} cell, but space {space.name} is in use")
    return get_space(name)


def _adjacency(adj: Any, n: int) -> np.ndarray:
    if not isinstance(adj, list) or len(adj) != n or not all(isinstance(r, list) and len(r) == n for r in adj):
        raise ArchError(f'"adj" must be a {n} x {n} list of lists (one row per op)')
    if not all(type(v) is int and v in (0, 1) for r in adj for v in r):
        raise ArchError('"adj" entries must be 0 or 1')
    return np.asarray(adj, dtype=np.uint8)


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
    """One line of text for a cell; `extra` keys ride along in JSON lines (native strings have no room)."""
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
