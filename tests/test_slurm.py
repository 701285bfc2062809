"""The cluster route under a real scheduler: a single-node SLURM from Debian's packages (.ci/slurm.sh:
munged, slurmctld and slurmd on 127.0.0.1 only) runs a tiny grid through
``snakemake --profile pipelines/profiles/slurm`` as a cluster user would (the profile's copy edited only where
a site edits it: account, node size, and a group length that pairs this grid's short jobs).

- The grid completes, every compute job through sbatch (the two seeds of each method as one group job), and
  its runs equal a plain ``snakemake -c2`` run's; on the way, a group job cancelled mid-run (``scancel``) is
  resubmitted and its training resumes from its resume state.
- Then one method's runs are deleted and the grid is run again with a memory request far below what training
  needs (from the command line): SLURM kills the group job for memory twice, its third attempt records both
  runs as ``failed`` with the reason, and the landscape, aggregate and report run on them.

Marked ``e2e`` and opt-in (10–20 minutes; it replaces /etc/slurm/slurm.conf while it runs): it runs with
``PROMPTTUNE_TEST_SLURM=1``, as root, after ``.ci/slurm.sh install`` (.ci/run does both). Then it is skipped,
with the reason, when SLURM is not installed or its daemons cannot start here, or when not run as root; with
CI set, those fail instead. Every subprocess has a hard timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import active_grid, write_profile
from test_pipelines import BIN, project_copy, run, strip_timing

from prompttune import paths
from prompttune.config import expand_stages, load_params

ROOT = Path(__file__).resolve().parents[1]
SLURM_SH = ROOT / ".ci" / "slurm.sh"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
GRID_TIMEOUT = 1500  # seconds for one Snakemake run of the tiny grid (minutes; more on a busy 2-core host)
PAIR_MINUTES = 8  # each tiny training job asks for 4 minutes before the minimum (1.5 × its 2-minute start)
# a job step with Snakemake trains in ~1.2 GB and records failed runs in ~0.9 GB: attempts 1 and 2 are killed
LOW_MEMORY = "train:mem_mb=450*attempt"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("PROMPTTUNE_TEST_SLURM") != "1",
        reason="opt-in: PROMPTTUNE_TEST_SLURM=1, as root, after .ci/slurm.sh install (10–20 minutes)",
    ),
]


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"SLURM end-to-end test cannot run in CI: {reason}")
    pytest.skip(reason)


def free_port_pair() -> int:
    """A port whose successor is free too (slurmctld's and slurmd's)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000:
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free pair of ports on 127.0.0.1")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """SLURM_CONF and the node's size, of a single-node SLURM that lives as long as this module's tests."""
    if not shutil.which("slurmctld") or not shutil.which("munged"):
        unavailable("SLURM is not installed (`.ci/slurm.sh install`: slurmctld slurmd slurm-client munge)")
    if os.geteuid() != 0:
        unavailable("the single-node SLURM of .ci/slurm.sh runs its daemons as root")
    folder = tmp_path_factory.mktemp("slurm")
    try:
        up = subprocess.run(
            ["bash", str(SLURM_SH), "up", str(folder), str(free_port_pair())],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        up = None
    if up is None or up.returncode != 0:
        subprocess.run(["bash", str(SLURM_SH), "down", str(folder)], timeout=60)
        detail = (up.stdout + up.stderr)[-2000:] if up is not None else "timed out after 120 s"
        unavailable(f"the SLURM daemons did not start here:\n{detail}")
    conf = str(folder / "slurm.conf")
    env = {**os.environ, "SLURM_CONF": conf}
    node = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%c %m"], env=env, capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    yield {"SLURM_CONF": conf, "cpus": node[0], "mem_mb": node[1]}
    subprocess.run(["scancel", "--full", "--user", "root"], env=env, timeout=30)
    subprocess.run(["bash", str(SLURM_SH), "down", str(folder)], timeout=60)


def tiny_grid(project: Path) -> None:
    """The smoke profile cut to `head` and `pt` on FewGLUE CB, two seeds, one job per seed, with enough steps
    that a training job can be cancelled mid-run after a resume state was saved."""
    params = active_grid(project)
    params["grid"] = {
        "seeds": [1, 2],
        "blocks": {"main": {"cells": ["fewglue.CB"], "methods": ["head", "pt"]}},
        "stack_seeds": False,
    }
    params["run"]["train"].update(steps=60, eval_every=20, checkpoint_every=2, patience=8)
    params["studies"]["landscape"].update(methods=["pt"], seeds=[1])
    params["studies"]["mi_check"].update(seeds=[1])
    write_profile(project, "smoke", params)


def cluster_project(tmp_path: Path, mirror: Path, slurm: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A project with the tiny grid, its SLURM profile edited as a site would: no account here, this node's
    size, a short first poll (the test's jobs last seconds)."""
    project, env = project_copy(tmp_path, mirror, "smoke")
    tiny_grid(project)
    profile_file = project / "pipelines/profiles/slurm/config.yaml"
    profile = yaml.safe_load(profile_file.read_text())
    profile["default-resources"].pop("slurm_account")
    profile["default-resources"].update(
        node_cpus=int(slurm["cpus"]), node_mem_mb=int(slurm["mem_mb"]), group_minutes=PAIR_MINUTES
    )
    profile.update(
        {"slurm-no-account": True, "slurm-init-seconds-before-status-checks": 2, "latency-wait": 5}
    )
    profile_file.write_text(yaml.safe_dump(profile, sort_keys=False))
    return project, {**env, "SLURM_CONF": slurm["SLURM_CONF"]}


def squeue(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(job id, state, comment) of every job SLURM still shows (the executor's comment: rule, wildcards)."""
    command = ["squeue", "-h", "--states=all", "-o", "%i|%T|%k"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30).stdout
    return [tuple(line.split("|", 2)) for line in out.splitlines() if line.count("|") >= 2]  # type: ignore[misc]


def snakemake_on_slurm(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "snakemake"), "--profile", "pipelines/profiles/slurm", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its whole group is killed if it outlives its timeout
    )


def finish(proc: subprocess.Popen, timeout: int = GRID_TIMEOUT) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"snakemake on SLURM hung (killed after {timeout} s):\n{out[-4000:]}")
    return proc.returncode, out


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, mirror: Path, slurm: dict[str, str]) -> dict[str, Any]:
    """The tiny grid run plainly and through SLURM, with a training group job cancelled once it saved a
    resume state: the projects, the SLURM run's output and exit code, and the cancelled job."""
    tmp_path = tmp_path_factory.mktemp("grid")
    plain, plain_env = project_copy(tmp_path / "plain", mirror, "smoke")
    tiny_grid(plain)
    run([str(BIN / "snakemake"), "-c2"], plain, plain_env, timeout=GRID_TIMEOUT)

    project, env = cluster_project(tmp_path / "slurm", mirror, slurm)
    proc = snakemake_on_slurm(project, env)
    resume_state = project / "runs/fewglue.CB/pt.resume"
    cancelled = None
    deadline = time.monotonic() + GRID_TIMEOUT
    while cancelled is None and proc.poll() is None and time.monotonic() < deadline:
        # one job at a time runs on this node (each asks for all its CPUs): with pt's resume state saved,
        # the running job is pt's group
        running = [
            job_id for job_id, state, comment in squeue(env) if state == "RUNNING" and "train" in comment
        ]
        if running and any(resume_state.rglob("state.pt")):
            cancelled = running[0]
            subprocess.run(["scancel", cancelled], env=env, timeout=30, check=True)
        time.sleep(0.5)
    code, out = finish(proc)
    return {"plain": plain, "project": project, "env": env, "code": code, "out": out, "cancelled": cancelled}


def test_grid_through_slurm_equals_a_plain_run_and_a_cancelled_job_resumes(grid: dict[str, Any]) -> None:
    plain, project, code, out, cancelled = (grid[k] for k in ("plain", "project", "code", "out", "cancelled"))
    assert cancelled, f"no `pt` training job was seen running with a resume state:\n{out[-4000:]}"
    assert code == 0, out[-6000:]
    # the executor names a group job's failure ("Error in group …"), not its SLURM state: that is in its log
    assert re.search(r"^Error in group train\.\d+$|message: Error in group train\.\d+$", out, flags=re.M), (
        out[-6000:]
    )
    (log,) = (project / ".snakemake/slurm_logs").glob(f"group_*/{cancelled}.log")
    assert f"*** JOB {cancelled} ON " in log.read_text() and " CANCELLED AT " in log.read_text()
    resumed = [log.read_text() for log in (project / "logs/train/fewglue.CB/pt").glob("seed*.log")]
    assert any("resuming seed" in text for text in resumed), resumed

    submitted = re.findall(r"^Job \S+ has been submitted with SLURM jobid", out, flags=re.M)
    assert len(submitted) == 2 + 1 + 1 + 1, out[-6000:]  # 2 groups of 2 runs, landscape, MI check, the retry
    groups = set(
        re.findall(r"has been submitted with SLURM jobid \d+ \(log: \S+/slurm_logs/(group_[^/]+)/", out)
    )
    assert groups == {"group_train.0_train", "group_train.1_train"}, groups  # head's two seeds, pt's two
    assert (project / "reports/smoke.html").is_file()
    params = load_params(project / "params.yaml")
    for config in expand_stages(params):
        for seed in config.seeds:
            run_dir = paths.run_dir(config.stage, seed)
            ours = json.loads((project / run_dir / "metrics.json").read_text())
            theirs = json.loads((plain / run_dir / "metrics.json").read_text())
            assert strip_timing(ours) == strip_timing(theirs), f"{run_dir} differs from the plain run"
            assert (project / run_dir / "predictions.jsonl").read_text() == (
                plain / run_dir / "predictions.jsonl"
            ).read_text()


def test_a_group_killed_twice_for_memory_ends_as_failed_runs_and_a_report(grid: dict[str, Any]) -> None:
    project, env = grid["project"], grid["env"]
    assert grid["code"] == 0, "the grid did not complete"
    head = {p: p.read_text() for p in (project / "runs/fewglue.CB/head").rglob("metrics.json")}
    report = project / "reports/smoke.html"
    before = report.stat().st_mtime_ns
    shutil.rmtree(project / "runs/fewglue.CB/pt")
    again = [f"runs/fewglue.CB/pt/seed{seed}/metrics.json" for seed in (1, 2)]  # as the README says: by name
    code, out = finish(
        snakemake_on_slurm(project, env, *again, "reports/smoke.html", "--set-resources", LOW_MEMORY)
    )
    assert code == 0, out[-6000:]
    assert len(re.findall(r"Error in group train\.\d+$", out, flags=re.M)) >= 2, out[-6000:]
    attempts = re.findall(
        r"has been submitted with SLURM jobid \d+ \(log: (\S+/group_train[^/]+/\d+\.log)\)", out
    )
    assert len(attempts) == 3, out[-6000:]  # pt's group: two attempts killed, the third records the runs
    kept = [Path(log) for log in attempts if Path(log).exists()]  # the executor deletes a finished job's log
    assert len(kept) == 2, attempts
    for log in kept:
        assert "exceeded job memory limit" in log.read_text().lower(), log.read_text()[-3000:]  # slurmstepd
    for seed in (1, 2):
        metrics = json.loads((project / f"runs/fewglue.CB/pt/seed{seed}/metrics.json").read_text())
        assert metrics["status"] == "failed" and metrics["steps"] == 0, metrics
        assert metrics["reason"].startswith(
            "not trained: SLURM killed its submission for memory 2 times (job "
        )
        log = (project / f"logs/train/fewglue.CB/pt/seed{seed}.log").read_text()
        assert f"{metrics['reason']}: recording the runs as failed" in log
    assert {p: p.read_text() for p in head} == head, "the other method's runs were left alone"
    assert report.stat().st_mtime_ns > before
    assert "not trained: SLURM killed its submission for memory 2 times" in report.read_text()
    assert not (project / "runs/fewglue.CB/pt.resume").exists()
