"""Registry of search spaces by name."""
from __future__ import annotations

from ..arch import ArchError
from .base import SearchSpace
from .enas import EnasSpace
from .nb101 import NB101Space
from .nb201 import NB201Space

SPACES: dict[str, SearchSpace] = {s.name: s for s in (EnasSpace(), NB101Space(), NB201Space())}


def get_space(name: str) -> SearchSpace:
    """The space called `name`; ArchError listing the known names otherwise."""
    try:
        return SPACES[name]
    except KeyError:
        raise ArchError(f"unknown search space {name!r} (known: {', '.join(SPACES)})") from None


__all__ = ["SPACES", "SearchSpace", "get_space"]
