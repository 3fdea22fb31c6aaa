"""Atomic file replacement: a file svge writes is either complete or untouched, whatever kills the writer.

At the bottom of the layers because every layer writes files (spaces keep user specs, storage its HDF5
files, search its journal); the one refusal it raises is a `StoreError`.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from svge_cli.errors import StoreError

#: a temporary written by `atomic_path`: .<file name>.<pid>-<random>.tmp
_TMP_NAME = re.compile(r"^\..+\.(\d+)-[^.]+\.tmp$")


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` that replaces it only when the block completes.

    A failure (or Ctrl-C) removes the temporary file, so `target` is either the
    complete new file or untouched.  The file gets the permissions a plain
    ``open(target, "w")`` would give it, not mkstemp's private 0600.
    """
    with _unwritable(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(target.parent)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with _unwritable(target):
            os.chmod(tmp, _mode_for(target))
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries of svge's own naming whose writer is gone (killed with SIGKILL, say).

    Each name carries its writer's process id (``.NAME.<pid>-<random>.tmp``); one
    whose process no longer runs can never be completed.
    """
    for tmp in folder.glob(".*.tmp"):
        match = _TMP_NAME.match(tmp.name)
        if match and not _process_alive(int(match.group(1))):
            tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _unwritable(target: Path) -> Iterator[None]:
    """A file-system refusal (no such folder, no permission, a directory in the way) as one line."""
    try:
        yield
    except OSError as e:
        raise StoreError(f"{target}: cannot write there ({e.strerror or e})") from None


def _mode_for(target: Path) -> int:
    """The existing file's mode, or the umask's default for a new file."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
