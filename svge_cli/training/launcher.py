"""A command's work on `--nproc N` local processes: the same set-up in each, then one shared job.

train-vae and finetune both start their processes here, so a rank sees the
workspace, the thread count and the verbosity the user gave the command, and
only rank 0 speaks: the other ranks' console is quiet.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import torch

from svge_cli.console import Ui
from svge_cli.model import configure_cpu
from svge_cli.spaces import use_workspace
from svge_cli.storage.workspace import Workspace
from svge_cli.training.distributed import Group, launch, process_group

Request = TypeVar("Request")
Job = Callable[[Ui, Request], object]  # a module-level function: spawned processes unpickle it


@dataclass(frozen=True)
class _Settings:
    """The command's global options, for the processes `--nproc` starts."""

    workdir: Path
    debug: bool
    quiet: bool
    threads: int


def launch_command(ui: Ui, job: Job, req: Request, nproc: int, max_restarts: int = 0) -> None:
    """Run job(ui, req) in `nproc` local processes under the elastic launcher.

    Args:
        ui: the command's console; its workspace and verbosity travel to every process.
        job: the command's work; it joins the process group itself (`joined`).
        req: the request each process gets, already checked by the caller.
        nproc: how many processes.
        max_restarts: restarts of every process after one fails (the launcher's).

    Raises SvgeError with one line naming the failed rank; KeyboardInterrupt after Ctrl-C.
    """
    settings = _Settings(ui.workspace.root, ui.debug, ui.quiet, torch.get_num_threads())
    launch(_rank_main, (settings, job, req), nproc, max_restarts)


def _rank_main(settings: _Settings, job: Job, req: Request) -> None:
    """One process of `--nproc`: the command's set-up, then this rank's share of the job."""
    configure_cpu(settings.threads)
    use_workspace(settings.workdir)
    job(Ui(Workspace(settings.workdir), debug=settings.debug, quiet=settings.quiet), req)


@contextlib.contextmanager
def joined(ui: Ui, device: torch.device) -> Iterator[tuple[Ui, Group]]:
    """Join the process group the environment names (alone without one); only rank 0's console speaks."""
    with process_group(device) as group:
        yield (ui if group.leader else replace(ui, quiet=True)), group
