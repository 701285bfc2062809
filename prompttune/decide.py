"""The adaptive design's planning: after each round of seeds, which claims are still open, which are closed
and why, and which arms get the next round's seeds (pure functions of the claims table; the loop that
trains the rounds calls them, and ``benchmarks/adaptive_design.py`` simulates the whole procedure through
them and the claims code).

Choices:

- **Looks** (``stats.Design``): a claim is looked at when its paired seeds reach one of the design's seed
  counts, at that look's nominal level; every arm starts with its pilot (``grid.decide.pilot``, else the
  first look's seeds). The best-variant claims count only the seeds after the ones that picked the variant
  (``schema.PICK_SEEDS``), so their arms train that many more for each look.
- **What a round is worth to a claim**: the chance that its next look decides it — ``reproduced``,
  ``contradicted`` or ``below reference`` — at its current estimate and spread (the normal approximation
  of the look's t-test at its nominal level), per CPU-second of the seeds its arms still need to reach
  that look (the recorded cost per seed of each arm).
- **Allocation**: the open claim worth most per CPU-second gets its arms raised to its next look; an arm
  no open claim reads never gets a seed. Allocation changes which looks happen, never a look's level, so
  it cannot raise a false-verdict rate beyond what the calibration measures for the procedure as a whole.
- **Closing a claim** (non-binding futility, with the reason shown): its next look is past the cap
  ("seed cap"); the seeds it needs cost more than the budget left ("budget"); even the cap would decide
  it with a chance below ``FUTILE`` ("futility"); or no number of seeds can help (collapsed runs, runs not
  converged).

The loop (``run_loop``, ``prompttune decide``): the arms' seed counts live in ``seeds.yaml``, a params file
beside params.yaml (``config.arm_seeds_path``); each round writes them, runs the ordinary pipeline (``dvc
repro`` or ``snakemake``, which train only the seeds a stage lacks), reads the claims as the report does and
plans the next round. ``seeds.yaml`` also logs every round (seeds, time spent, why each arm got seeds, why
each claim closed), so a killed loop resumes from it, and ``dvc repro`` on the final file rebuilds the same
result without the loop. The budget is wall time, the pilot and every stage of the pipeline included; a
round is planned only when its training (the arms' recorded seconds per seed) plus the last round's
overhead (landscapes, aggregation, report) fits what is left. A round that starts runs to its end, so the
loop ends past the budget by as much as its last round's seeds train longer than the earlier ones did.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from scipy import special

from prompttune import paths
from prompttune.claims import ClaimRow, claim_rows
from prompttune.config import arm_seeds_path, load_params
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_write_text, read_json
from prompttune.results import read_runs
from prompttune.schema import DecideSection, arm_name
from prompttune.stats import Design

FUTILE = 0.05  # a claim the cap would decide less often than this is closed (choice)


def hopeless(row: ClaimRow) -> str:
    """Why no number of seeds can decide the claim (a collapsed run withholds its verdict for good, a run
    that did not converge stays unconverged), or ""."""
    if row.reason.startswith("not converged"):
        return "runs not converged"
    if (
        row.reason.startswith("collapse guard:")
        and "runs collapsed" in row.reason.split(" (the test alone")[0]
    ):
        return "collapsed runs"
    return ""


def claim_key(row: ClaimRow) -> str:
    return f"{row.id} {row.setting}/{row.base}"


def arms_of(row: ClaimRow) -> list[str]:
    return row.arms.split()


def next_look(row: ClaimRow, design: Design) -> int | None:
    """The first look beyond the claim's paired seeds, None past the cap."""
    return next((look for look in design.looks if look > row.n_seeds), None)


def decision_chance(row: ClaimRow, seeds: int, level: float) -> float:
    """The chance that a look at ``seeds`` seeds and nominal ``level`` decides the claim, at its current
    estimate and spread (normal approximation); 0.5 where the spread is not known yet."""
    if not (math.isfinite(row.plan_sd) and row.plan_sd > 0 and math.isfinite(row.plan_effect)):
        return 0.5
    se = row.plan_sd / math.sqrt(seeds * row.plan_values_per_seed)
    z = -special.ndtri(level)  # scipy.stats.norm's isf and cdf, without their overhead (the planner runs
    chance = special.ndtr(row.plan_effect / se - z) + special.ndtr(-row.plan_effect / se - z)  # per round)
    if math.isfinite(row.plan_reference):
        chance += special.ndtr((row.plan_reference - row.plan_effect) / se - z)
    return float(min(1.0, chance))


def arm_seeds(row: ClaimRow, look: int) -> int:
    """The seeds each arm of the claim trains for its test to reach ``look`` seeds (the seeds before those
    its test reads included: the pick of the best PTP variant)."""
    return look + row.seeds_before


def needed(row: ClaimRow, look: int, seeds: Mapping[str, int], cost: Mapping[str, float]) -> float:
    """CPU-seconds for every arm of the claim to reach the seeds of its look at ``look`` seeds."""
    return sum(max(0, arm_seeds(row, look) - seeds.get(arm, 0)) * cost[arm] for arm in arms_of(row))


@dataclass
class Plan:
    """One round: the arms' seed counts after it, the claims it serves (why), the claims closed (why),
    and its CPU-seconds."""

    targets: dict[str, int]
    served: dict[str, str] = field(default_factory=dict)
    closed: dict[str, str] = field(default_factory=dict)
    cost: float = 0.0


def plan_round(
    rows: Sequence[ClaimRow],
    seeds: Mapping[str, int],
    cost: Mapping[str, float],
    design: Design,
    budget_left: float,
) -> Plan:
    """The next round (module docstring). ``seeds``: each arm's seeds so far; ``cost``: CPU-seconds per
    seed of each arm. An empty ``served`` means the loop is done."""
    plan = Plan(dict(seeds))
    open_rows = []
    for row in rows:
        if row.verdict != "inconclusive" or row.reason == "not measured" or not row.arms:
            continue
        key, look = claim_key(row), next_look(row, design)
        levels = dict(zip(design.looks, design.levels(row.alpha), strict=True))
        if hopeless(row):
            plan.closed[key] = f"more seeds cannot help ({hopeless(row)})"
        elif look is None:
            plan.closed[key] = f"seed cap: {design.looks[-1]} seeds reached"
        elif decision_chance(row, design.looks[-1], levels[design.looks[-1]]) < FUTILE:
            plan.closed[key] = f"futility: under {FUTILE:.0%} chance of a decision even at the cap"
        elif needed(row, look, seeds, cost) > budget_left:
            plan.closed[key] = f"budget: the look at {look} seeds needs more than the time left"
        else:
            worth = decision_chance(row, look, levels[look]) / max(needed(row, look, seeds, cost), 1e-9)
            open_rows.append((worth, key, look, row))
    if not open_rows:
        return plan
    worth, key, look, row = max(open_rows, key=lambda item: (item[0], item[1]))
    for arm in arms_of(row):
        plan.targets[arm] = max(plan.targets.get(arm, 0), arm_seeds(row, look))
    plan.cost = needed(row, look, seeds, cost)
    plan.served[key] = f"next look at {look} seeds; {worth * 3600:.2g} decisions per CPU-hour"
    for _, other_key, other_look, other in open_rows:
        reached = all(plan.targets.get(arm, 0) >= arm_seeds(other, other_look) for arm in arms_of(other))
        if other_key != key and reached:
            plan.served[other_key] = f"next look at {other_look} seeds, with {key}'s arms"
    return plan


# --- the loop ------------------------------------------------------------------------------------------

Engine = Literal["dvc", "snakemake"]
SEEDS_HEADER = (
    "# Written by `prompttune decide` (grid.decide in params.yaml): `seeds` is how many seeds (1…n) each\n"
    "# arm trains beyond the pilot — a params file of both pipelines, so `dvc repro` or `snakemake` on it\n"
    "# rebuilds the same runs; `rounds` logs the loop: after each round, the seeds, the wall time spent,\n"
    "# the claims served and the claims closed, and why. Empty it to start the loop afresh.\n"
)


def design_of(decide: Mapping[str, Any] | None) -> Design | None:
    """The design of a grid record's ``decide`` (None: a fixed grid)."""
    return Design(tuple(decide["looks"])) if decide else None


def workspace_rows(root: Path, decide: Mapping[str, Any] | None, power: bool = True) -> list[ClaimRow]:
    """The claims of a workspace's results (results/runs.csv and the MI check), as the report reads them."""
    checks = root / paths.MI_CHECK_DIR / "checks.json"
    mi = read_json(checks) if checks.is_file() else None
    return claim_rows(read_runs(root / paths.RESULTS / "runs.csv"), mi, power, design_of(decide))


def arms(runs: pd.DataFrame) -> dict[str, tuple[int, float]]:
    """Every arm's seeds so far and the recorded wall seconds of one more seed (its runs' total over its
    seeds)."""
    names = [
        arm_name(*key) for key in zip(runs["setting"], runs["method"], runs["variant"] != "", strict=True)
    ]
    return {
        arm: (
            int(group["seed"].nunique()),
            float(pd.to_numeric(group["wall_time_s"]).sum()) / group["seed"].nunique(),
        )
        for arm, group in runs.assign(arm=names).groupby("arm")
    }


def annotate(rows: Sequence[ClaimRow], runs: pd.DataFrame, state: Mapping[str, Any]) -> list[ClaimRow]:
    """The rows with what the adaptive design gave them (the page's and claims.csv's columns): each arm's
    seeds, the recorded training seconds of those arms, and, for an undecided claim, what closed it in the
    loop's last round (``seeds.yaml``)."""
    table = arms(runs)
    closed = state["rounds"][-1]["closed"] if state.get("rounds") else {}
    out = []
    for row in rows:
        mine = [arm for arm in arms_of(row) if arm in table]
        out.append(
            dataclasses.replace(
                row,
                arm_seeds=" ".join(f"{arm}={table[arm][0]}" for arm in mine),
                seconds=sum(table[arm][0] * table[arm][1] for arm in mine) if mine else math.nan,
                stopped=closed.get(claim_key(row), ""),
            )
        )
    return out


def read_state(path: Path) -> dict[str, Any]:
    """``seeds.yaml`` (``{"seeds": {}, "rounds": []}`` when absent)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    data = data or {}
    return {"seeds": dict(data.get("seeds") or {}), "rounds": list(data.get("rounds") or [])}


def write_state(path: Path, state: Mapping[str, Any]) -> None:
    atomic_write_text(path, SEEDS_HEADER + yaml.safe_dump(dict(state), sort_keys=False, width=110))


def beyond_pilot(targets: Mapping[str, int], decide: DecideSection) -> dict[str, int]:
    """``seeds.yaml``'s ``seeds``: the arms whose count is past their pilot (configure gives every other
    arm its pilot)."""
    return {arm: n for arm, n in sorted(targets.items()) if n > decide.pilot_seeds(arm)}


def pipeline_command(engine: Engine, cores: int) -> list[str]:
    return ["dvc", "repro"] if engine == "dvc" else ["snakemake", "--cores", str(cores)]


def _run_pipeline(root: Path, engine: Engine, cores: int) -> None:
    command = pipeline_command(engine, cores)
    done = subprocess.run(command, cwd=root, check=False)
    if done.returncode != 0:
        raise PromptTuneError(
            f"{' '.join(command)} failed (exit {done.returncode}); fix it and run `prompttune decide` again: "
            "it resumes from seeds.yaml"
        )


def run_loop(
    params_path: Path,
    engine: Engine,
    cores: int,
    say: Callable[[str], None],
    budget_min: float | None = None,
) -> dict[str, Any]:
    """Run rounds until the planner serves no claim (module docstring); return the final state. A fixed
    grid (no ``grid.decide``) is one run of the pipeline."""
    params = load_params(params_path)
    if params.grid.decide is None:  # a fixed grid: one round, nothing to plan
        say(f"{params_path}: a fixed grid (no grid.decide): {' '.join(pipeline_command(engine, cores))}")
        _run_pipeline(params_path.parent, engine, cores)
        return {"seeds": {}, "rounds": []}
    decide = params.grid.decide
    design, budget = Design(tuple(decide.looks)), 60 * (budget_min or decide.budget_min)
    root, state_path = params_path.parent, arm_seeds_path(params_path)
    state = read_state(state_path)
    spent = state["rounds"][-1]["spent_s"] if state["rounds"] else 0.0
    while True:
        started = time.monotonic()
        say(
            f"round {len(state['rounds']) + 1}: {' '.join(pipeline_command(engine, cores))} "
            f"({spent / 60:.1f} of {budget / 60:g} min spent)"
        )
        _run_pipeline(root, engine, cores)
        took = time.monotonic() - started
        spent += took
        rows = workspace_rows(root, {"looks": list(design.looks)}, power=False)
        table = arms(read_runs(root / paths.RESULTS / "runs.csv"))
        seeds = {arm: n for arm, (n, _) in table.items()}
        cost = {arm: c for arm, (_, c) in table.items()}
        before = state["rounds"][-1]["seeds"] if state["rounds"] else {}
        trained = sum(cost[arm] * (n - before.get(arm, 0)) for arm, n in seeds.items())
        overhead = max(0.0, took - trained)  # landscapes, aggregation, report, the tools' own start
        plan = plan_round(rows, seeds, cost, design, budget - spent - overhead)
        state["rounds"].append(
            {
                "round": len(state["rounds"]) + 1,
                "seeds": dict(sorted(seeds.items())),
                "spent_s": round(spent, 1),
                "served": plan.served,
                "closed": plan.closed,
            }
        )
        if not plan.served:
            write_state(state_path, state)
            _run_pipeline(root, engine, cores)  # the report again, now with the last round's closings
            say(f"done after {len(state['rounds'])} rounds, {spent / 60:.1f} min: no claim left to serve")
            return state
        state["seeds"] = beyond_pilot(plan.targets, decide)
        write_state(state_path, state)
        for key, why in plan.served.items():
            say(f"  {key}: {why}")
