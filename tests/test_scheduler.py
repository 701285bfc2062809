"""A training job's earlier attempts under SLURM (prompttune.scheduler): recorded only under SLURM, kills for
memory counted from SLURM's own job states, and after two of them the next attempt writes the runs as
``failed`` with the reason instead of training. SLURM's state query is a stand-in ``squeue`` on PATH that
answers from a table; tests/test_slurm.py runs the same path under a real SLURM."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from test_cli_errors import project, prompttune  # noqa: F401 — the project fixture

from prompttune.results import load_metrics
from prompttune.scheduler import LOG, Attempt, memory_kills

SQUEUE = """#!{python}
import json, sys
job = sys.argv[sys.argv.index("-j") + 1]
states = json.load(open({states!r}))
if job not in states:
    sys.exit("slurm_load_jobs error: Invalid job id specified")
print(states[job])
"""


def slurm_states(folder: Path, states: dict[str, str]) -> str:
    """A folder holding an ``squeue`` that reports ``states`` (job id → state); returns it for PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "states.json").write_text(json.dumps(states))
    script = folder / "squeue"
    script.write_text(SQUEUE.format(python=sys.executable, states=str(folder / "states.json")))
    script.chmod(0o755)
    return str(folder)


def job(job_id: str, mem: int) -> dict[str, str]:
    return {"SLURM_JOB_ID": job_id, "SLURM_MEM_PER_NODE": str(mem)}


def test_outside_slurm_nothing_is_recorded(tmp_path: Path) -> None:
    assert memory_kills(tmp_path / "resume", environ={}) == []
    assert not (tmp_path / "resume").exists()


def test_kills_for_memory_are_counted_from_slurms_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = {"11": "OUT_OF_MEMORY", "12": "CANCELLED", "13": "OUT_OF_MEMORY", "14": "RUNNING"}
    monkeypatch.setenv("PATH", slurm_states(tmp_path / "bin", states) + ":/usr/bin:/bin")
    folder = tmp_path / "resume"
    assert memory_kills(folder, job("11", 300)) == []
    assert memory_kills(folder, job("12", 600)) == [Attempt("11", 300)]
    assert memory_kills(folder, job("13", 600)) == [Attempt("11", 300)]  # a cancel is no memory kill
    assert memory_kills(folder, job("14", 900)) == [Attempt("11", 300), Attempt("13", 600)]
    assert memory_kills(folder, job("14", 900)) == [Attempt("11", 300), Attempt("13", 600)]  # requeued
    assert len((folder / LOG).read_text().splitlines()) == 5
    monkeypatch.setenv("PATH", "/nonexistent")
    assert memory_kills(folder, job("15", 900)) == []  # neither squeue nor sacct: nothing is known


@pytest.mark.parametrize("kills", [1, 2])
def test_two_kills_for_memory_make_a_failed_run_and_one_does_not(
    project: Path,  # noqa: F811
    tmp_path: Path,
    kills: int,
) -> None:
    resume = project / "runs/fewglue.CB/head.resume/seed1"
    resume.mkdir(parents=True)
    earlier = [{"job_id": str(11 + i), "mem_mb": 300 * (i + 1)} for i in range(kills)]
    (resume / LOG).write_text("".join(json.dumps(a) + "\n" for a in earlier))
    path = slurm_states(tmp_path / "bin", {a["job_id"]: "OUT_OF_MEMORY" for a in earlier})
    env = job("20", 900) | {"PATH": f"{path}:{Path(sys.executable).parent}:/usr/bin:/bin"}
    proc = prompttune(["train", "--cell", "fewglue.CB", "--method", "head", "--seed", "1"], project, **env)
    assert proc.returncode == 0, proc.stderr
    run = project / "runs/fewglue.CB/head/seed1"
    metrics = load_metrics(run / "metrics.json")
    assert not resume.exists() and not resume.parent.exists()
    if kills == 1:
        assert metrics.status != "failed" and metrics.steps > 0  # it trained (the tiny backbone collapses)
        return
    reason = "killed for memory by SLURM 2 times (job 11 with 300 MB, job 12 with 600 MB)"
    assert metrics.status == "failed" and metrics.reason is not None and metrics.reason.startswith(reason)
    assert reason in proc.stderr and "runs/fewglue.CB/head/seed1: failed, report —" in proc.stdout
    assert metrics.steps == 0 and metrics.report is None and metrics.data.sizes["train"] == 32
    assert torch.load(run / "prompt.pt") == {} and (run / "predictions.jsonl").read_text() == ""
    assert (run / "curve.csv").read_text() == "step,train_loss,lr,select_score,elapsed_s\n"
    assert "data_sha256" in json.loads((run / "provenance.json").read_text())
    again = prompttune(["train", "--cell", "fewglue.CB", "--method", "head", "--seed", "1"], project, **env)
    assert "(already trained, kept)" in again.stdout  # the record stands: a rerun does not train it
