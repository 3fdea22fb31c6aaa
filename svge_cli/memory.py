"""One guard for large allocations: estimate the bytes first, refuse with one line if they cannot fit.

Without it, `svge data sample enas -n 1000000000000` or `svge decode --max-nodes
1000000` asks numpy or torch for terabytes and dies with a MemoryError (or is
killed by the kernel) after a long wait.  Callers pass an estimate that errs
low (the arrays they are about to make), so a request that could run is never
refused; the limit is the memory available now (the kernel's MemAvailable, or a
container's cgroup limit when that is lower).
"""

from __future__ import annotations

import os
from pathlib import Path

from svge_cli.errors import SvgeError

#: bytes of one cell held in memory besides its adjacency matrix (the Arch, its two arrays, a hash):
#: tracemalloc measured 580-600 B per sampled ENAS or 8-node user cell, so this errs low
ARCH_BYTES = 512

_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")


def available_bytes() -> int | None:
    """Memory this process could still allocate, or None where the system does not say."""
    system = _meminfo_available()
    if system is None:  # no /proc: free pages only (page cache not counted, so on the low side)
        system = _sysconf_available()
    found = [b for b in (system, _cgroup_headroom()) if b is not None]
    return min(found) if found else None


def ensure_fits(nbytes: float, what: str, hint: str = "ask for less") -> None:
    """SvgeError when `nbytes` (an estimate of what `what` needs) exceeds the available memory.

    Args:
        nbytes: estimated size of the allocation, in bytes.
        what: names the allocation in the error message (e.g. "the latent table").
        hint: what the user can do about it, appended to the message.
    """
    free = available_bytes()
    if free is not None and nbytes > free:
        raise SvgeError(f"{what} needs about {human(nbytes)} of memory, but {human(free)} is available: {hint}")


def human(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def _meminfo_available() -> int | None:
    try:
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_headroom() -> int | None:
    """cgroup v2: memory.max less memory.current, when a limit is set."""
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((_CGROUP / "memory.current").read_text()))
    except (OSError, ValueError):
        return None


def _sysconf_available() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
