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
from typing import Callable

from svge_cli.atomic import atomic_path

DEFAULT_WORKDIR = ".svge"
ENV_WORKDIR = "SVGE_WORKDIR"
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def _silent(message: str) -> None:
    """The default `note`: callers that only peek at the workspace say nothing."""


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

    def latest_checkpoint(self, space: str, note: Callable[[str], None] = _silent) -> Path | None:
        """The newest checkpoint recorded for `space`, if it still exists.

        A marker that is unreadable or names a vanished checkpoint is passed over
        with a `note`, so the command falls back to another checkpoint and the user
        knows the remembered one was not used.
        """
        marker = self.space_dir(space) / "latest"
        text = _read_marker(marker, note)
        if text is None:
            return None
        path = Path(text)
        if not path.is_file():
            note(f"{marker} remembers the checkpoint {path}, which no longer exists; ignoring it")
            return None
        return path

    def remember_checkpoint(self, space: str, path: Path) -> None:
        """Record `path` as the newest checkpoint of `space`, and `space` as the newest space."""
        _write_small(self.space_dir(space) / "latest", str(path.resolve()))
        _write_small(self.root / "latest_space", space)

    def latest_space(self, note: Callable[[str], None] = _silent) -> str | None:
        """The space of the most recently written checkpoint, so `svge evaluate` needs no --space."""
        return _read_marker(self.root / "latest_space", note)


def _read_marker(marker: Path, note: Callable[[str], None]) -> str | None:
    """The one-line text of a marker file; None (with a note) when it is absent or not text."""
    try:
        text = marker.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        reason = "not text" if isinstance(e, UnicodeDecodeError) else (e.strerror or str(e))
        note(f"{marker}: unreadable workspace marker ({reason}); ignoring it")
        return None
    if not text or "\n" in text or "\x00" in text:
        note(f"{marker}: not a one-line workspace marker; ignoring it")
        return None
    return text


def _write_small(path: Path, text: str) -> None:
    """Replace a marker atomically through a uniquely named temporary (two writers never share one)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def pretrained_checkpoint(space: str) -> Path | None:
    """The checkpoint shipped with the package for `space`, if there is one."""
    path = PRETRAINED_DIR / f"{space}.h5"
    return path if path.exists() else None
