"""The memory guard: what it reads, and that it refuses only what cannot fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from svge_cli import memory
from svge_cli.errors import SvgeError


def test_available_memory_is_read_from_meminfo_and_capped_by_the_cgroup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "meminfo").write_text("MemTotal: 9000 kB\nMemFree: 10 kB\nMemAvailable: 4000 kB\n")
    cgroup = tmp_path / "cg"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text("max\n")
    (cgroup / "memory.current").write_text("0\n")
    monkeypatch.setattr(memory, "_MEMINFO", tmp_path / "meminfo")
    monkeypatch.setattr(memory, "_CGROUP", cgroup)
    assert memory.available_bytes() == 4000 * 1024
    (cgroup / "memory.max").write_text("3000000\n")
    (cgroup / "memory.current").write_text("1000000\n")
    assert memory.available_bytes() == 2_000_000


def test_ensure_fits_refuses_only_above_the_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: 2_000_000_000)
    memory.ensure_fits(1_999_999_999, "a small thing")
    with pytest.raises(SvgeError, match=r"a big thing needs about 3 GB of memory, but 2 GB is available: ask for less"):
        memory.ensure_fits(3e9, "a big thing")
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    memory.ensure_fits(1e30, "anything, where the system does not say")
