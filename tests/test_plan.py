"""``prompttune plan``: every stage of the active profile with its upper bound, from probes of this machine
that are cached, so a second plan probes nothing and says the same."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import active_grid, write_profile

from prompttune.config import expand_stages, load_params
from prompttune.plan import PROCESS_START_S, StageEstimate, StepCost, probe_key, studies_s, table

ROOT = Path(__file__).resolve().parents[1]
PROMPTTUNE = str(Path(sys.executable).parent / "prompttune")


def test_a_stage_is_bounded_by_its_soonest_plateau_and_its_step_cap() -> None:
    cost = StepCost(step_s=0.25, eval_s=0.5, precision="fp32")
    row = StageEstimate(
        "fewglue.CB/pt", 3, step_cap=200, evaluations=26, cost=cost, min_steps=40, min_evaluations=6
    )
    assert row.upper_bound_s == PROCESS_START_S + 3 * (200 * 0.25 + 26 * 0.5)
    assert row.lower_bound_s == PROCESS_START_S + 3 * (40 * 0.25 + 6 * 0.5)
    text = table([row], {"landscapes": 120.0})
    low, high = math.floor((row.lower_bound_s + 120) / 60), math.ceil((row.upper_bound_s + 120) / 60)
    assert text.splitlines()[-1] == (
        f"total: {low} min if every run stops at the soonest the plateau rule allows,"
        f" {high} min if every run trains to its step cap"
    )


def test_under_grid_decide_a_landscape_is_counted_for_every_seed_its_stage_trains(tmp_path: Path) -> None:
    """The default's landscape study names no seeds (grid.decide: every seed its methods train), so the
    plan counts the pilot's seeds of each studied stage: measured cold on AVX2, the pilot's 12 landscapes
    took 15 s each, against the 35 s in all that counting no seeds gave."""
    for name in ("params.yaml", "profiles.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    params = load_params(tmp_path / "params.yaml")
    study = params.studies.landscape
    assert params.grid.decide is not None and study.seeds == []
    cost = StepCost(step_s=0.2, eval_s=0.3, precision="fp32")
    rows = [
        StageEstimate(config.stage.key, len(config.seeds), 200, 26, cost) for config in expand_stages(params)
    ]
    seeds = {row.key: row.seeds for row in rows}
    studied = [seeds[f"fewglue.CB/{method}"] for method in study.methods]
    assert studied == [4, 2, 2, 2, 2], "pt's 4 pilot seeds, 2 of each PTP variant"
    per_landscape = (study.points**2 + 3) * 0.3 * study.n_examples / 32
    assert studies_s(params, rows)["landscapes"] == pytest.approx(
        sum(studied) * per_landscape + PROCESS_START_S * len(study.methods)
    )


def test_plan_lists_every_stage_and_reuses_this_machines_probes(
    tmp_path: Path, mirror: Path, tiny_backbone: str
) -> None:
    for name in ("params.yaml", "profiles.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {
        **os.environ,
        "PROMPTTUNE_DATA_MIRROR": str(mirror),
        "PROMPTTUNE_CACHE": str(tmp_path / "cache"),
    }

    def prompttune(*args: str) -> str:
        proc = subprocess.run(
            [PROMPTTUNE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    prompttune("profile", "smoke")
    smoke = active_grid(tmp_path)  # 4 of the main block's 10 methods (the studies' among them): fewer probes
    smoke["grid"]["blocks"]["main"]["methods"] = ["head", "pt2", "pt-ptp-adv-emb", "pt-infoprompt"]
    write_profile(tmp_path, "smoke", smoke)
    with (tmp_path / "params.yaml").open("a") as params:
        params.write(f"run: {{backbone: {tiny_backbone}}}\n")  # an override of the profile's
    first = prompttune("plan", "--max-load", "1000")  # cached whatever else this machine runs
    cache = tmp_path / "cache" / "plan.json"
    probes = json.loads(cache.read_text())
    stages = expand_stages(load_params(tmp_path / "params.yaml"))
    lines = {line.split()[0]: line.split() for line in first.splitlines()[1:] if "/" in line.split()[0]}
    assert set(lines) == {config.stage.key for config in stages}
    for config in stages:
        seeds, cap = lines[config.stage.key][1:3]
        assert (int(seeds), int(cap)) == (len(config.seeds), config.run.train.steps)
    (machine,) = probes.values()
    assert set(machine) == {probe_key(config.run) for config in stages}  # one probe per kind of step
    assert prompttune("plan") == first and json.loads(cache.read_text()) == probes
    # every probe says when it was taken; probes taken on a busy machine are used but never cached (shown
    # on the stages the studies need, to probe less)
    assert all(set(probe) == {"step_s", "eval_s", "precision", "measured"} for probe in machine.values())
    data = active_grid(tmp_path)
    studied = data["studies"]["landscape"]["methods"]
    data["grid"]["blocks"] = {"main": {"cells": [data["studies"]["mi_check"]["cell"]], "methods": studied}}
    write_profile(tmp_path, "smoke", data)
    command = [PROMPTTUNE, "plan", "--fresh", "--max-load", "0"]
    busy = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert busy.returncode == 0, busy.stderr
    assert f"probes from {cache}" in busy.stderr and "not cached: the machine was busy" in busy.stderr
    assert json.loads(cache.read_text()) == probes


PTP_VARIANTS = ["pt-ptp-rn-emb", "pt-ptp-adv-emb", "pt-ptp-rn-text", "pt-ptp-adv-text"]


def test_the_first_probe_absorbs_no_warm_up_pt_costs_less_than_every_ptp_variant(
    tmp_path: Path, mirror: Path
) -> None:
    """On one machine, with MiniLM on CB: `pt`, probed first, costs less per step than every PTP variant,
    each of which adds forward and backward passes (objectives/ptp.py)."""
    for name in ("params.yaml", "profiles.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {**os.environ, "PROMPTTUNE_DATA_MIRROR": str(mirror), "PROMPTTUNE_CACHE": str(tmp_path / "cache")}
    data = active_grid(tmp_path)
    data["grid"]["blocks"] = {"ptp": {"cells": ["fewglue.CB"], "methods": ["pt", *PTP_VARIANTS]}}
    write_profile(tmp_path, "default", data)
    command = [PROMPTTUNE, "plan", "--max-load", "1000"]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("fewglue.CB/")]
    assert rows[0][0] == "fewglue.CB/pt", "pt is probed first"
    cost = {row[0].removeprefix("fewglue.CB/"): float(row[3]) for row in rows}
    assert all(cost["pt"] < cost[variant] for variant in PTP_VARIANTS), cost
    assert proc.stdout.rstrip().endswith(  # the default's seeds come from the adaptive design
        "grid.decide: the seeds above are the pilot; `prompttune decide` (make reproduce) adds rounds "
        "until its 60-minute budget is spent or every claim is closed"
    )
