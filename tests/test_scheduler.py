"""The earlier attempts of a training job's submission under SLURM (prompttune.scheduler): kills for memory
counted from SLURM's own job list, only for this submission (same workflow run and comment), and after two of
them the next attempt writes its runs as ``failed`` with the reason instead of training. The job list comes
from a stand-in ``squeue`` on PATH that prints a table; tests/test_slurm.py runs the same path under a real
SLURM."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from test_cli_errors import project, prompttune, template  # noqa: F401 — the project fixture and its template

from prompttune.results import load_metrics
from prompttune.scheduler import memory_kills

RUN = "2f5c"  # the workflow run's name, which Snakemake gives each of its SLURM jobs
TRAIN_PT = "rule_train.1_train"  # a submission's comment: its rule or group and wildcards


def squeue(folder: Path, rows: list[str], logs: dict[str, str] | None = None) -> str:
    """A folder holding an ``squeue`` that prints ``rows`` (id|state|memory|comment|name) and an
    ``scontrol`` that names each job's log file, holding ``logs[job id]``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "squeue").write_text(f"#!/bin/sh\ncat <<'EOF'\n{chr(10).join(rows)}\nEOF\n")
    for job_id, text in (logs or {}).items():
        (folder / f"{job_id}.log").write_text(text)
    (folder / "scontrol").write_text(f'#!/bin/sh\necho "JobId=$4 JobState=FAILED StdOut={folder}/$4.log"\n')
    for script in ("squeue", "scontrol"):
        (folder / script).chmod(0o755)
    return str(folder)


ROWS = [
    f"11|OUT_OF_MEMORY|350M|{TRAIN_PT}|{RUN}",
    f"12|CANCELLED|700M|{TRAIN_PT}|{RUN}",
    f"13|OUT_OF_MEMORY|700M|rule_train.0_train|{RUN}",  # another submission
    f"14|OUT_OF_MEMORY|700M|{TRAIN_PT}|older-run",  # the same rule in another workflow run
    f"15|OUT_OF_MEMORY|700M|{TRAIN_PT}|{RUN}",
    f"16|RUNNING|1050M|{TRAIN_PT}|{RUN}",
    f"17|FAILED|700M|{TRAIN_PT}|{RUN}",  # killed by SLURM's own accounting: the job fails, its log says why
    f"18|FAILED|700M|{TRAIN_PT}|{RUN}",  # failed for another reason
]
LOGS = {
    "17": "slurmstepd-vm: error: StepId=17.0 exceeded memory limit (849137664 > 734003200), being killed\n"
    "slurmstepd-vm: error: Exceeded job memory limit\n",
    "18": "Traceback (most recent call last):\n",
}


def test_kills_for_memory_are_this_submissions_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", squeue(tmp_path / "bin", ROWS, LOGS) + ":/usr/bin:/bin")
    assert [job.job_id for job in memory_kills({"SLURM_JOB_ID": "16"})] == ["11", "15", "17"]
    assert [job.memory for job in memory_kills({"SLURM_JOB_ID": "16"})] == ["350M", "700M", "700M"]
    assert memory_kills({"SLURM_JOB_ID": "13"}) == []  # its own state is no earlier attempt
    assert memory_kills({}) == [] and memory_kills({"SLURM_JOB_ID": "99"}) == []  # not SLURM; not listed
    monkeypatch.setenv("PATH", "/nonexistent")
    assert memory_kills({"SLURM_JOB_ID": "16"}) == []  # no squeue: nothing is known, the job trains


@pytest.mark.parametrize("kills", [1, 2])
def test_two_kills_for_memory_make_a_failed_run_and_one_does_not(
    project: Path,  # noqa: F811
    tmp_path: Path,
    kills: int,
) -> None:
    resume = project / "runs/fewglue.CB/head.resume/seed1"
    resume.mkdir(parents=True)
    if kills == 2:
        (resume / "state.pt").write_bytes(b"")  # what a killed attempt left: removed, never read
    rows = [ROWS[0], ROWS[6] if kills == 2 else ROWS[7], ROWS[5]]  # the second: a kill for memory or not
    env = {
        "SLURM_JOB_ID": "16",
        "PATH": f"{squeue(tmp_path / 'bin', rows, LOGS)}:{Path(sys.executable).parent}:/usr/bin:/bin",
    }
    proc = prompttune(["train", "--cell", "fewglue.CB", "--method", "head", "--seed", "1"], project, **env)
    assert proc.returncode == 0, proc.stderr
    run = project / "runs/fewglue.CB/head/seed1"
    metrics = load_metrics(run / "metrics.json")
    assert not resume.exists() and not resume.parent.exists()
    if kills == 1:
        assert metrics.status != "failed" and metrics.steps > 0  # it trained (the tiny backbone collapses)
        return
    reason = (
        "not trained: SLURM killed its submission for memory 2 times (job 11 with 350M, job 17 with 700M)"
    )
    assert metrics.status == "failed" and metrics.reason is not None and metrics.reason.startswith(reason)
    assert reason in proc.stderr and "runs/fewglue.CB/head/seed1: failed, report —" in proc.stdout
    assert metrics.steps == 0 and metrics.report is None and metrics.data.sizes["train"] == 32
    assert torch.load(run / "prompt.pt") == {} and (run / "predictions.jsonl").read_text() == ""
    assert (run / "curve.csv").read_text() == "step,train_loss,lr,select_score,elapsed_s\n"
    assert "data_sha256" in json.loads((run / "provenance.json").read_text())
    again = prompttune(["train", "--cell", "fewglue.CB", "--method", "head", "--seed", "1"], project, **env)
    assert "(already trained, kept)" in again.stdout  # the record stands: a rerun does not train it
