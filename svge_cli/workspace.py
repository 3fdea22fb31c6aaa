"""The workspace folder (default `.svge/`) where commands find each other's results.

Layout, per space:  <workdir>/<space>/dataset.h5      imported dataset (labels, split)
                    <workdir>/<space>/enumeration.h5  cached full enumeration (nb101, nb201)
                    <workdir>/<space>/checkpoints/    last.h5, best.h5, finetuned.h5 ...
                    <workdir>/<space>/latest          path of the newest checkpoint
It lets `svge train-vae --space enas && svge evaluate` chain without paths.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKDIR = ".svge"
ENV_WORKDIR = "SVGE_WORKDIR"
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


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
        marker = self.space_dir(space) / "latest"
        marker.parent.mkdir(parents=True, exist_ok=True)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(str(path.resolve()) + "\n")
        os.replace(tmp, marker)


def pretrained_checkpoint(space: str) -> Path | None:
    """The checkpoint shipped with the package for `space`, if there is one."""
    path = PRETRAINED_DIR / f"{space}.h5"
    return path if path.exists() else None
