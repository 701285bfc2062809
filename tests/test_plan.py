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

from prompttune.config import expand_stages, load_params
from prompttune.plan import PROCESS_START_S, StageEstimate, StepCost, probe_key, table

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


def test_plan_lists_every_stage_and_reuses_this_machines_probes(
    tmp_path: Path, mirror: Path, tiny_backbone: str
) -> None:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
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
    text = (tmp_path / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text.replace("backbone: minilm", f"backbone: {tiny_backbone}"))
    first = prompttune("plan")
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
