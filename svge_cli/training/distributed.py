"""Training on several processes: the process group, the shards, and the local launcher.

A training process finds its place from the environment torchrun (or the
elastic launcher behind `--nproc`) sets: RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT (env:// rendezvous).  Backend nccl on CUDA, gloo on CPU, with a
timeout on every collective so that a stuck rank cannot hang the others.

Sharding follows DistributedSampler's rule (rank r takes every world-th cell),
applied to each global batch of the seeded epoch order, without its padding:
the cells of a step are then the same at every world size, and a step's losses
are weighted by the share of the batch a rank holds, so the averaged gradient
is the whole batch's mean exactly as on one process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist

from svge_cli.errors import USER_ERRORS, SvgeError

TIMEOUT_ENV = "SVGE_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 120.0  # a collective waits at most this long for the other ranks
REPORT_LOST, REPORT_STOPPED = "lost", "stopped"  # a rank that only followed another's failure
MONITOR_S = 0.1  # how often the launcher looks at its processes
LOST_GRACE_S = 10 * MONITOR_S  # a rank that lost its peers outlives them long enough to be seen as the follower
_HANDLED_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")


class PeerLost(SvgeError):
    """A collective failed because another rank stopped or stopped answering."""


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes (rank 0 of 1 when alone)."""

    rank: int = 0
    world: int = 1

    @property
    def leader(self) -> bool:
        """Rank 0: the one process that writes files and talks to the user."""
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        return rows[self.rank :: self.world]

    def sum(self, values: list[float]) -> np.ndarray:
        """The element-wise sum of `values` over all ranks (float64, in one collective)."""
        total = torch.tensor(values, dtype=torch.float64)
        if self.world > 1:
            with collective(self):
                on = _comm_device()
                moved = total.to(on)
                dist.all_reduce(moved)
                total = moved.cpu()
        return total.numpy()

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` under DistributedDataParallel when there are other ranks (its gradients averaged)."""
        if self.world == 1:
            return module
        device = next(module.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        with collective(self):  # DDP broadcasts rank 0's weights at once
            return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, gradient_as_bucket_view=True)


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def world_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def restart_count() -> int:
    """How often the elastic launcher has restarted this run's processes (0: first try)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def may_restart() -> bool:
    return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0


def timeout_s() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        raise SvgeError(f"{TIMEOUT_ENV} must be a number of seconds, not {os.environ[TIMEOUT_ENV]!r}") from None


def rank_device(device: torch.device) -> torch.device:
    """The device of this rank: its own GPU (LOCAL_RANK) when training on CUDA."""
    if device.type != "cuda":
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise SvgeError(f"local rank {local} has no GPU: this machine has {torch.cuda.device_count()}")
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Group]:
    """Join the training processes named by the environment (env://); alone when WORLD_SIZE is unset or 1."""
    if world_from_env() <= 1:
        yield Group()
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, init_method="env://", timeout=timedelta(seconds=timeout_s()))
    except (RuntimeError, ValueError) as e:
        raise PeerLost(
            f"rank {os.environ.get('RANK', '?')}: could not join the other processes: {_first_line(e)}"
        ) from None
    lost, group = False, Group(dist.get_rank(), dist.get_world_size())
    try:
        yield group
        with collective(group):
            dist.barrier()  # no rank tears the group down while another (rank 0 saving) still uses it
    except PeerLost:
        lost = True  # gloo aborts the process when a group with a dead peer is torn down: leave it to the exit
        raise
    finally:
        if not lost:
            dist.destroy_process_group()


@contextlib.contextmanager
def collective(group: Group) -> Iterator[None]:
    """Turn a failed or timed-out collective into PeerLost, one line naming this rank."""
    try:
        yield
    except (RuntimeError, dist.DistError) as e:
        if group.world == 1 or not _looks_like_comm(e):
            raise
        raise PeerLost(f"rank {group.rank}: lost contact with the other processes ({_first_line(e)})") from None


def _looks_like_comm(e: BaseException) -> bool:
    if isinstance(e, dist.DistError):
        return True
    text = str(e).lower()
    return any(w in text for w in ("gloo", "nccl", "connection", "timed out", "timeout", "socket", "peer"))


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else e.__class__.__name__


def check_world(world: int, batch_size: int, cells: int) -> None:
    """The global batch splits evenly, and every process has a cell to train on.

    Args:
        world: the number of training processes.
        batch_size: the global batch, in cells, that the processes share at each step.
        cells: how many training cells there are to shard over the processes.
    """
    if world > cells:
        raise SvgeError(f"{world} processes for {cells} training cells: use at most {cells} processes")
    if batch_size % world:
        raise SvgeError(
            f"--batch-size {batch_size} is the global batch and does not split evenly over {world} "
            f"processes: choose a multiple of {world}"
        )


def launch_device(name: str, nproc: int) -> str:
    """The device the local processes use, checked against the GPUs there are."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if name == "cuda" and gpus < nproc:
        raise SvgeError(f"--nproc {nproc} with --device cuda needs {nproc} GPUs, this machine has {gpus}")
    if name == "auto":
        return "cuda" if gpus >= nproc else "cpu"
    return name


# ---------------------------------------------------------------- the local launcher (--nproc)


def launch(fn: Callable[..., Any], args: tuple[Any, ...], nproc: int, max_restarts: int = 0) -> None:
    """Run fn(*args) in `nproc` local processes through torch's elastic launcher (what torchrun uses).

    The rendezvous store listens on 127.0.0.1 on a free port.  When a process
    fails the launcher stops the others at once (and restarts them all while
    restarts are left); the failure is raised as one SvgeError line naming the
    rank and the cause.  Ctrl-C stops every process and raises KeyboardInterrupt.

    Args:
        fn: what each process runs; picklable, since the processes are spawned.
        args: the positional arguments every process passes to `fn`.
        nproc: how many local processes to start, one rank each.
        max_restarts: how often the whole group is restarted after a failure before it is raised (0: never).
    """
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, SignalException, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    with tempfile.TemporaryDirectory(prefix="svge-ranks-") as tmp, _quiet_elastic(), _own_signal_handlers():
        reports = Path(tmp) / "reports"
        reports.mkdir()
        config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=nproc,
            run_id=f"svge-{uuid.uuid4().hex}",
            rdzv_backend="c10d",
            rdzv_endpoint="127.0.0.1:0",
            local_addr="127.0.0.1",
            max_restarts=max_restarts,
            monitor_interval=MONITOR_S,
            start_method="spawn",
            logs_specs=DefaultLogsSpecs(
                log_dir=str(Path(tmp) / "logs"), redirects={r: Std.ALL for r in range(1, nproc)}
            ),
            shutdown_timeout=5,
        )
        env = {"GLOO_SOCKET_IFNAME": _loopback()} if "GLOO_SOCKET_IFNAME" not in os.environ else {}
        with _environ(env):
            try:
                elastic_launch(config, _run_rank)(fn, args, str(reports))
            except ChildFailedError as e:
                raise SvgeError(_failure_line(e.failures, reports, max_restarts)) from None
            except SignalException as e:
                if e.sigval == signal.SIGINT:
                    raise KeyboardInterrupt from None
                raise SvgeError(f"stopped by {e.sigval.name}; every training process was ended") from None


def _run_rank(fn: Callable[..., Any], args: tuple[Any, ...], reports: str) -> None:
    """One launched process: run, and leave a one-line report for the launcher when it fails."""
    rank = int(os.environ.get("RANK", "0"))

    def report(kind: str, message: str, code: int) -> None:
        path = Path(reports) / f"rank-{rank}-try-{restart_count()}"
        path.write_text(f"{kind}\t{time.time()}\t{message}")
        if kind == REPORT_LOST:
            # the launcher reports the ranks it finds dead at one poll: stay until it has seen the peer
            # whose loss this is, then skip teardown (a broken gloo group aborts the process in it)
            time.sleep(LOST_GRACE_S)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        sys.exit(code)

    try:
        fn(*args)
    except KeyboardInterrupt:
        report(REPORT_STOPPED, "interrupted", 130)
    except PeerLost as e:
        report(REPORT_LOST, str(e), 1)
    except USER_ERRORS as e:
        report("error", str(e), 1)
    except Exception as e:  # noqa: BLE001 - reported as one line by the launcher
        report("error", f"internal error: {e.__class__.__name__}: {_first_line(e)}", 3)


def _failure_line(failures: dict[int, Any], reports: Path, last_try: int) -> str:
    """The root cause among the failed ranks: a rank that died or erred, before those that followed it."""
    causes = []
    for rank, failure in sorted(failures.items()):
        path = reports / f"rank-{rank}-try-{last_try}"
        if path.exists():
            kind, when, message = path.read_text().split("\t", 2)
            causes.append((kind in (REPORT_LOST, REPORT_STOPPED), float(when), rank, message))
        elif failure.exitcode < 0:
            what = f"rank {rank} (pid {failure.pid}) was killed by {failure.signal_name()}"
            causes.append((False, float(failure.timestamp), rank, what))
        else:
            causes.append((False, float(failure.timestamp), rank, f"rank {rank} exited with code {failure.exitcode}"))
    _, _, rank, message = min(causes)
    return message if message.startswith("rank ") else f"rank {rank}: {message}"


@contextlib.contextmanager
def _quiet_elastic() -> Iterator[None]:
    """The launcher's own log lines (start-up, failures) are not for the user: the failure is one line."""
    loggers = [
        logging.getLogger(n)
        for n in ("torch.distributed.elastic", "torch.distributed.launcher", "torch.multiprocessing")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _own_signal_handlers() -> Iterator[None]:
    """The launcher installs handlers for SIGINT and friends; give the command its own back afterwards."""
    signals = [getattr(signal, n) for n in _HANDLED_SIGNALS if hasattr(signal, n)]
    saved = {s: signal.getsignal(s) for s in signals}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _loopback() -> str:
    """The loopback interface's name (lo on Linux, lo0 on macOS): local processes talk over it."""
    names = [name for _, name in socket.if_nameindex() if name.startswith("lo")]
    return names[0] if names else "lo"
