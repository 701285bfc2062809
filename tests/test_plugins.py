"""Bring your own method, as a user does: a plugin distribution outside the package (examples/plugin: an
objective, a prompt base and a task), installed with pip and found through its ``prompttune.plugins``
entry point, runs through ``prompttune configure``, the DVC pipeline, ``plan`` (probes and ``--gpu``), the
claims table (PTP-2 measured on the plugin's task) and the PEFT export; a plugin whose declaration is
incomplete stops the first command with one line naming it.

Marked ``e2e`` (a few minutes: the pipeline trains the grid for real on the embedded MiniLM).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import active_grid, write_profile
from test_pipelines import BIN, project_copy, run

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugin"
TOY_FILES = {  # the plugin task's files, copied from RTE's in the data mirror
    "FewGLUE/Toy/train.jsonl": "FewGLUE/RTE/train.jsonl",
    "FewGLUE_32dev/Toy/dev32.jsonl": "FewGLUE_32dev/RTE/dev32.jsonl",
    "SuperGLUE/Toy/val.jsonl": "SuperGLUE/RTE/val.jsonl",
}
SOURCE_ONLY = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")  # what a build leaves in a source
BROKEN = """
from prompttune.objectives.base import OBJECTIVES, Objective
from prompttune.objectives.ce import CrossEntropy

@OBJECTIVES.register("unpriced")
class Unpriced(Objective):  # a real loss, but no pass structure declared
    name = "unpriced"
    loss = CrossEntropy.loss
"""

pytestmark = pytest.mark.e2e


def install(source: Path, target: Path) -> None:
    """``pip install`` of a plugin distribution into its own folder (put on PYTHONPATH), from a copy of
    its source (a build writes into the folder it builds)."""
    copy = target.with_name(target.name + "-source")
    shutil.copytree(source, copy, ignore=SOURCE_ONLY)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run(
        [*pip, "--target", str(target), str(copy)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr


def readme_install(folder: Path, env: dict[str, str]) -> str:
    """The README's plugin recipe, verbatim, in ``folder`` (holding a copy of examples/plugin); returns
    the PYTHONPATH it exports."""
    readme = (ROOT / "README.md").read_text()
    recipe = readme[readme.index("[examples/plugin](examples/plugin) is one") :]
    block = recipe[
        recipe.index("```bash\n") + len("```bash\n") : recipe.index("```", recipe.index("```bash") + 7)
    ]
    assert "pip install" in block and "examples/plugin" in block, block
    shutil.copytree(PLUGIN, folder / "examples" / "plugin", ignore=SOURCE_ONLY)
    script = f'set -e\n{block}\nprintf %s "$PYTHONPATH"'
    proc = subprocess.run(
        ["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[-1]  # after pip's own lines


def plugin_params(project: Path) -> None:
    """The smoke profile's run settings on a grid of the plugin's methods, base and task."""
    data = active_grid(project)
    grid = {
        "seeds": [1, 2],
        "blocks": {
            "main": {"cells": ["fewglue.Toy"], "methods": ["head", "pt", "pt-smooth", "ptz", "pt-ptp-rn-emb"]}
        },
        "stack_seeds": True,
    }
    studies = {
        "landscape": {
            "cells": ["fewglue.Toy"],
            "methods": ["pt-ptp-rn-emb"],
            "seeds": [1],
            "radius": 0.2,
            "points": 3,
            "rho": 0.2,
            "n_examples": 4,
        },
        "mi_check": {"cell": "fewglue.Toy", "seeds": [1], "steps": 2, "quick": True},
    }
    run_settings = {**data["run"], "objectives": {"smooth": {"smoothing": 0.2}}}
    sections = {"grid": grid, "run": run_settings, "studies": studies}
    write_profile(project, "plugin", sections, "A user's plugin on the smoke profile's settings.")


def test_a_plugin_outside_the_package_runs_through_the_pipeline_plan_claims_and_export(
    tmp_path: Path, mirror: Path
) -> None:
    toy_mirror = tmp_path / "mirror"
    for toy, source in TOY_FILES.items():
        (toy_mirror / toy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mirror / source, toy_mirror / toy)
    project, env = project_copy(tmp_path, toy_mirror, "smoke")
    (tmp_path / "user").mkdir()
    site = readme_install(tmp_path / "user", env)
    assert Path(site) == tmp_path / "user" / "plugins" and (Path(site) / "prompttune_example_plugin").is_dir()
    env = {**env, "PYTHONPATH": site}
    plugin_params(project)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "plugin grid"], project, env)

    run([str(BIN / "dvc"), "repro"], project, env, timeout=1800)

    runs = pd.read_csv(project / "results" / "runs.csv")
    assert set(runs["status"]) <= {"ok", "collapsed"}  # four steps: some collapse, none fail
    trained = runs.groupby("method")["seed"].nunique().to_dict()
    assert trained == {"head": 2, "pt": 2, "pt-smooth": 2, "ptz": 2, "pt-ptp-rn-emb": 2}
    assert set(runs["task"]) == {"Toy"}
    seed1 = project / "runs" / "fewglue.Toy" / "pt-smooth" / "seed1"
    config = json.loads((seed1 / "config.json").read_text())
    assert config["method"] == "pt-smooth" and config["objective_options"] == {"smoothing": 0.2}
    packages = json.loads((seed1 / "provenance.json").read_text())["packages"]
    assert packages["prompttune-example-plugin (plugin example)"] == "0.1.0"
    claims = pd.read_csv(project / "results" / "claims.csv").set_index("id")
    ptp2 = claims.loc["PTP-2"]
    assert ptp2["n_seeds"] == 2 and "not measured" not in ptp2["reason"], ptp2.to_dict()
    assert "pt-ptp-rn-emb" in ptp2["scope"] and "measured here on Toy" in ptp2["scope"]
    assert (project / "reports" / "plugin.html").is_file()

    probes = run([str(BIN / "prompttune"), "plan"], project, env, timeout=900)
    gpu = run([str(BIN / "prompttune"), "plan", "--gpu"], project, env, timeout=300)
    for out in (probes, gpu):
        assert "fewglue.Toy/pt-smooth" in out and "fewglue.Toy/ptz" in out, out

    export = tmp_path / "export"
    run(
        [str(BIN / "prompttune"), "export-peft", str(project / "runs/fewglue.Toy/ptz/seed1"), str(export)],
        project,
        env,
    )
    assert json.loads((export / "adapter_config.json").read_text())["peft_type"] == "PROMPT_TUNING"
    refused = subprocess.run(
        [
            str(BIN / "prompttune"),
            "export-peft",
            str(project / "runs/fewglue.Toy/head/seed1"),
            str(tmp_path / "no"),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    broken = tmp_path / "broken"
    (broken / "unpriced_plugin").mkdir(parents=True)
    (broken / "unpriced_plugin" / "__init__.py").write_text(BROKEN)
    (broken / "pyproject.toml").write_text(
        (PLUGIN / "pyproject.toml")
        .read_text()
        .replace("prompttune-example-plugin", "unpriced-plugin")
        .replace('example = "prompttune_example_plugin"', 'unpriced = "unpriced_plugin"')
        .replace('packages = ["prompttune_example_plugin"]', 'packages = ["unpriced_plugin"]')
    )
    install(broken, tmp_path / "site-broken")
    env["PYTHONPATH"] = f"{site}:{tmp_path / 'site-broken'}"
    proc = subprocess.run(
        [str(BIN / "prompttune"), "configure"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        "error: plugin 'unpriced' (module unpriced_plugin): TypeError: objective 'unpriced'"
    )
    assert "declares no pass structure" in lines[0]
