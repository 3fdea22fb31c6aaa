"""Registry of search spaces: the built-in ones by name, and user spaces kept in the workspace.

A user space is declared in a JSON file (`spaces.custom`); `--space FILE.json` or
`svge data space add FILE` copies the spec into `<workdir>/spaces/<name>.json`, so
that later commands (and files that only name the space) find it by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from svge_cli.arch import ArchError
from svge_cli.spaces.base import SearchSpace
from svge_cli.spaces.enas import EnasSpace
from svge_cli.spaces.nb101 import NB101Space
from svge_cli.spaces.nb201 import NB201Space

SPACES: dict[str, SearchSpace] = {s.name: s for s in (EnasSpace(), NB101Space(), NB201Space())}
_user_dir: list[Path] = []  # the workspace's spaces folder, set once by the CLI


def use_workspace(root: Path) -> None:
    """Look for user spaces in `<root>/spaces` from now on."""
    _user_dir[:] = [Path(root) / "spaces"]


def user_space_names() -> list[str]:
    return sorted(p.stem for p in _user_dir[0].glob("*.json")) if _user_dir and _user_dir[0].is_dir() else []


def known_spaces() -> list[str]:
    return [*SPACES, *user_space_names()]


def get_space(name: str) -> SearchSpace:
    """The space called `name` (built-in or in the workspace); ArchError listing the known names otherwise."""
    if name in SPACES:
        return SPACES[name]
    from svge_cli.spaces.custom import load_spec

    if _user_dir and (_user_dir[0] / f"{name}.json").is_file():
        return load_spec(_user_dir[0] / f"{name}.json")
    raise ArchError(
        f"unknown search space {name!r} (known: {', '.join(known_spaces())}; "
        "a JSON space spec is given as --space FILE.json)"
    )


def add_user_space(path: Path) -> SearchSpace:
    """Check the spec at `path` and keep a copy in the workspace; the space it declares."""
    from svge_cli.spaces.custom import load_spec

    space = load_spec(Path(path))
    if space.name in SPACES:
        raise ArchError(f"{path}: {space.name!r} is a built-in space; give yours another name")
    if not _user_dir:
        raise ArchError("no workspace to keep user spaces in")
    target = _user_dir[0] / f"{space.name}.json"
    if target.is_file() and Path(path).resolve() != target.resolve():
        if load_spec(target).__dict__ != space.__dict__:
            raise ArchError(f"{path}: the workspace already holds another space named {space.name!r} ({target})")
    from svge_cli.atomic import atomic_path

    with atomic_path(target) as tmp:  # unique temporaries; a killed writer's are swept by the next one
        tmp.write_text(Path(path).read_text())
    return space


def resolve_space(value: str) -> SearchSpace:
    """A --space value: a space's name, or a JSON spec file (added to the workspace)."""
    if value.endswith(".json") or os.sep in value:
        return add_user_space(Path(value))
    return get_space(value)


__all__ = ["SPACES", "SearchSpace", "add_user_space", "get_space", "known_spaces", "resolve_space", "use_workspace"]
