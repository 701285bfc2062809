"""Error rates and power of every claim verdict, at the seed counts of every shipped profile.

For each profile of profiles.yaml the script lays out the profile's own grid (its stages, seeds, tasks and
variant runs, through ``prompttune.config``), fills each run's numbers by simulation, and pushes the table
through exactly the code the report uses (``prompttune.claims.claim_rows``). Scenarios:

- **null** (no true effect on any mean anywhere), in seven families: ``normal``; ``heavy`` (Student t with
  3 degrees of freedom); ``collapse`` (each run collapses to the majority class with probability 0.15, as
  some prompt-tuning seeds do); ``discrete`` (scores rounded to whole examples of a 56-example split, as
  CB's); ``unequal-collapse`` (the claims' treatment arms — every PTP variant, full InfoPrompt — collapse
  with probability 0.15 and no other arm does, their other runs shifted up so that every arm's mean score and
  learning-curve area are equal: arms that differ in shape, not in mean); ``unequal-collapse-base`` (the
  same with the base ``pt`` as the collapsing arm, for the other side); ``selection-equals-report`` (the
  selection split scores exactly as the report split, the most the best-variant pick can borrow from the
  report split; real runs correlate less, since the selection score there carries the noise of its own
  small split). Counted: false ``reproduced`` and false ``contradicted`` per claim (each must stay ≤ 0.025);
- **effect**: every claim's effect at once, at its paper number or reference size (claims.CLAIMS): PTP's
  variants +2.34 points (and sd × 0.5, sharpness × 0.5), InfoPrompt +2 points over the base and over each
  ablation, a learning-curve area 25 % larger, half the spread across inits. Counted: power
  (``reproduced``), and false ``below reference`` (each effect is at least its reference, so ruling the
  reference out is false; ≤ 0.025);
- **claimed** (PTP-1/2 only): the best variant's true gain equals the paper's number. Counted: false
  ``smaller than claimed``.

Seed noise (points; choice, near the default profile's own spreads): a shared per-(task, seed) effect of
sd 2, a per-run effect of sd 3, the selection score = report score + N(0, 3²); learning-curve area 20 ± 5,
sharpness 0.05 ± 0.015 (only on the runs the profile's landscape study covers), prompt-init effects of
sd 3. IP-5 is not statistical (its checks and controls are tested in tests/test_mi_check.py) and is left
out.

    python benchmarks/verdict_calibration.py [--reps 10000] [--profiles fixed paper] [--jobs 2] [--record]

Prints one table per profile, then ``max false-verdict rate: <x>`` (over the profiles run) as its last
line; ``--record`` writes each profile's maximum, with its replicates and date, to
``prompttune/data/calibration.json`` and the maximum over every profile of profiles.yaml, the number the
report quotes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from prompttune.claims import CLAIMS, ClaimRow, claim_rows
from prompttune.config import Stage, landscape_pairs, params_from_dict, resolve_run
from prompttune.decide import plan_round
from prompttune.objectives import OBJECTIVES
from prompttune.schema import PICK_SEEDS, DecideSection, Params, arm_name
from prompttune.stats import ALPHA, Design

ROOT = Path(__file__).resolve().parents[1]
PRESETS = yaml.safe_load((ROOT / "profiles.yaml").read_text())  # every profile, by name
RECORD = ROOT / "prompttune" / "data" / "calibration.json"
NULLS = (
    "normal",
    "heavy",
    "collapse",
    "discrete",
    "unequal-collapse",
    "unequal-collapse-base",
    "selection-equals-report",
)
SPREAD_CLAIMS = ("PTP-3", "IP-3")
SEED_SD, RUN_SD, SELECT_SD, INIT_SD = 2.0, 3.0, 3.0, 3.0
AREA, AREA_SD, SHARP, SHARP_SD = 20.0, 5.0, 0.05, 0.015
COLLAPSE_P, COLLAPSE_DROP, DISCRETE_STEP = 0.15, 20.0, 100 / 56
EFFECT = {"ptp_gain": 2.34, "ptp_sd": 0.5, "ptp_sharp": 0.5, "ip_gain": 2.0, "ip_area": 0.25, "ip_init": 0.5}


# The adaptive design (profiles with ``grid.decide``): each arm's cost per seed in CPU-seconds, from the
# fixed grid's cold run of 2026-12-02 (native bf16, benchmarks/README.md): CB ``pt`` 20, the random-noise
# variants 32, ``ptp-adv-emb`` 68, ``ptp-adv-text`` 56, each PTP arm plus 17 s of landscape; SST-2 13 per main
# run and 31 per pair of init-variant runs; and the seed-to-seed spread of each setting as a multiple of the
# noise above (CB 1.2 ×, SST-2 0.3 ×), which steers the planner's allocation.
COST = {
    "fewglue/pt": 37.0,
    "fewglue/pt-ptp-rn-emb": 49.0,
    "fewglue/pt-ptp-rn-text": 49.0,
    "fewglue/pt-ptp-adv-emb": 85.0,
    "fewglue/pt-ptp-adv-text": 73.0,
    "fewglue/pt2": 13.0,
    "fewglue/head": 0.5,
    "fewshot-256/head": 1.0,
    "fewshot-256/pt": 13.0,
    "fewshot-256/pt-infoprompt": 13.0,
    "fewshot-256/pt-infoprompt-head": 13.0,
    "fewshot-256/pt-infoprompt-rep": 13.0,
    "fewshot-256/pt@variants": 31.0,
    "fewshot-256/pt-infoprompt@variants": 31.0,
}
ARMS = tuple(COST)
SPREAD = {"fewglue": 1.2, "fewshot-256": 0.3}


def profile_params(profile: str) -> Params:
    """The profile's resolved params (as ``prompttune configure`` reads them)."""
    preset = PRESETS[profile]
    sections = {key: preset[key] for key in ("grid", "run", "studies")}
    return params_from_dict({"profile": profile, **sections}, ROOT / "params.yaml")


def adaptive_design(profile: str) -> tuple[DecideSection, float] | None:
    """The profile's ``grid.decide`` and budget (CPU-seconds), None for a fixed grid."""
    decide = profile_params(profile).grid.decide
    return (decide, decide.budget_min * 60) if decide else None


def layout(profile: str) -> pd.DataFrame:
    """One row per run of the profile's grid, with everything but the numbers. Under the adaptive design every
    arm is laid out up to the cap (the loop reads a prefix of each; the best-variant claims' arms up to the
    cap after the seeds that pick the variant), at the measured spreads and costs."""
    params = profile_params(profile)
    decide = params.grid.decide
    rows = []
    for block in params.grid.blocks.values():
        cap = decide.looks[-1] + PICK_SEEDS if decide else 0
        seeds = list(range(1, cap + 1)) if decide else block.seeds or params.grid.seeds
        for cell in block.cells:
            for method in block.methods:
                for variant in block.variants or [None]:
                    config = resolve_run(params, Stage(cell, method, variant), seeds[0])
                    objective = OBJECTIVES.get(config.objective)
                    for seed in seeds:
                        rows.append(
                            {
                                "setting": config.setting,
                                "task": config.task,
                                "method": method,
                                "base": config.base,
                                "objective": config.objective,
                                "family": objective.family,
                                "ablation_of": objective.ablation_of or "",
                                "variant": variant or "",
                                "prompt_init": config.prompt.init,
                                "seed": seed,
                                "backbone": config.backbone,
                                "cell": cell,
                                "arm": arm_name(config.setting, method, variant is not None),
                            }
                        )
    frame = pd.DataFrame(rows)
    study = params.studies.landscape
    trained = list(zip(frame["cell"], frame["method"], strict=True))
    pairs = set(landscape_pairs(study, set(trained)))
    studied = pd.Series([pair in pairs for pair in trained], index=frame.index)
    every_seed = decide is not None  # under the adaptive design the study covers every seed trained
    frame["landscape"] = studied & (frame["variant"] == "") & (every_seed | frame["seed"].isin(study.seeds))
    if decide:
        unknown = sorted(set(frame["arm"]) - set(COST))
        if unknown:
            raise SystemExit(
                f"profile {profile}: no recorded cost per seed for the arms {', '.join(unknown)}"
            )
        frame["spread"] = frame["setting"].map(SPREAD)
        frame["arm_code"] = frame["arm"].map({arm: i for i, arm in enumerate(ARMS)})
    return with_noise_keys(frame)


def with_noise_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with what ``simulate`` draws by, computed once per layout: the (task, seed) and
    (task, seed, method, init) groups that share a noise draw, numbered in order of appearance, and the
    claims' treatment arms and bases."""
    key = frame["task"] + "/" + frame["seed"].astype(str)
    ptp = frame["family"] == "ptp"
    full_ip = (frame["family"] == "infoprompt") & (frame["ablation_of"] == "")
    return frame.assign(
        shared_group=pd.factorize(key)[0],
        init_group=pd.factorize(key + "/" + frame["method"] + "/" + frame["prompt_init"])[0],
        ptp=ptp,
        full_ip=full_ip,
        treated_base=frame["method"].isin(set(frame.loc[ptp | full_ip, "base"])),
        is_variant=frame["variant"] != "",
    )


def simulate(
    table: pd.DataFrame,
    scenario: str,
    family: str,
    rng: np.random.Generator,
    effects: dict[str, float] = EFFECT,
) -> pd.DataFrame:
    """The table with simulated scores for one replicate (module docstring); ``effects``: the true
    effects of the "effect" scenario; a ``spread`` column, where the table has one, scales the seed and
    run noise of its rows."""
    n = len(table)
    effect = scenario in ("effect", "claimed")
    ptp, full_ip = table["ptp"].to_numpy(), table["full_ip"].to_numpy()
    spread = table["spread"].to_numpy() if "spread" in table else np.ones(n)  # per-cell noise scale
    shared_group, init_group = table["shared_group"].to_numpy(), table["init_group"].to_numpy()
    shared = rng.normal(0, SEED_SD, shared_group.max() + 1)[shared_group]
    init = rng.normal(0, INIT_SD, init_group.max() + 1)[init_group]
    noise = rng.standard_t(3, n) * RUN_SD / math.sqrt(3) if family == "heavy" else rng.normal(0, RUN_SD, n)
    gain = np.zeros(n)
    scale = np.ones(n)
    shared_scale = np.ones(n)
    init_scale = np.ones(n)
    area_scale = np.ones(n)
    sharp_scale = np.ones(n)
    if effect:
        gain[ptp] = effects["ptp_gain"]
        gain[full_ip] = effects["ip_gain"]
        if scenario == "effect":
            scale[ptp] = shared_scale[ptp] = effects["ptp_sd"]  # the whole seed-to-seed spread scales
            sharp_scale[ptp] = 1 - effects["ptp_sharp"]
            area_scale[full_ip] = 1 + effects["ip_area"]
            init_scale[full_ip] = effects["ip_init"]
            scale[full_ip] = effects["ip_init"]  # with the init effect: the whole spread across inits scales
    report = 60 + spread * (shared_scale * shared + scale * noise) + gain
    report += np.where(table["is_variant"].to_numpy(), spread * init_scale * init, 0.0)
    area = AREA * area_scale + rng.normal(0, AREA_SD, n)
    status = np.full(n, "ok", dtype=object)
    collapsing = {
        "collapse": np.ones(n, dtype=bool),
        "unequal-collapse": ptp | full_ip,
        "unequal-collapse-base": table["treated_base"].to_numpy(),
    }.get(family)
    if collapsing is not None:
        collapsed = collapsing & (rng.random(n) < COLLAPSE_P)
        if family != "collapse":  # the arm's other runs make up for its collapses: equal means
            lift = COLLAPSE_P / (1 - COLLAPSE_P)
            report = np.where(collapsing, report + lift * COLLAPSE_DROP, report)
            area = np.where(collapsing, area * (1 + lift), area)
        report = np.where(collapsed, 60 - COLLAPSE_DROP, report)
        area = np.where(collapsed, 0.0, area)
        status[collapsed] = "collapsed"
    if family == "discrete":
        report = np.round(report / DISCRETE_STEP) * DISCRETE_STEP
    selection_noise = 0.0 if family == "selection-equals-report" else rng.normal(0, SELECT_SD, n)
    sharpness = SHARP * sharp_scale + rng.normal(0, SHARP_SD, n) * sharp_scale
    numbers = {
        "status": status,
        "report_score": report,
        "report_examples": 56,
        "select_score": report + selection_noise,
        "learning_area": area,
        "sharpness": np.where(table["landscape"], sharpness, np.nan),
        "converged": True,
        "learned": status != "collapsed",
    }
    return pd.concat([table, pd.DataFrame(numbers, index=table.index)], axis=1)


def at_seeds(runs: pd.DataFrame, seeds: dict[str, int]) -> pd.DataFrame:
    """The runs of every arm up to the seeds it got."""
    codes = runs["arm_code"].to_numpy()
    return runs[runs["seed"].to_numpy() <= np.array([seeds[arm] for arm in ARMS])[codes]]


def adaptive(
    runs: pd.DataFrame, decide: DecideSection, budget: float
) -> tuple[list[ClaimRow], float, dict[str, int]]:
    """``prompttune decide`` on one replicate of the runs laid out up to the cap: every arm gets its pilot's
    seeds, then each round the planner (``decide.plan_round``) raises the arms of the open claim worth most
    per CPU-second to its next look, until no claim is open or ``budget`` (CPU-seconds of training) is
    spent. Returns the claims at the seeds each arm got, the CPU-seconds spent and the seeds."""
    design = Design(tuple(decide.looks))
    seeds = {arm: decide.pilot_seeds(arm) for arm in ARMS}
    spent = sum(COST[arm] * n for arm, n in seeds.items())
    while True:
        rows = claim_rows(at_seeds(runs, seeds), None, power=False, design=design)
        plan = plan_round(rows, seeds, COST, design, budget - spent)
        if not plan.served:
            return rows, spent, seeds
        seeds, spent = plan.targets, spent + plan.cost


def _count(args: tuple[str, str, str, int, int]) -> dict[tuple[str, str], dict[str, int]]:
    profile, scenario, family, reps, seed = args
    table = layout(profile)
    design = adaptive_design(profile)
    rng = np.random.default_rng(seed)
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for _ in range(reps):
        runs = simulate(table, scenario, family, rng)
        rows = adaptive(runs, *design)[0] if design else claim_rows(runs, None, power=False)
        for row in rows:
            if row.id == "IP-5" or row.verdict == "inconclusive" and row.reason == "not measured":
                continue
            if family.startswith("unequal-collapse") and row.id in SPREAD_CLAIMS:
                continue  # arms that collapse more do spread more: not a null for the spread claims
            scope = f"{row.setting}/{row.base}"
            tally = counts.setdefault((row.id, scope), {"n": 0, "tasks": row.n_tasks})
            tally["n"] = max(tally["n"], row.n_seeds)
            tally[row.verdict] = tally.get(row.verdict, 0) + 1
    return counts


def run(profiles: list[str], reps: int, jobs: int, adaptive_reps: int) -> dict[str, dict[str, float]]:
    """Print each profile's table; return each profile's largest false-verdict rate and replicates."""
    measured = {}
    for p_index, profile in enumerate(profiles):
        started = time.perf_counter()
        replicates = adaptive_reps if adaptive_design(profile) else reps
        worst = 0.0
        jobs_list = [
            (profile, "null", family, replicates, 1000 * p_index + i) for i, family in enumerate(NULLS)
        ]
        jobs_list += [
            (profile, "effect", "normal", replicates, 1000 * p_index + 10),
            (profile, "claimed", "normal", replicates, 1000 * p_index + 11),
        ]
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = dict(zip([(j[1], j[2]) for j in jobs_list], pool.map(_count, jobs_list), strict=True))
        keys = sorted(
            {k for counts in results.values() for k in counts},
            key=lambda k: (k[0][:3], int(k[0].split("-")[1]), k[1]),
        )
        took = time.perf_counter() - started
        print(f"\nprofile {profile} ({replicates} replicates per scenario, {took:.0f} s)")
        print(
            "| claim | scope | seeds × tasks | false reproduced (max over nulls) | false contradicted (max) "
            "| power at the stated effect | false 'below reference' at the stated effect "
            "| false 'smaller than claimed' at the paper's number |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for key in keys:
            nulls = [results["null", family].get(key, {}) for family in NULLS]
            false_rep = max(c.get("reproduced", 0) for c in nulls) / replicates
            false_con = max(c.get("contradicted", 0) for c in nulls) / replicates
            power = results["effect", "normal"].get(key, {}).get("reproduced", 0) / replicates
            below = results["effect", "normal"].get(key, {}).get("below reference", 0) / replicates
            claimed = results["claimed", "normal"].get(key, {})
            smaller = (
                claimed.get("smaller than claimed", 0) / replicates
                if key[0] in ("PTP-1", "PTP-2")
                else math.nan
            )
            worst = max(worst, false_rep, false_con, below, 0.0 if math.isnan(smaller) else smaller)
            first = nulls[0]
            seeds = f"≤ {first.get('n', '?')} (adaptive)" if adaptive_design(profile) else first.get("n", "?")
            shape = f"{seeds} × {first.get('tasks', '?')}"
            claimed_text = "—" if math.isnan(smaller) else f"{smaller:.4f}"
            print(
                f"| {key[0]} | {key[1]} | {shape} | {false_rep:.4f} | {false_con:.4f} | {power:.3f} "
                f"| {below:.4f} | {claimed_text} |"
            )
        measured[profile] = {"max_false_verdict_rate": round(worst, 4), "replicates": replicates}
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=list(PRESETS))
    parser.add_argument("--reps", type=int, default=10_000)
    parser.add_argument(
        "--adaptive-reps",
        type=int,
        help="replicates for the profiles under the adaptive design, whose replicate plays every round of "
        "the loop (default: --reps)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--record",
        action="store_true",
        help=f"write each profile's measured maximum to {RECORD.relative_to(ROOT)} (profiles not run keep "
        "their entries), and the maximum over every profile, which the report quotes",
    )
    args = parser.parse_args()
    print(f"α per side {ALPHA}; claims: {', '.join(c for c in CLAIMS if c != 'IP-5')}")
    measured = run(args.profiles, args.reps, args.jobs, args.adaptive_reps or args.reps)
    worst = max(entry["max_false_verdict_rate"] for entry in measured.values())
    if args.record:
        today = date.today().isoformat()
        entries = json.loads(RECORD.read_text()).get("profiles", {}) if RECORD.is_file() else {}
        entries = {name: entries[name] for name in PRESETS if isinstance(entries.get(name), dict)}
        entries.update({name: {**entry, "date": today} for name, entry in measured.items()})
        missing = sorted(set(PRESETS) - set(entries))
        if missing:
            parser.error(f"--record: {RECORD.name} has no measurement of {', '.join(missing)}; run them too")
        record = {
            "max_false_verdict_rate": max(entry["max_false_verdict_rate"] for entry in entries.values()),
            "null_families": list(NULLS),
            "profiles": entries,
        }
        RECORD.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nmax false-verdict rate: {worst:.4f}")


if __name__ == "__main__":
    main()
