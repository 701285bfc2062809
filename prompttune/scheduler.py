"""How a training job's earlier attempts ended, from the batch scheduler (the cluster route).

Under SLURM (``SLURM_JOB_ID`` set) a training job appends its job id and memory request to
``attempts.jsonl`` in its runs' resume folder (``train.resume_folder``) before it trains, and asks SLURM how
each earlier attempt of the same runs ended: ``squeue``, which shows a finished job for ``MinJobAge`` seconds
(300 by default; a retry is submitted as soon as the failure is seen), else ``sacct`` where the site keeps
accounting. A retry after a kill for memory asks for more (pipelines/grid.smk: memory × the attempt, at most
a node's). Choice: once SLURM has killed ``MEMORY_KILLS`` attempts for memory, the next attempt writes the
runs as ``failed`` with that reason instead of training, so the workflow, its aggregate and its report go
on and show the run as missing. Outside SLURM nothing is recorded and every attempt trains.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MEMORY_KILLS = 2  # kills for memory after which an attempt records the runs as failed (choice)
KILLED_FOR_MEMORY = "OUT_OF_MEMORY"
LOG = "attempts.jsonl"


@dataclass(frozen=True)
class Attempt:
    """One SLURM job that ran (or began) these runs, and the memory it was given (MB; None: not stated)."""

    job_id: str
    mem_mb: int | None


def job_state(job_id: str) -> str | None:
    """SLURM's state of a job (``OUT_OF_MEMORY``, ``CANCELLED``, ``TIMEOUT``, …), or None when neither
    ``squeue`` nor ``sacct`` knows it any more."""
    commands = (
        ["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T"],
        ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
    )
    for command in commands:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        words = out.stdout.split()
        if out.returncode == 0 and words:
            return words[0]  # sacct adds "by <uid>" to CANCELLED
    return None


def memory_kills(folder: Path, environ: Mapping[str, str] = os.environ) -> list[Attempt]:
    """Record this attempt in ``folder`` (under SLURM only) and return the earlier attempts that SLURM
    killed for memory."""
    job_id = environ.get("SLURM_JOB_ID")
    if not job_id:
        return []
    log = folder / LOG
    earlier = [Attempt(**json.loads(line)) for line in log.read_text().splitlines()] if log.is_file() else []
    mem = environ.get("SLURM_MEM_PER_NODE")
    folder.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"job_id": job_id, "mem_mb": int(mem) if mem else None}) + "\n")
    others = {a.job_id: a for a in earlier if a.job_id != job_id}  # a requeued job keeps its id
    return [a for a in others.values() if job_state(a.job_id) == KILLED_FOR_MEMORY]


def memory_reason(kills: list[Attempt]) -> str:
    """The failed record's reason: which jobs SLURM killed, with how much memory."""
    jobs = ", ".join(f"job {a.job_id} with {a.mem_mb} MB" if a.mem_mb else f"job {a.job_id}" for a in kills)
    return (
        f"killed for memory by SLURM {len(kills)} times ({jobs}): the run needs more host memory than "
        "its jobs asked for (raise it: README, Running on a cluster)"
    )
