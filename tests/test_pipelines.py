"""DVC and Snakemake, for real, on temporary copies of the project.

- Both pipelines expand params.yaml to the same runs, commands and outputs (every profile).
- End to end (marked ``e2e``): the smoke profile through ``dvc repro`` and through ``snakemake -c2`` on
  the embedded MiniLM and the data mirror gives a report, ``dvc metrics show`` lists every seed,
  and the two pipelines produce identical metrics.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from browser import ARTIFACTS, open_page, require_chromium

from prompttune.config import expand_grid, load_params
from prompttune.results import load_metrics

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT_FILES = ["params.yaml", "dvc.yaml", "Snakefile", "pipelines", "prompttune"]
GIT_ID = {"NAME": "prompttune tests", "EMAIL": "tests@prompttune.invalid"}


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 900, stderr: bool = False) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + (proc.stderr if stderr else "")


def project_copy(tmp_path: Path, mirror: Path, profile: str) -> tuple[Path, dict[str, str]]:
    """A temporary git + DVC project with the pipeline files and the given profile active."""
    project = tmp_path / "project"
    project.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, project / name)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PROMPTTUNE_DATA_MIRROR": str(mirror),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache"),
        "DVC_GLOBAL_CONFIG_DIR": str(tmp_path / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(tmp_path / "dvc-system"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER") for what, value in GIT_ID.items()},
    }
    run(["git", "init", "-q"], project, env)
    run([str(BIN / "dvc"), "init", "-q"], project, env)
    run([str(BIN / "prompttune"), "profile", profile], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "project"], project, env)  # DVC experiments start from a commit
    return project, env


def dvc_stages(project: Path, env: dict[str, str]) -> dict[str, tuple[str, set[str]]]:
    """Stage name → (command, outputs), from DVC's own resolution of dvc.yaml."""
    script = (
        "import json; from dvc.repo import Repo\n"
        "repo = Repo('.')\n"
        "stages = {s.addressing: [s.cmd, sorted(str(o.def_path) for o in s.outs)]\n"
        "          for s in repo.index.stages}\n"
        "print(json.dumps(stages))"
    )
    stages = json.loads(run([sys.executable, "-c", script], project, env).strip().splitlines()[-1])
    return {name: (cmd, set(outs)) for name, (cmd, outs) in stages.items()}


def snakemake_jobs(project: Path, env: dict[str, str]) -> tuple[set[str], set[str]]:
    """(shell commands, output files) of every job of a forced dry run."""
    out = run([str(BIN / "snakemake"), "-n", "-p", "--forceall", "-c1"], project, env, stderr=True)
    prefix = "Shell command: "
    commands = {line.strip().removeprefix(prefix) for line in out.splitlines() if line.startswith(prefix)}
    commands.discard("None")  # rule all has no command
    summary = run([str(BIN / "snakemake"), "--summary", "-c1"], project, env)
    outputs = {line.split("\t")[0] for line in summary.splitlines()[1:] if line.strip()}
    return commands, outputs


RUN_FILES = ("prompt.pt", "predictions.jsonl", "config.json", "provenance.json", "metrics.json", "curve.csv")


@pytest.mark.parametrize("profile", ["default", "paper"])
def test_dvc_and_snakemake_expand_to_the_same_runs(tmp_path: Path, mirror: Path, profile: str) -> None:
    project, env = project_copy(tmp_path, mirror, profile)
    params = load_params(project / "params.yaml")
    runs = expand_grid(params)
    groups = {cell.method_dir: cell for cell in runs}  # one DVC training stage per cell × method (× variant)

    stages = dvc_stages(project, env)
    train = {name for name in stages if name.startswith(("train@", "train-variant@"))}
    assert len(train) == len(groups) < len(runs)
    landscapes = {name for name in stages if name.startswith("landscape@")}
    assert len(landscapes) == len(params.studies.landscape.cells) * len(params.studies.landscape.methods)
    dvc_commands = {cmd for cmd, _ in stages.values()}
    dvc_outputs = set().union(*(outs for _, outs in stages.values()))
    assert {str(d) for d in groups} <= dvc_outputs
    assert all(cmd.endswith(" --grid-seeds") for name, (cmd, _) in stages.items() if name in train)

    smk_commands, smk_outputs = snakemake_jobs(project, env)
    if params.grid.stack_seeds:  # the same jobs as DVC's stages
        assert smk_commands == dvc_commands
    else:  # one job per seed instead of one per cell × method
        per_seed = {
            cmd.replace(" --grid-seeds", f" --seed {seed}")
            for name, (cmd, _) in stages.items()
            for seed in (params.grid.variants.seeds if "--variant" in cmd else params.grid.seeds)
            if name in train
        }
        assert smk_commands == (dvc_commands - {stages[name][0] for name in train}) | per_seed
    run_files = {f"{cell.run_dir}/{name}" for cell in runs for name in RUN_FILES}
    seeds_metrics = {str(cell.seeds_metrics) for cell in groups.values()}  # written by --grid-seeds only
    metrics = {"results/summary.json", "results/mi_check/checks.json"}
    expected = (dvc_outputs - {str(d) for d in groups} - seeds_metrics) | run_files | metrics
    if params.grid.stack_seeds:
        expected |= seeds_metrics
    assert smk_outputs == expected
    assert f"reports/{profile}.html" in smk_outputs


def strip_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith(("_s", "_mb"))}


@pytest.mark.e2e
def test_smoke_profile_end_to_end_through_dvc_and_snakemake(tmp_path: Path, mirror: Path) -> None:
    dvc_project, env = project_copy(tmp_path / "dvc", mirror, "smoke")
    run([str(BIN / "dvc"), "repro"], dvc_project, env)
    params = load_params(dvc_project / "params.yaml")
    runs = expand_grid(params)
    n_methods = len(params.grid.methods)
    assert (
        n_methods == 10
        and len(runs) == 2 * n_methods + 1
        and runs[-1].run_dir.parts[-2] == "pt-infoprompt@init-vocab"
    )

    summary = pd.read_csv(dvc_project / "results" / "summary.csv", keep_default_na=False)
    assert len(summary) == n_methods + 1
    assert summary["n_runs"].tolist() == [2] * n_methods + [1]
    assert summary["variant"].tolist() == [""] * n_methods + ["init-vocab"]
    runs_table = pd.read_csv(dvc_project / "results" / "runs.csv")
    with_sharpness = runs_table.dropna(subset=["sharpness"])
    assert with_sharpness[["method", "seed"]].values.tolist() == [["pt2", 1], ["pt-ptp-adv-emb", 1]]
    for method in params.studies.landscape.methods:
        assert (dvc_project / f"results/landscape/fewglue.CB/{method}/surfaces.png").is_file()
    checks = json.loads((dvc_project / "results/mi_check/checks.json").read_text())
    assert checks["checks"] and checks["real"]["runs"]
    claims = pd.read_csv(dvc_project / "results" / "claims.csv")
    assert set(claims["id"]) == {f"PTP-{i}" for i in range(1, 6)} | {f"IP-{i}" for i in range(1, 6)}
    assert (claims[claims["id"] != "IP-5"]["verdict"] == "inconclusive").all(), "2 seeds: never a verdict"
    assert "best variant pt-ptp-" in claims[claims["id"] == "PTP-2"]["scope"].iloc[0]
    require_chromium()
    page = open_page(dvc_project / "reports" / "smoke.html", ARTIFACTS / "report" / "smoke.png")
    assert page.console_errors == []
    assert page.dom.count('src="data:image/png;base64,') == 1 + 1 + 1 + 2  # strip, curves, landscape, MI
    report = (dvc_project / "reports" / "smoke.html").read_text()
    for method in params.grid.methods:
        assert f"<code>{method}</code>" in report
    assert "n = " in report and "git" in report and "sha256" in report

    shown = json.loads(run([str(BIN / "dvc"), "metrics", "show", "--json"], dvc_project, env))
    assert "results/summary.json" in json.dumps(shown)
    assert "report" in json.dumps(shown)
    for cell in runs:  # every seed's headline, in the file DVC lists per cell × method
        headline = json.loads((dvc_project / cell.seeds_metrics).read_text())[f"seed{cell.seed}"]
        assert headline == load_metrics(dvc_project / cell.run_dir / "metrics.json").headline()
    status = run([str(BIN / "dvc"), "status"], dvc_project, env)
    assert "up to date" in status.lower()
    check_experiment_queue(dvc_project, env)

    smk_project, smk_env = project_copy(tmp_path / "smk", mirror, "smoke")
    run([str(BIN / "snakemake"), "-c2"], smk_project, smk_env)
    assert (smk_project / "reports" / "smoke.html").is_file()
    for cell in runs:
        a = json.loads((dvc_project / cell.run_dir / "metrics.json").read_text())
        b = json.loads((smk_project / cell.run_dir / "metrics.json").read_text())
        assert a["status"] in {"ok", "collapsed"}
        assert strip_timing(a) == strip_timing(b), f"{cell.run_dir} differs between DVC and Snakemake"
        assert (dvc_project / cell.run_dir / "predictions.jsonl").read_text() == (
            smk_project / cell.run_dir / "predictions.jsonl"
        ).read_text()
    assert re.search(r"<h1>prompttune report", report)


def compact(value: object) -> object:
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None and v != {}}
    return value


def check_experiment_queue(project: Path, env: dict[str, str]) -> None:
    """``dvc exp run --queue`` with 2 parallel workers, one experiment per seed over part of the smoke
    grid (train stages only), gives exactly the metrics of the serial ``dvc repro`` in ``project``,
    without touching the workspace's runs; the shared tokenisation cache ends without partial entries."""
    dvc = str(BIN / "dvc")
    methods, seeds = ["head", "pt", "pt-infoprompt"], [1, 2]
    before = {p: p.read_bytes() for p in (project / "runs").rglob("*metrics.json")}
    for seed in seeds:
        overrides = {
            "grid.methods": f"[{','.join(methods)}]",
            "grid.seeds": f"[{seed}]",
            "grid.variants.seeds": f"[{seed}]",
            "studies.landscape.methods": "[pt]",
            "studies.landscape.seeds": f"[{seed}]",
            "studies.mi_check.seeds": f"[{seed}]",
        }
        flags = [arg for key, value in overrides.items() for arg in ("-S", f"{key}={value}")]
        run([dvc, "exp", "run", "--queue", "-n", f"seed{seed}", *flags, "train"], project, env)
    run([dvc, "queue", "start", "-j", "2"], project, env)
    deadline = time.monotonic() + 900
    while re.search(r"\b(Queued|Running)\b", status := run([dvc, "queue", "status"], project, env)):
        assert time.monotonic() < deadline, status
        time.sleep(5)
    assert status.count("Success") == len(seeds), status
    shown = json.loads(run([dvc, "exp", "show", "--json"], project, env))
    experiments = {
        rev["name"]: rev for entry in shown for exp in entry.get("experiments") or [] for rev in exp["revs"]
    }
    for seed in seeds:
        metrics = experiments[f"seed{seed}"]["data"]["metrics"]
        for method in methods:
            name = f"runs/fewglue.CB/{method}.metrics.json"
            assert set(metrics[name]["data"]) == {f"seed{seed}"}, f"{name}: the experiment's seeds only"
            serial = json.loads((project / name).read_text())[f"seed{seed}"]
            expected = compact(serial)  # `dvc exp show` leaves out nulls and empty objects
            assert metrics[name]["data"][f"seed{seed}"] == expected, f"{name} seed{seed}: queue ≠ serial"
    assert {p: p.read_bytes() for p in (project / "runs").rglob("*metrics.json")} == before
    cache = Path(env["PROMPTTUNE_CACHE"]) / "tokens"
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_stack_seeds_gives_one_snakemake_job_per_cell_and_method(tmp_path: Path, mirror: Path) -> None:
    project, env = project_copy(tmp_path, mirror, "smoke")
    params = load_params(project / "params.yaml")
    assert params.grid.stack_seeds
    commands, outputs = snakemake_jobs(project, env)
    train = sorted(c for c in commands if c.startswith("prompttune train"))
    expected = [f"prompttune train --cell fewglue.CB --method {m} --grid-seeds" for m in params.grid.methods]
    expected.append(
        "prompttune train --cell fewglue.CB --method pt-infoprompt --variant init-vocab --grid-seeds"
    )
    assert train == sorted(expected)
    runs = expand_grid(params)
    assert {str(cell.run_dir / "metrics.json") for cell in runs} | {
        str(c.seeds_metrics) for c in runs
    } <= outputs


def test_slurm_profile_dry_run_gives_one_gpu_job_per_run(tmp_path: Path, mirror: Path) -> None:
    project, env = project_copy(tmp_path, mirror, "paper")
    n_runs = len(expand_grid(load_params(project / "params.yaml")))
    out = run(
        [str(BIN / "snakemake"), "--profile", "pipelines/profiles/slurm", "-n"], project, env, stderr=True
    )
    train_jobs = re.split(r"\nrule train(?:_variant)?:", out)[1:]
    assert len(train_jobs) == n_runs == 17 * 13 * 5 + 4 * 2 * 2 * 5
    landscape_jobs = out.split("\nrule landscape:")[1:]
    assert len(landscape_jobs) == 13 * 10  # PTP's settings: SuperGLUE and FewGLUE
    for job in train_jobs + landscape_jobs:
        resources = next(line for line in job.splitlines() if line.strip().startswith("resources:"))
        assert "gpu=1" in resources and "slurm_partition=gpu" in resources
