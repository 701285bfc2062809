"""DVC and Snakemake, for real, on temporary copies of the project.

- Both pipelines expand params.yaml to the same commands on each record and the same outputs (DVC a step
  over the whole grid, Snakemake a job per stage; every profile with a grid worth checking), and every
  stage depends on the code it imports (its static import closure).
- Snakemake honours ``--configfile`` and reruns exactly the jobs whose resolved config changed.
- End to end (marked ``e2e``): the smoke profile through the README's queue recipe (one experiment per seed,
  then ``dvc repro``, which takes every run from the run store) and ``snakemake -c2`` on the embedded MiniLM
  and the data mirror gives a report; ``dvc metrics show``, ``dvc plots show`` and ``dvc exp show`` see the
  headline metrics and curves; an edit to one cell's settings retrains that cell only and a changed constant
  in claims.py reruns the report only; Snakemake, sharing DVC's run store, asks for the same runs (it takes
  every one from the store) but one stage's, which it trains itself to identical metrics and predictions.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from browser import ARTIFACTS, open_page, require_chromium

from prompttune import paths
from prompttune.config import Stage, expand_stages, load_params
from prompttune.run_store import RUN_FILES

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT_FILES = [
    "params.yaml",
    "profiles.yaml",
    "seeds.yaml",
    "dvc.yaml",
    "Snakefile",
    ".dvcignore",
    ".gitignore",  # git leaves DVC's outputs (configs, runs, results, ...) to DVC
    "pipelines",
    "prompttune",
]
GIT_ID = {"NAME": "prompttune tests", "EMAIL": "tests@prompttune.invalid"}
ENV_PREFIX = re.compile(
    r"^(?:[A-Z_][A-Z0-9_]*=\S* )+"
)  # e.g. HF_HUB_OFFLINE=1 before a cluster job's command
LOG_SUFFIX = re.compile(r" 2> >\(tee (\S+) >&2\)$")  # Snakemake's copy of a job's stderr into its log


def pipeline_command(shell: str) -> str:
    """A Snakemake job's shell command as DVC's stage runs it: without the environment prefix and the log."""
    return LOG_SUFFIX.sub("", ENV_PREFIX.sub("", shell.strip()))


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


def snakemake_jobs(project: Path, env: dict[str, str], *args: str) -> tuple[set[str], set[str]]:
    """(shell commands, output files) of every job of a forced dry run."""
    out = run([str(BIN / "snakemake"), "-n", "-p", "--forceall", "-c1", *args], project, env, stderr=True)
    prefix = "Shell command: "
    commands = {
        pipeline_command(line.strip().removeprefix(prefix))
        for line in out.splitlines()
        if line.startswith(prefix)
    }
    commands.discard("None")  # rule all has no command
    summary = run([str(BIN / "snakemake"), "--summary", "-c1", *args], project, env)
    outputs = {line.split("\t")[0] for line in summary.splitlines()[1:] if line.strip()}
    return commands, outputs


@pytest.mark.parametrize("profile", ["default", "fixed", "paper"])
def test_dvc_and_snakemake_expand_to_the_same_stages(tmp_path: Path, mirror: Path, profile: str) -> None:
    """DVC runs one stage per step over the grid's records; Snakemake one job per training stage (or seed),
    cell and landscape, with the same commands on single records and the same output files."""
    project, env = project_copy(tmp_path, mirror, profile)
    params = load_params(project / "params.yaml")
    stages = expand_stages(params)
    dvc = dvc_stages(project, env)
    assert set(dvc) == {"configure", "fetch", "train", "landscape", "mi-check", "aggregate", "report"}
    assert dvc["train"] == (
        "prompttune train --config configs/train --prune",
        {"runs", "metrics/train", "metrics/curves"},
    )
    assert dvc["landscape"] == (
        "prompttune landscape --config configs/landscape --prune",
        {"results/landscape"},
    )
    assert dvc["fetch"] == ("prompttune fetch", {"data"})
    configs = {str(path.relative_to(project)) for path in (project / "configs").rglob("*.json")}
    assert {str(paths.stage_config(c.stage)) for c in stages} == {
        c for c in configs if c.startswith("configs/train/")
    }
    smk_commands, smk_outputs = snakemake_jobs(project, env)

    def of(step: str) -> set[str]:
        return {cmd for cmd in smk_commands if cmd.startswith(f"prompttune {step} ")}

    per_stage = {f"prompttune train --config {paths.stage_config(c.stage)}" for c in stages}
    stacked = params.grid.stacked_jobs
    assert of("train") == (
        per_stage
        if stacked
        else {
            f"prompttune train --config {paths.stage_config(c.stage)} --seed {s}"
            for c in stages
            for s in c.seeds
        }
    )  # noqa: E501
    assert of("landscape") == {
        f"prompttune landscape --config {c}" for c in configs if c.startswith("configs/landscape/")
    }
    assert of("fetch") == {
        f"prompttune fetch --cell {cell} --dest data/{cell}" for cell in {c.stage.cell for c in stages}
    }
    whole = {"configure", "fetch", "train", "landscape"}  # the steps DVC runs over the whole grid at once
    assert smk_commands - of("train") - of("landscape") - of("fetch") == {
        cmd for name, (cmd, _) in dvc.items() if name not in whole
    }
    dvc_outs = set().union(*(outs for _, outs in dvc.values())) - {"configs"}  # Snakemake configures at parse
    prefetched = {f for f in smk_outputs if f.startswith("backbones/")}  # the cluster's hub downloads
    assert all(any(f == o or f.startswith(f"{o}/") for o in dvc_outs) for f in smk_outputs - prefetched)
    run_files = {
        f"{paths.run_dir(c.stage, seed)}/{name}" for c in stages for seed in c.seeds for name in RUN_FILES
    }
    if stacked:  # a job per stage: its run folder, headline and curves
        assert {str(paths.method_dir(c.stage)) for c in stages} | {
            str(paths.headline(c.stage)) for c in stages
        } <= smk_outputs
    else:  # one job per seed instead of one per stage, no headline (it needs every seed)
        assert run_files <= smk_outputs
    assert f"reports/{profile}.html" in smk_outputs


def test_pruning_removes_only_what_the_grid_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DVC's ``train --prune`` and ``landscape --prune``: the folders of stages (and pairs) no longer in the
    grid go, with their headline and curves; kept stages keep their runs, variant runs and resume states."""
    from prompttune.cli import _remove_stale_pairs, _remove_stale_stages

    monkeypatch.chdir(tmp_path)
    files = [
        "runs/fewglue.CB/pt/seed1/metrics.json",
        "runs/fewglue.CB/pt.resume/seed1+2/state.pt",
        "runs/fewglue.CB/pt@init-vocab/seed1/metrics.json",
        "runs/fewglue.CB/head/seed1/metrics.json",
        "runs/fewglue.CB/head.resume/seed1/state.pt",
        "metrics/train/fewglue.CB/pt.json",
        "metrics/train/fewglue.CB/pt@init-vocab.json",
        "metrics/train/fewglue.CB/head.json",
        "metrics/curves/fewglue.CB/head.csv",
        "metrics/claims.json",
        "results/landscape/fewglue.CB/pt/seed1/surface.json",
        "results/landscape/fewglue.CB/head/seed1/surface.json",
    ]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    _remove_stale_stages([Stage("fewglue.CB", "pt"), Stage("fewglue.CB", "pt", "init-vocab")])
    _remove_stale_pairs({paths.landscape_dir("fewglue.CB", "pt")})
    kept = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert kept == sorted(
        set(files)
        - {
            "runs/fewglue.CB/head/seed1/metrics.json",
            "runs/fewglue.CB/head.resume/seed1/state.pt",
            "metrics/train/fewglue.CB/head.json",
            "metrics/curves/fewglue.CB/head.csv",
            "results/landscape/fewglue.CB/head/seed1/surface.json",
        }
    )


# --- every stage depends on the code it imports --------------------------------------------------------

PACKAGE = ROOT / "prompttune"
STAGE_COMMANDS = {
    "configure": "configure",
    "fetch": "fetch",
    "train": "train",
    "landscape": "landscape",
    "mi-check": "mi_check",
    "aggregate": "aggregate",
    "report": "report",
}


def module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported(tree: ast.AST) -> set[str]:
    """Every prompttune module an AST imports, anywhere in it (function-level imports too)."""
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for name in names:
            if name.startswith("prompttune") and module_file(name):
                parts = name.split(".")
                out |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return out


def data_files(path: Path) -> set[Path]:
    """Package data a module reads: the files its string literals name (templates, tables)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"\w[\w./-]{0,79}", node.value)
        ):
            for folder in (PACKAGE / "data", PACKAGE / "templates"):
                if (folder / node.value).is_file():
                    found.add(folder / node.value)
            if node.value == "templates":
                found.add(PACKAGE / "templates")
    return found


def needs(command: str) -> set[Path]:
    """The files ``prompttune <command>`` may read from the package: the CLI's top-level imports and the
    command's own, their import closure, and the data files those modules name."""
    cli = ast.parse((PACKAGE / "cli.py").read_text())
    top = imported(
        ast.Module(body=[n for n in cli.body if isinstance(n, ast.Import | ast.ImportFrom)], type_ignores=[])
    )
    functions = {n.name: n for n in cli.body if isinstance(n, ast.FunctionDef)}
    called, pending = set(), [command]  # the command and the module's helpers it calls, transitively
    while pending:
        name = pending.pop()
        called.add(name)
        pending += [
            n.func.id
            for n in ast.walk(functions[name])
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in functions
        ]
        pending = [n for n in pending if n not in called]
    todo, seen = [*top, *(m for name in called for m in imported(functions[name]))], set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += imported(ast.parse(module_file(name).read_text()))
    files = {module_file(name) for name in seen} | {PACKAGE / "cli.py"}
    return files | {f for file in list(files) for f in data_files(file)}


def test_every_stage_declares_the_code_it_imports() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGE_COMMANDS)
    for stage, command in STAGE_COMMANDS.items():
        declared = [
            ROOT / d for d in stages[stage].get("do", stages[stage])["deps"] if d.startswith("prompttune")
        ]
        missing = [f for f in needs(command) if not any(f == d or d in f.parents for d in declared)]
        assert not missing, f"dvc.yaml stage {stage} misses {[str(m.relative_to(ROOT)) for m in missing]}"
        assert needs(command) >= {f for d in declared for f in ([d] if d.is_file() else d.rglob("*.py"))} - {
            None
        }


def test_the_report_depends_on_the_verdict_logic_and_training_does_not() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert {"prompttune/claims.py", "prompttune/stats.py", "prompttune/figures.py"} <= set(
        stages["report"]["deps"]
    )
    assert "prompttune/claims.py" not in stages["train"]["deps"]
    assert {"prompttune/config.py", "prompttune/tokens.py", "prompttune/results.py"} <= set(
        stages["train"]["deps"]
    )


def test_a_dvc_experiment_switches_the_profile_and_overrides_a_key(tmp_path: Path, mirror: Path) -> None:
    """``dvc exp run -S profile=smoke -S "++grid.seeds=[1,3]"``: the smoke preset with the seeds overridden,
    no preset rewritten, and ``dvc params diff`` lists exactly those two keys."""
    project, env = project_copy(tmp_path, mirror, "default")
    dvc = str(BIN / "dvc")
    run([dvc, "exp", "run", "-S", "profile=smoke", "-S", "++grid.seeds=[1,3]", "configure"], project, env)
    assert yaml.safe_load((project / "params.yaml").read_text()) == {
        "profile": "smoke",
        "grid": {"seeds": [1, 3]},
    }
    assert run(["git", "status", "--porcelain", "profiles.yaml"], project, env) == ""
    grid = json.loads((project / "configs" / "grid.json").read_text())
    smoke = expand_stages(load_params(project / "params.yaml"))
    assert grid["profile"] == "smoke" and len(grid["stages"]) == len(smoke) == 12
    assert {tuple(config.seeds) for config in smoke} == {
        (1, 3),
        (1,),
    }  # a block with its own seeds keeps them
    diff = json.loads(run([dvc, "params", "diff", "--json"], project, env))
    assert diff == {
        "params.yaml": {
            "profile": {"old": "default", "new": "smoke"},
            "grid.seeds": {"old": None, "new": "[1, 3]"},  # DVC shows a list as text
        }
    }


def test_dvc_plots_overlay_a_cells_methods_with_the_seed_spread(tmp_path: Path, mirror: Path) -> None:
    """``dvc plots show`` renders results/curves.csv (one row per run and step) with the project's template:
    a panel per cell, a colour per method (and variant), the mean over seeds with a ±1 sd band."""
    project, env = project_copy(tmp_path, mirror, "smoke")
    rows = ["setting,task,method,variant,seed,step,select_score,train_loss"]
    for method, variant, level in (("pt", "", 50.0), ("pt-ptp-rn-emb", "", 60.0), ("pt", "init-vocab", 55.0)):
        for seed in (1, 2, 3):
            for step in (8, 16, 24):
                rows.append(f"fewglue,CB,{method},{variant},{seed},{step},{level + seed + step / 8},0.5")
    rows.append("fewshot-64,SST-2,head,,1,16,70.0,0.4")
    (project / "results").mkdir()
    (project / "results" / "curves.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "plots"
    spec = json.loads(
        run([str(BIN / "dvc"), "plots", "show", "results/curves.csv", "--show-vega"], project, env)
    )
    assert spec["facet"]["field"] == "cell" and spec["spec"]["encoding"]["color"]["field"] == "stage"
    band, line = spec["spec"]["layer"]
    assert band["mark"]["extent"] == "stdev" and band["encoding"]["y"]["field"] == "select_score"
    assert line["encoding"]["y"] == {"aggregate": "mean", "field": "select_score", "type": "quantitative"}
    assert spec["spec"]["encoding"]["x"]["field"] == "step" and len(spec["data"]["values"]) == len(rows) - 1
    run([str(BIN / "dvc"), "plots", "show", "-o", str(out)], project, env)
    assert "results_curves_csv" in (out / "index.html").read_text()


# --- Snakemake: --configfile and what reruns ----------------------------------------------------------


def test_snakemake_trains_what_a_configfile_says(tmp_path: Path, mirror: Path) -> None:
    project, env = project_copy(tmp_path, mirror, "smoke")
    other = {
        "grid": {"seeds": [7], "blocks": {"main": {"methods": ["pt", "pt2"]}}},
        "studies": {"landscape": {"methods": ["pt2"], "seeds": [7]}, "mi_check": {"seeds": [7]}},
    }
    (project / "other.yaml").write_text(yaml.safe_dump(other))  # merged over params.yaml, as Snakemake does
    commands, _ = snakemake_jobs(project, env, "--configfile", "other.yaml")
    trained = sorted(c.split("configs/train/")[1] for c in commands if c.startswith("prompttune train"))
    assert trained == [
        "fewglue.CB/pt-infoprompt/init-vocab.json",
        "fewglue.CB/pt.json",
        "fewglue.CB/pt2.json",
        "fewshot-64.SST-2/head.json",
    ]
    before = json.loads((project / "configs/train/fewglue.CB/pt.json").read_text())
    assert before["seeds"] == [1, 2], "the dry runs wrote nothing"
    run([str(BIN / "snakemake"), "-c1", "--configfile", "other.yaml", "--until", "fetch"], project, env)
    written = json.loads((project / "configs/train/fewglue.CB/pt.json").read_text())
    assert written["seeds"] == [7], "a run writes the configfile's resolved config, which the jobs read"
    assert not (project / "configs/train/fewglue.CB/head.json").exists(), "what other.yaml drops is gone"


# --- end to end -------------------------------------------------------------------------------------


def changed_stages(project: Path, env: dict[str, str]) -> set[str]:
    status = json.loads(run([str(BIN / "dvc"), "status", "--json"], project, env))
    return set(status)


ONE_CELL = "run: {cells: {fewshot-64.SST-2: {train: {lr: 0.02}}}}\n"  # an override of one cell's settings


def strip_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith(("_s", "_mb"))}


@pytest.mark.e2e
def test_smoke_profile_end_to_end_through_dvc_and_snakemake(tmp_path: Path, mirror: Path) -> None:
    dvc = str(BIN / "dvc")
    dvc_project, env = project_copy(tmp_path / "dvc", mirror, "smoke")
    env["PROMPTTUNE_RUN_STORE"] = str(tmp_path / "run-store")
    params = load_params(dvc_project / "params.yaml")
    stages = expand_stages(params)
    runs = [(c.stage, seed) for c in stages for seed in c.seeds]
    assert len(stages) == 12 and len(runs) == 2 * 10 + 1 + 2
    check_queue_recipe(dvc_project, env, len(runs))

    claims = (dvc_project / "results" / "claims.csv").read_text()
    for claim in [f"PTP-{i}" for i in range(1, 6)] + [f"IP-{i}" for i in range(1, 6)]:
        assert f"\n{claim}," in claims
    with_sharpness = [line for line in (dvc_project / "results/runs.csv").read_text().splitlines()[1:]]
    assert len(with_sharpness) == len(runs)
    for method in params.studies.landscape.methods:
        assert (dvc_project / f"results/landscape/fewglue.CB/{method}/surfaces.png").is_file()
    checks = json.loads((dvc_project / "results/mi_check/checks.json").read_text())
    assert checks["checks"] and checks["real"]["runs"]
    require_chromium()
    page = open_page(dvc_project / "reports" / "smoke.html", ARTIFACTS / "report" / "smoke.png")
    assert page.console_errors == []
    report = (dvc_project / "reports" / "smoke.html").read_text()
    for config in stages:
        assert f"<code>{config.stage.method}</code>" in report

    shown = json.loads(run([dvc, "metrics", "show", "--json"], dvc_project, env))
    assert "metrics/train/fewglue.CB/pt.json" in json.dumps(shown)
    plots = tmp_path / "plots"
    run([dvc, "plots", "show", "-o", str(plots)], dvc_project, env)
    page = (plots / "index.html").read_text()
    assert "metrics_curves_fewglue_CB_pt_csv" in page and "select_score" in page
    assert changed_stages(dvc_project, env) == set(), "everything up to date"
    # Importing the package from the project with bytecode written (as an editable install does) and an
    # editor's backup file change no stage: DVC hashes source only (.dvcignore).
    bytecode = {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}
    run([str(BIN / "python"), "-c", "import prompttune.train, prompttune.report"], dvc_project, bytecode)
    assert list((dvc_project / "prompttune").rglob("__pycache__/*.pyc")), "bytecode was written"
    (dvc_project / "prompttune" / "tasks" / "cb.py~").write_text("# an editor's backup\n")
    assert changed_stages(dvc_project, env) == set(), "bytecode and backups are not dependencies"

    # An edit to one cell's settings retrains that cell only; a changed constant in claims.py the report only.
    text = (dvc_project / "params.yaml").read_text()
    (dvc_project / "params.yaml").write_text(text + ONE_CELL)
    started = time.time()
    time.sleep(0.05)  # the edited record's mtime is later than this
    run([str(BIN / "prompttune"), "configure"], dvc_project, env)
    assert changed_stages(dvc_project, env) == {"configure", "train"}
    assert [c for c in (dvc_project / "configs").rglob("*.json") if c.stat().st_mtime > started] == [
        dvc_project / paths.stage_config(Stage("fewshot-64.SST-2", "head"))
    ], "only that cell's stage config changes (train keeps every other run: check_adding_a_method)"
    (dvc_project / "params.yaml").write_text(text)
    run([str(BIN / "prompttune"), "configure"], dvc_project, env)
    claims_py = dvc_project / "prompttune" / "claims.py"
    claims_py.write_text(claims_py.read_text() + "\nCHANGED = True\n")
    assert "report" in changed_stages(dvc_project, env) and "train" not in changed_stages(dvc_project, env)
    claims_py.write_text(claims_py.read_text().removesuffix("\nCHANGED = True\n"))
    assert changed_stages(dvc_project, env) == set()
    check_claims_metrics(dvc_project, env)
    check_sharing(dvc_project, env, tmp_path)
    check_adding_a_method(dvc_project, env)

    # Snakemake asks for the very runs DVC made: sharing DVC's run store, it takes every run from it (the
    # store's key is the run's config and code) but those of one stage, dropped from the store, which it
    # trains itself and which match DVC's byte for byte.
    smk_project, smk_env = project_copy(tmp_path / "smk", mirror, "smoke")
    smk_env["PROMPTTUNE_RUN_STORE"] = env["PROMPTTUNE_RUN_STORE"]
    retrained = Stage("fewglue.CB", "pt-ptp-adv-emb")
    drop_from_store(Path(env["PROMPTTUNE_RUN_STORE"]), dvc_project, retrained)
    built = run([str(BIN / "snakemake"), "-c2"], smk_project, smk_env)
    assert (smk_project / "reports" / "smoke.html").is_file()
    lines = dict(re.findall(r"^(runs/\S+): (?:ok|collapsed), .*?( \(from the run store\))?$", built, re.M))
    assert lines == {
        str(paths.run_dir(stage, seed)): "" if stage == retrained else " (from the run store)"
        for stage, seed in runs
    }, built
    for stage, seed in runs:
        run_dir = paths.run_dir(stage, seed)
        a = json.loads((dvc_project / run_dir / "metrics.json").read_text())
        b = json.loads((smk_project / run_dir / "metrics.json").read_text())
        assert a["status"] in {"ok", "collapsed"}
        assert strip_timing(a) == strip_timing(b), f"{run_dir} differs between DVC and Snakemake"
        assert (dvc_project / run_dir / "predictions.jsonl").read_text() == (
            smk_project / run_dir / "predictions.jsonl"
        ).read_text()
    smk_project.joinpath("params.yaml").write_text(smk_project.joinpath("params.yaml").read_text() + ONE_CELL)

    # A dry run lists exactly the changed stage (from each job's record as its params) and writes nothing:
    # git and DVC see the same workspace before and after it.
    def looked_at() -> tuple[str, str, dict[str, str]]:
        git = run(["git", "status", "--porcelain", "--untracked-files=all"], smk_project, smk_env)
        dvc_status = run([dvc, "status", "--json"], smk_project, smk_env)
        return git, dvc_status, tree_digest(smk_project / "configs")

    before = looked_at()
    rerun = run([str(BIN / "snakemake"), "-n", "-c1"], smk_project, smk_env, stderr=True)
    trained = re.findall(r"^rule train:\n(?:.*\n)*?\s+output: (\S+?),", rerun, flags=re.M)
    assert trained == ["runs/fewshot-64.SST-2/head"], rerun
    for look in ("--lint", "--summary"):  # lint's exit code reports its findings, not an error of ours
        command = [str(BIN / "snakemake"), look]
        subprocess.run(command, cwd=smk_project, env=smk_env, capture_output=True, timeout=600)
    assert looked_at() == before, "a dry run, lint or summary changed the workspace"


def drop_from_store(store: Path, project: Path, stage: Stage) -> None:
    """Remove the run store's entries of ``stage``'s runs in ``project`` (matched by their config)."""
    configs = [json.loads(p.read_text()) for p in (project / paths.method_dir(stage)).glob("*/config.json")]
    dropped = [e for e in store.iterdir() if json.loads((e / "config.json").read_text()) in configs]
    assert len(dropped) == len(configs) > 0, (stage, dropped)
    for entry in dropped:
        shutil.rmtree(entry)


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path) with the SHA-256 of its bytes; the ``.gitignore`` files
    DVC writes beside its outputs are left out (``.dvcignore`` hides them from DVC's hashes too)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".gitignore"
    }


def check_sharing(project: Path, env: dict[str, str], tmp: Path) -> None:
    """The README's "Share results", as two people do it: in the project, add a remote, commit and
    ``dvc push``; in a separate ``git clone``, ``dvc pull`` brings back everything (configs, runs, studies,
    results, metrics, report) byte for byte, ``dvc status`` is clean and ``dvc repro`` runs nothing."""
    dvc = str(BIN / "dvc")
    remote, other = tmp / "remote", tmp / "other"
    run([dvc, "remote", "add", "-d", "shared", str(remote)], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "the smoke grid"], project, env)
    run([dvc, "push"], project, env)
    run(["git", "clone", "-q", str(project), str(other)], tmp, env)
    run([dvc, "pull"], other, env)
    assert changed_stages(other, env) == set()
    repro = run([dvc, "repro"], other, env)
    assert "Running stage" not in repro, repro
    for folder in ("configs", "runs", "results", "metrics", "reports"):
        assert tree_digest(other / folder) == tree_digest(project / folder), folder


def check_claims_metrics(project: Path, env: dict[str, str]) -> None:
    """The claims are DVC metrics: ``dvc exp show --json`` holds every claim's verdict, as claims.csv."""
    shown = json.loads(run([str(BIN / "dvc"), "exp", "show", "--json"], project, env))
    workspace = next(entry for entry in shown if entry["rev"] == "workspace")
    metrics = workspace["data"]["metrics"]["metrics/claims.json"]["data"]
    claims = pd.read_csv(project / "results" / "claims.csv", keep_default_na=False)
    expected = {
        (f"{row.id} {row.setting}/{row.base}" if row.setting else row.id): row.verdict
        for row in claims.itertuples()
    }
    assert {key: value["verdict"] for key, value in metrics.items()} == expected
    assert "PTP-2 fewglue/pt" in expected
    (ptp2,) = claims[(claims["id"] == "PTP-2") & (claims["setting"] == "fewglue")].itertuples()
    level = float(ptp2.level)  # the column is read as text: PTP-1's row has none
    assert metrics["PTP-2 fewglue/pt"]["level"] == pytest.approx(level, abs=1e-6), "its interval's level"


def readme_queue_recipe() -> str:
    """The README's queue recipe (its DVC paragraph), as written."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("To train seeds in parallel, queue") :]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)[0]


ADD_METHOD = (
    "++grid.blocks.other.methods=[head,pt]"  # the README's example: `pt` on the block's fewshot-64 SST-2
)


def run_queue(project: Path, env: dict[str, str], script: str) -> str:
    """Run ``script`` (which runs the experiment queue) in ``project``; its output, after the queue has
    ended and its workers are gone."""
    # the workers run as daemons: with our pipes they would hold this call open until they exit
    log = project.parent / "queue.log"
    with log.open("a") as out:
        start = out.tell()
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script], cwd=project, env=env, stdout=out, stderr=out
            )
        finally:
            stop_queue_workers(project)
    text = log.read_text()[start:]
    assert done.returncode == 0, text[-3000:]
    status = run([str(BIN / "dvc"), "queue", "status"], project, env)
    assert not re.search(r"\b(Queued|Running|Failed)\b", status), status
    return text


def check_queue_recipe(project: Path, env: dict[str, str], n_runs: int) -> None:
    """The README's queue recipe, run as written on the committed smoke project: one experiment per seed
    (training stages only), run 2 at a time, then ``dvc repro``, which takes every run from the run store
    the experiments filled (none trains again) and makes one grid and one report over every seed.
    ``dvc exp show --json`` holds each experiment's headline metrics (one seed each, that run's score); the
    shared caches end without partial entries."""
    recipe = readme_queue_recipe()
    assert "for s in 1 2; do" in recipe and "dvc exp run --run-all -j 2" in recipe, recipe
    out = run_queue(project, env, recipe)
    queued, repro = out.split("Ran experiment(s): ")  # what the experiments printed, what dvc repro did
    trained = re.findall(r"^(runs/\S+): (?:ok|collapsed|failed), \S+ [\d.—]+$", queued, flags=re.M)
    assert len(set(trained)) == n_runs, queued  # a block's own seed trains in both experiments
    lines = re.findall(r"^(runs/\S+): (?:ok|collapsed|failed), .*$", repro, flags=re.M)
    stored = re.findall(r"^(runs/\S+): .*\(from the run store\)$", repro, flags=re.M)
    assert sorted(stored) == sorted(lines) and sorted(set(stored)) == sorted(set(trained)), repro
    shown = json.loads(run([str(BIN / "dvc"), "exp", "show", "--json"], project, env))
    experiments = {
        rev["name"]: rev for entry in shown for exp in entry.get("experiments") or [] for rev in exp["revs"]
    }
    for seed in (1, 2):
        metrics = experiments[f"seed{seed}"]["data"]["metrics"]
        for method in ("head", "pt", "pt-infoprompt"):
            headline = metrics[f"metrics/train/fewglue.CB/{method}.json"]["data"]
            kept = json.loads((project / f"runs/fewglue.CB/{method}/seed{seed}/metrics.json").read_text())
            assert headline["runs"] == 1 and headline["report"]["mean"] == pytest.approx(
                100 * kept["report"]["score"], abs=0.01
            )
    for cache in (Path(env["PROMPTTUNE_CACHE"]) / "tokens", Path(env["PROMPTTUNE_RUN_STORE"])):
        assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")], cache


def check_adding_a_method(project: Path, env: dict[str, str]) -> None:
    """``dvc exp run -S`` adding a method, as the README gives it, queued and then in the workspace. The
    queued experiment trains only the new method's two seeds (the others are checked out from the DVC
    cache and kept; its headlines for them equal the workspace's), without touching the workspace's runs.
    In the workspace the one ``train`` stage reruns, takes those two runs from the run store (the queued
    experiment put them there) and keeps every other run."""
    dvc = str(BIN / "dvc")
    before = {p: p.read_bytes() for p in (project / "runs").rglob("metrics.json")}
    run([dvc, "exp", "run", "--queue", "-n", "add-pt", "-S", ADD_METHOD, "train"], project, env)
    queued = run_queue(project, env, "dvc exp run --run-all -j 2")
    new = [f"runs/fewshot-64.SST-2/pt/seed{s}" for s in (1, 2)]
    trained = re.findall(r"^(runs/\S+): (?:ok|collapsed|failed), \S+ [\d.—]+$", queued, flags=re.M)
    assert trained == new, queued
    shown = json.loads(run([dvc, "exp", "show", "--json"], project, env))
    added = next(
        rev
        for entry in shown
        for exp in entry.get("experiments") or []
        for rev in exp["revs"]
        if rev["name"] == "add-pt"
    )["data"]["metrics"]
    assert added["metrics/train/fewshot-64.SST-2/pt.json"]["data"]["runs"] == 2
    for name in ("metrics/train/fewglue.CB/pt.json", "metrics/train/fewshot-64.SST-2/head.json"):
        assert added[name]["data"] == json.loads((project / name).read_text()), name
    assert {p: p.read_bytes() for p in (project / "runs").rglob("metrics.json")} == before

    out = run([dvc, "exp", "run", "-S", ADD_METHOD, "train"], project, env)
    lines = re.findall(r"^(runs/\S+): (?:ok|collapsed|failed), .*$", out, flags=re.M)
    kept = re.findall(r"^(runs/\S+): .*\(already trained, kept\)$", out, flags=re.M)
    stored = re.findall(r"^(runs/\S+): .*\(from the run store\)$", out, flags=re.M)
    assert sorted(set(lines) - set(kept)) == sorted(stored) == new, out
    assert len(kept) == len(before), out
    assert {p: p.read_bytes() for p in before} == before


def stop_queue_workers(project: Path) -> None:
    """Kill the queue's workers that outlive the queue: dvc-task's monitor can start a worker's shutdown while
    its experiment still runs, and that worker then never exits (its experiment's results are recorded)."""
    for pid_file in (project / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.pid"):
        cmdline = Path("/proc") / pid_file.read_text().strip() / "cmdline"
        if cmdline.exists() and b"queue-worker" in cmdline.read_bytes():
            os.kill(int(cmdline.parent.name), signal.SIGKILL)


def test_slurm_profile_dry_run_gives_one_gpu_job_per_run(tmp_path: Path, mirror: Path) -> None:
    project, env = project_copy(tmp_path, mirror, "paper")
    stages = expand_stages(load_params(project / "params.yaml"))
    n_runs = sum(len(c.seeds) for c in stages)
    out = run(
        [str(BIN / "snakemake"), "--profile", "pipelines/profiles/slurm", "-n"], project, env, stderr=True
    )
    train_jobs = re.split(r"\n *rule train:", out)[1:]  # a group job lists its jobs indented
    assert len(train_jobs) == n_runs
    landscape_jobs = re.split(r"\n *rule landscape:", out)[1:]
    assert landscape_jobs
    for job in train_jobs + landscape_jobs:
        resources = next(line for line in job.splitlines() if line.strip().startswith("resources:"))
        assert "gpu=1" in resources and "slurm_partition=gpu" in resources
