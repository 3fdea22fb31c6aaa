"""A cell as one JSON line, {"space": ..., "ops": [...], "adj": [[...]]}: the text every space (user spaces
included) reads, so it lives with the spaces; `svge_cli.storage.archtext` reads whole files of it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from svge_cli.arch import Arch, ArchError
from svge_cli.spaces import SearchSpace, get_space

#: keys of a JSON line that describe the cell; every other key is an extra (label)
CELL_KEYS = ("space", "ops", "adj")


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
    if space is None:
        return get_space(name)
    if name != space.name:
        raise ArchError(f"holds a {name} cell, but space {space.name} is in use")
    return space


def _adjacency(adj: Any, n: int) -> np.ndarray:
    if not isinstance(adj, list) or len(adj) != n or not all(isinstance(r, list) and len(r) == n for r in adj):
        raise ArchError(f'"adj" must be a {n} x {n} list of lists (one row per op)')
    if not all(type(v) is int and v in (0, 1) for r in adj for v in r):
        raise ArchError('"adj" entries must be 0 or 1')
    return np.asarray(adj, dtype=np.uint8)
