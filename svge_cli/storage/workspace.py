"""The workspace folder (default `.svge/`) where commands find each other's results.

Layout, per space:  <workdir>/<space>/dataset.h5      imported dataset (labels, split)
                    <workdir>/<space>/enumeration.h5  cached full enumeration (nb101, nb201)
                    <workdir>/<space>/checkpoints/    run-<time>/last.h5, finetuned-*.h5 ...
                    <workdir>/<space>/latest          path of the newest checkpoint
It lets `svge train-vae --space enas && svge evaluate` chain without paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKDIR = ".svge"
ENV_WORKDIR = "SVGE_WORKDIR"
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, workdir: str | None) -> "Workspace":
        return cls(Path(workdir or os.environ.get(ENV_WORKDIR) or DEFAULT_WORKDIR))

    def space_dir(self, space: str) -> Path:
        return self.root / space

    def dataset_path(self, space: str) -> Path:
        return self.space_dir(space) / "dataset.h5"

    def enumeration_path(self, space: str) -> Path:
        return self.space_dir(space) / "enumeration.h5"

    def checkpoint_dir(self, space: str) -> Path:
        return self.space_dir(space) / "checkpoints"

    def latest_checkpoint(self, space: str) -> Path | None:
        """The newest checkpoint recorded for `space`, if it still exists."""
        marker = self.space_dir(space) / "latest"
        if marker.exists():
            path = Path(marker.read_text().strip())
            if path.exists():
                return path
        return None

    def remember_checkpoint(self, space: str, path: Path) -> None:
        """Record `path` as the newest checkpoint of `space`, and `space` as the newest space."""
        _write_small(self.space_dir(space) / "latest", str(path.resolve()))
        _write_small(self.root / "latest_space", space)

    def latest_space(self) -> str | None:
        """The space of the most recently written checkpoint, so `svge evaluate` needs no --space."""
        marker = self.root / "latest_space"
        return marker.read_text().strip() if marker.exists() else None


def _write_small(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def pretrained_checkpoint(space: str) -> Path | None:
    """The checkpoint shipped with the package for `space`, if there is one."""
    path = PRETRAINED_DIR / f"{space}.h5"
    return path if path.exists() else None
