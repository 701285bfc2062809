"""Progress lines for the stages that work for minutes (training, the landscapes, the MI check, plan's
probes): what is done, the elapsed wall time and an ETA from the wall time per item so far."""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str], None]  # where a stage's progress lines go (the CLI's stderr at its verbosity)


def silent(line: str) -> None:
    """A Progress that drops every line."""


def counted(what: str, done: int, total: int, started: float) -> str:
    """``<what>: k of n done · elapsed, ETA`` — the ETA is the wall time per item so far times the items
    left (items of one stage cost about the same)."""
    elapsed = time.perf_counter() - started
    eta = elapsed / max(1, done) * (total - done)
    return f"{what}: {done} of {total} done · {elapsed:.0f}s, ETA {eta:.0f}s"
