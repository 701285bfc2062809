"""How the earlier attempts of a training job's submission ended, from the batch scheduler (cluster route).

Under SLURM (``SLURM_JOB_ID`` set) Snakemake submits every attempt of a job, or of a group of jobs, under
the workflow run's name with the same comment (the rule or group and its wildcards), so ``squeue`` lists
the earlier attempts of this very submission with their end states (it keeps a finished job for
``MinJobAge`` seconds, 300 by default, and a retry is submitted as soon as a failure is seen): a kill for
memory is the state ``OUT_OF_MEMORY``, or slurmstepd's line in the job's log where SLURM's own accounting
killed the step and left the job ``FAILED``. A retry after a kill for memory asks for more
(pipelines/grid.smk: memory × the attempt, at most a node's). Choice: once SLURM has killed
``MEMORY_KILLS`` attempts for memory, the next attempt writes its runs as ``failed`` with that reason
instead of training them, so the workflow, its aggregate and its report go on and show the runs as
missing. Outside SLURM, or where SLURM no longer shows the attempts, every attempt trains.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MEMORY_KILLS = 2  # kills for memory after which an attempt records its runs as failed (choice)
KILLED_FOR_MEMORY = "OUT_OF_MEMORY"
# slurmstepd's words in a job's log when it killed a step for memory: by its own accounting (OverMemoryKill,
# which leaves the job FAILED) or through the cgroup (an oom-kill event, cgroup v1 and v2)
MEMORY_LINES = ("Exceeded job memory limit", "oom_kill event", "oom-kill event")


@dataclass(frozen=True)
class Attempt:
    """One SLURM job of a submission: its id, end state, memory request (squeue's ``%m``), and what names
    the submission (the job's name and comment)."""

    job_id: str
    state: str
    memory: str
    comment: str
    name: str


def jobs() -> dict[str, Attempt]:
    """Every job ``squeue`` still shows, finished ones included (empty when squeue is not there)."""
    command = ["squeue", "-h", "--states=all", "-o", "%i|%T|%m|%k|%j"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    rows = [line.split("|", 4) for line in out.stdout.splitlines() if out.returncode == 0]
    return {row[0]: Attempt(*row) for row in rows if len(row) == 5}


def memory_kills(environ: Mapping[str, str] = os.environ) -> list[Attempt]:
    """The earlier attempts of this job's submission that SLURM killed for memory ([] outside SLURM)."""
    job_id = environ.get("SLURM_JOB_ID")
    known = jobs() if job_id else {}
    mine = known.get(str(job_id))
    if mine is None:
        return []
    return [
        job
        for job in known.values()
        if job.job_id != mine.job_id
        and (job.name, job.comment) == (mine.name, mine.comment)
        and killed_for_memory(job)
    ]


def killed_for_memory(job: Attempt) -> bool:
    """SLURM's state says so (``OUT_OF_MEMORY``), or a ``FAILED`` or ``CANCELLED`` job's log holds
    slurmstepd's memory-kill line (its log file from ``scontrol show job``)."""
    if job.state == KILLED_FOR_MEMORY:
        return True
    if job.state not in ("FAILED", "CANCELLED"):
        return False
    try:
        shown = subprocess.run(
            ["scontrol", "-o", "show", "job", job.job_id], capture_output=True, text=True, timeout=30
        )
        match = re.search(r"\bStdOut=(\S+)", shown.stdout)
        text = Path(match[1]).read_text(errors="replace") if match else ""
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line in text for line in MEMORY_LINES)


def memory_reason(kills: list[Attempt]) -> str:
    """The failed record's reason: which jobs of its submission SLURM killed, with how much memory."""
    listed = ", ".join(f"job {job.job_id} with {job.memory}" for job in kills)
    return (
        f"not trained: SLURM killed its submission for memory {len(kills)} times ({listed}); raise the "
        "training jobs' memory (README, Pipelines: A GPU cluster) and train it again"
    )
