"""One cell, one task: start the evaluator on a cell and check its answer (runs on a Dask worker).

This module imports only the standard library, so a worker process starts fast and needs
nothing of svge but this file.  The protocol is the one `svge bo --evaluator` always had,
one cell per start: the cell as one JSON line on stdin, one answer on stdout -- a number,
or a JSON object ``{"score": ..., ...}`` whose other fields go to the journal.

Every way an evaluation can go wrong is an outcome with a reason, never an exception: the
evaluator cannot be started, runs past its time (its whole process group is killed), exits
with a status or a signal, prints nothing, several lines, bytes that are not UTF-8, or a score
that is not a finite number.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any

STDERR_LINES = 5  # how much of a failed evaluator's stderr the journal keeps
STDERR_CHARS = 600
FAILURES = ("timeout", "exit", "answer", "start", "lost", "objective")  # the `failure` kinds of an outcome


@dataclass(frozen=True)
class CellTask:
    """What a worker needs to evaluate one cell: the command, the cell's JSON line and the time limit."""

    argv: tuple[str, ...]
    line: str
    timeout: float | None = None


class AnswerError(ValueError):
    """An evaluator's answer that is not one finite score."""


def run_cell(task: CellTask) -> dict[str, Any]:
    """Evaluate one cell; the outcome says score or reason, wall seconds, worker and device."""
    start = time.monotonic()
    where = {"worker": worker_name(), "device": os.environ.get("CUDA_VISIBLE_DEVICES")}
    outcome = _evaluate(task)
    return {**outcome, **where, "seconds": round(time.monotonic() - start, 3)}


def _evaluate(task: CellTask) -> dict[str, Any]:
    try:
        proc = subprocess.Popen(
            list(task.argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout ends everything it started
        )
    except OSError as e:
        return failed("start", f"cannot start {task.argv[0]!r} ({e.strerror or e})")
    try:
        out, err = proc.communicate((task.line + "\n").encode(), timeout=task.timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        _, err = proc.communicate()
        return failed("timeout", f"timed out after {task.timeout:g} s", stderr=tail(err))
    except BaseException:
        kill_group(proc)
        proc.wait()
        raise
    if proc.returncode != 0:
        code = proc.returncode
        why = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return failed("exit", f"the evaluator {why}", exit=code, stderr=tail(err))
    try:
        score, extra = parse_answer(out)
    except AnswerError as e:
        return failed("answer", str(e), stderr=tail(err))
    return {"ok": True, "score": score, "extra": extra}


def failed(kind: str, reason: str, **details: Any) -> dict[str, Any]:
    return {"ok": False, "failure": kind, "reason": reason, **{k: v for k, v in details.items() if v is not None}}


def parse_answer(out: bytes) -> tuple[float, dict[str, Any]]:
    """The one score (and extra fields) an evaluator printed for one cell."""
    try:
        text = out.decode("utf-8")
    except UnicodeDecodeError:
        raise AnswerError("the evaluator's answer is not UTF-8 text") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise AnswerError("the evaluator exited without answering")
    if len(lines) > 1:
        raise AnswerError(f"the evaluator answered {len(lines)} lines for one cell")
    answer = lines[0]
    try:
        value: Any = float(answer)
    except ValueError:
        try:
            value = json.loads(answer)
        except json.JSONDecodeError:
            raise AnswerError(f"the evaluator answered {answer[:40]!r}, not a number") from None
    extra: dict[str, Any] = {}
    if isinstance(value, dict):
        extra = {k: v for k, v in value.items() if k != "score" and _finite_json(v)}
        value = value.get("score")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnswerError(f"the evaluator answered {answer[:40]!r}, not a finite score")
    return float(value), extra


def _finite_json(value: Any) -> bool:
    """Extra fields must survive strict JSON (no NaN) to go to the journal."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def tail(err: bytes | None) -> str | None:
    """The last lines of an evaluator's stderr, as text whatever bytes it wrote."""
    if not err:
        return None
    lines = err.decode("utf-8", errors="replace").rstrip().splitlines()[-STDERR_LINES:]
    return "\n".join(lines)[-STDERR_CHARS:] or None


def kill_group(proc: subprocess.Popen) -> None:
    """Stop the evaluator and anything it started (it runs in its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def worker_name() -> str:
    """The Dask worker running this task, or this host and process when evaluating in the driver."""
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"
