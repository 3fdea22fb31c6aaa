"""The workspace's cache of zero-cost proxy values: each cell's proxies are computed once.

One HDF5 file per space, ``<workdir>/<space>/proxies.h5``: attributes ``kind``
(``svge-proxy-cache``), ``format`` (FORMAT_VERSION) and ``space``; one group
per proxy and settings key (`ProxySettings.key`, stored as the group's ``key``
attribute) holding the cells' ``hashes`` and their ``values`` side by side.
A file of another kind, format or space is refused with one line that says
what to do, never read into another space's features or rewritten over; a
write replaces the file atomically, so a crash leaves the old cache whole.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from svge_cli.atomic import atomic_path
from svge_cli.errors import SvgeError
from svge_cli.storage.workspace import Workspace

KIND = "svge-proxy-cache"
FORMAT_VERSION = 1
FILE_NAME = "proxies.h5"


def cache_path(ws: Workspace, space: str) -> Path:
    return ws.space_dir(space) / FILE_NAME


class ProxyCache:
    """Proxy values by (settings key, cell hash), read from and written back to one file."""

    def __init__(self, path: Path | None, space: str) -> None:
        self.path, self.space = path, space
        self._values: dict[str, dict[str, float]] = {}
        self._dirty = False
        if path is not None and path.exists():
            self._read(path)

    def _refuse(self, why: str) -> SvgeError:
        return SvgeError(f"{self.path} {why}: move it away or delete it, and the proxies are computed afresh")

    def _read(self, path: Path) -> None:
        try:
            with h5py.File(path, "r") as f:
                kind, fmt, space = f.attrs.get("kind"), f.attrs.get("format"), f.attrs.get("space")
                if kind != KIND:
                    raise self._refuse("is not an svge proxy cache")
                if fmt != FORMAT_VERSION:
                    raise self._refuse(f"is a proxy cache of format {fmt} (this svge reads {FORMAT_VERSION})")
                if space != self.space:
                    raise self._refuse(f"caches {space} proxies, not {self.space}")
                for group in f.values():
                    hashes = [h.decode() for h in group["hashes"][()].tolist()]
                    self._values[str(group.attrs["key"])] = dict(zip(hashes, group["values"][()].tolist()))
        except (OSError, KeyError) as e:
            raise self._refuse(f"cannot be read ({e})") from None

    def lookup(self, key: str, hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Values of `hashes` under `key` and a mask of those found (values NaN where not)."""
        known = self._values.get(key, {})
        found = np.asarray([h in known for h in hashes], dtype=bool)
        values = np.asarray([known.get(h, np.nan) for h in hashes], dtype=np.float64)
        return values, found

    def add(self, key: str, hashes: list[str], values: np.ndarray) -> None:
        """Remember `values` of the cells `hashes` under `key`, replacing any held; `save` writes them.

        Args:
            key: the proxy and settings key (`ProxySettings.key`) the values were computed under.
            hashes: the cells' hashes, one per value.
            values: the proxy values, shape (len(hashes),), in the order of `hashes`.
        """
        self._values.setdefault(key, {}).update(zip(hashes, np.asarray(values, dtype=np.float64).tolist()))
        self._dirty = self._dirty or bool(hashes)

    def save(self) -> None:
        """Write every value back (atomically) when something was added; a cache without a path keeps none."""
        if self.path is None or not self._dirty:
            return
        with atomic_path(self.path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs.update({"kind": KIND, "format": FORMAT_VERSION, "space": self.space})
                for i, (key, table) in enumerate(sorted(self._values.items())):
                    group = f.create_group(f"p{i}")
                    group.attrs["key"] = key
                    group.create_dataset("hashes", data=np.asarray([h.encode() for h in table], dtype="S"))
                    group.create_dataset("values", data=np.asarray(list(table.values()), dtype=np.float64))
        self._dirty = False
