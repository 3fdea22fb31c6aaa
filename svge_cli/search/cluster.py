"""Where evaluations run: in the driver, on a local Dask cluster, or on a running Dask scheduler.

All three look alike to the driver (`Executor`): `submit` a task, `wait` until some are done,
take each `result` (a lost worker raises `WorkerLost`), count the `workers`.  Dask does the
scheduling; the driver only keeps the right number of cells in flight.

* `--workers 1` (default): `InlineExecutor`, evaluations in the driver's process, in order;
* `--workers N`: a local cluster of N single-threaded worker processes (nannies restart a
  worker that dies), scheduler and workers on 127.0.0.1 only;
* `--gpus 0,1,3`: one such worker per device, each started with ``CUDA_VISIBLE_DEVICES`` set
  to its device, which every evaluator it starts inherits;
* `--scheduler tcp://HOST:PORT` / `--scheduler-file FILE`: a cluster someone started
  (``dask scheduler`` and ``dask worker``, or dask-jobqueue), through the same `DaskExecutor`.

A local cluster's scheduler gives up on a task at the first worker that dies under it
(``allowed-failures`` 0), so the driver counts every retry of a cell itself (`--retries`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from svge_cli.errors import SvgeError


class WorkerLost(Exception):
    """The worker evaluating a cell died or was lost (its task never answered)."""


@dataclass(frozen=True)
class ClusterOptions:
    """What the user asked for: `--workers`, `--gpus`, `--scheduler`, `--scheduler-file`."""

    workers: int = 1
    gpus: tuple[int, ...] = ()
    scheduler: str | None = None
    scheduler_file: str | None = None

    @property
    def inline(self) -> bool:
        return self.workers == 1 and not self.gpus and self.scheduler is None and self.scheduler_file is None

    def check(self, device_count: Callable[[], int]) -> None:
        """One-line errors for requests that cannot work, before anything is written or started."""
        if self.workers < 1:
            raise SvgeError("--workers must be at least 1")
        if self.scheduler and self.scheduler_file:
            raise SvgeError("give --scheduler or --scheduler-file, not both")
        remote = self.scheduler or self.scheduler_file
        if remote and self.gpus:
            raise SvgeError("--gpus starts local workers; with --scheduler, start `dask worker` on each device")
        if self.scheduler_file and not Path(self.scheduler_file).is_file():
            raise SvgeError(f"--scheduler-file {self.scheduler_file}: no such file (has `dask scheduler` started?)")
        if self.gpus:
            if len(set(self.gpus)) != len(self.gpus):
                raise SvgeError("--gpus names a device twice")
            have = device_count()
            missing = [g for g in self.gpus if not 0 <= g < have]
            if missing:
                raise SvgeError(
                    f"--gpus {','.join(map(str, self.gpus))}: no CUDA device {missing[0]} (this machine has {have})"
                )


def parse_gpus(text: str | None) -> tuple[int, ...]:
    """`0,1,3` -> (0, 1, 3); a one-line error for anything else."""
    if not text:
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SvgeError(f"--gpus {text!r}: give device numbers separated by commas, e.g. 0,1,3") from None


class Executor(Protocol):
    def submit(self, fn: Callable[[Any], dict[str, Any]], arg: Any, key: str) -> Any:
        """Send one evaluation out; what comes back is the handle `wait` and `result` take.

        Args:
            fn: the evaluation to run, taking `arg` and answering a result record (``ok``, ``score``, ...).
            arg: the one argument `fn` is called with (the cell's task).
            key: a name for the task that no other submission shares, on this scheduler or a shared one.

        Returns:
            The future standing for the evaluation until it is settled.
        """
        ...

    def wait(self, futures: Iterable[Any], timeout: float) -> list[Any]: ...

    def result(self, future: Any) -> dict[str, Any]: ...

    def workers(self) -> int: ...

    def close(self) -> None: ...


class _Call:
    """A task for the inline executor: run when the driver waits for it."""

    def __init__(self, fn: Callable[[Any], dict[str, Any]], arg: Any) -> None:
        self.fn, self.arg, self.value = fn, arg, None


class InlineExecutor:
    """Evaluations in the driver's own process, one at a time, in the order they were submitted."""

    def submit(self, fn: Callable[[Any], dict[str, Any]], arg: Any, key: str) -> _Call:
        """Hold the evaluation back until the driver waits for it; nothing runs yet.

        Args:
            fn: the evaluation, run later in this process on `arg`.
            arg: the one argument `fn` is called with.
            key: the task's name; unused here, where no scheduler needs one.

        Returns:
            The deferred call, whose value `wait` fills in and `result` reads.
        """
        return _Call(fn, arg)

    def wait(self, futures: Iterable[Any], timeout: float) -> list[Any]:
        first = next(iter(futures), None)
        if first is None:
            return []
        first.value = first.fn(first.arg)
        return [first]

    def result(self, future: _Call) -> dict[str, Any]:
        return future.value

    def workers(self) -> int:
        return 1

    def close(self) -> None:
        pass


class DaskExecutor:
    """Tasks on a Dask cluster through a `distributed.Client` (local or remote)."""

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client, self.cluster = client, cluster

    def submit(self, fn: Callable[[Any], dict[str, Any]], arg: Any, key: str) -> Any:
        """Hand the evaluation to the cluster's scheduler, to run on whichever worker is free.

        Args:
            fn: the evaluation, shipped to a worker and run there on `arg`.
            arg: the one argument `fn` is called with.
            key: the Dask task key; it must be unique, since tasks are never treated as pure.

        Returns:
            The Dask future of the task.
        """
        return self.client.submit(fn, arg, key=key, pure=False)

    def wait(self, futures: Iterable[Any], timeout: float) -> list[Any]:
        from distributed import wait

        futures = list(futures)
        try:
            wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        return [f for f in futures if f.done()]

    def result(self, future: Any) -> dict[str, Any]:
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker

        try:
            return future.result()
        except (KilledWorker, FutureCancelledError, CommClosedError) as e:
            raise WorkerLost(type(e).__name__) from None

    def workers(self) -> int:
        try:
            info = self.client.scheduler_info()
        except (OSError, TimeoutError):
            return 0
        return sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values())

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def connect(opts: ClusterOptions) -> Executor:
    """The executor for `opts`; a scheduler that cannot be reached is a one-line error."""
    if opts.inline:
        return InlineExecutor()
    import dask
    from distributed import Client

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the search's own line says what matters
    timeout = dask.config.get("distributed.comm.timeouts.connect")
    if opts.scheduler or opts.scheduler_file:
        where = opts.scheduler or f"the address in {opts.scheduler_file}"
        try:
            if opts.scheduler:
                client = Client(opts.scheduler, timeout=timeout)
            else:
                client = Client(scheduler_file=opts.scheduler_file, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as e:
            raise SvgeError(f"cannot reach the Dask scheduler at {where} ({_first_line(e)})") from None
        return DaskExecutor(client)
    cluster = local_cluster(worker_envs(opts))
    return DaskExecutor(Client(cluster), cluster)


def worker_envs(opts: ClusterOptions) -> list[dict[str, str]]:
    """One environment per local worker: its device for `--gpus`, else nothing added."""
    if opts.gpus:
        return [{"CUDA_VISIBLE_DEVICES": str(g)} for g in opts.gpus]
    return [{} for _ in range(opts.workers)]


def local_cluster(envs: list[dict[str, str]]) -> Any:
    """Scheduler and one single-threaded worker process per environment, all on 127.0.0.1."""
    import dask
    from distributed import Nanny, Scheduler, SpecCluster

    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}}
    workers = {
        f"worker-{i}": {
            "cls": Nanny,
            "options": {"nthreads": 1, "host": "127.0.0.1", "env": env, "silence_logs": logging.ERROR},
        }
        for i, env in enumerate(envs)
    }
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
