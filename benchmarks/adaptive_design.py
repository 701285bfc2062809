"""The adaptive design as a whole — looks, allocation and stopping — simulated through the claims code and
the planner (``prompttune.decide``), on the default profile's arms at their measured cost per seed.

Each replicate draws every arm's runs up to the design's cap (``verdict_calibration.simulate``, the same
null families and effects), then plays the loop: every arm gets the first look's seeds (the pilot), and
each round the planner raises the arms of the open claim worth most per CPU-second to its next look, until
no claim is open or the budget is spent. The claims are then read at the seeds each arm got. Counted:

- under every null family, false ``reproduced`` / ``contradicted`` per claim (each must stay ≤ 0.025);
- under the calibration's "effect" scenario (the papers' numbers and the reference effects), power and
  false ``below reference``;
- under "observed" (the effects and spreads the default profile measured on 2026-12-02: PTP's variants
  +4 points on CB with a spread ratio 0.7 and no change in sharpness; InfoPrompt +0.4 on SST-2, no change in
  speed or robustness to the init), the claims decided by the adaptive design and by the fixed grid
  (6 seeds on CB, 10 on SST-2) at the same CPU time.

Cost per seed (CPU-seconds, native bf16, the default profile's cold run of 2026-12-02, benchmarks/README.md):
CB `pt` 20, the random-noise variants 32, `ptp-adv-emb` 68, `ptp-adv-text` 56, each PTP arm plus 17 s of
landscape; SST-2 13 per main run and 31 per pair of init variant runs. Spreads: CB 1.2 ×, SST-2 0.3 × the
calibration's seed noise (sd 3.6 and 0.9 points per run).

    python benchmarks/adaptive_design.py [--reps 300] [--budget-min 43] [--jobs 2]

Prints the tables, then ``max false-verdict rate: <x>`` as its last line.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from verdict_calibration import EFFECT, NULLS, SPREAD_CLAIMS, layout, simulate

from prompttune.claims import ClaimRow, claim_rows
from prompttune.decide import arms_of, claim_key, plan_round
from prompttune.stats import Design

DESIGN = Design((3, 6, 10, 15))
FIXED_SEEDS = {"fewglue": 6, "fewshot-256": 10}  # the default profile's fixed grid
SPREAD = {"fewglue": 1.2, "fewshot-256": 0.3}
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
OBSERVED = {"ptp_gain": 4.0, "ptp_sd": 0.7, "ptp_sharp": 0.0, "ip_gain": 0.4, "ip_area": 0.0, "ip_init": 1.0}
DECIDED = ("reproduced", "contradicted", "smaller than claimed", "below reference")


def full_layout() -> pd.DataFrame:
    """The default profile's runs, every arm at every seed up to the cap, landscapes on every seed."""
    one = layout("default")
    one = one[one["seed"] == 1]
    frame = pd.concat([one.assign(seed=seed) for seed in range(1, DESIGN.looks[-1] + 1)], ignore_index=True)
    frame["landscape"] = frame["method"].str.startswith("pt-ptp") | (
        (frame["method"] == "pt") & (frame["setting"] == "fewglue")
    )
    frame["landscape"] &= frame["variant"] == ""
    frame["spread"] = frame["setting"].map(SPREAD)
    frame["arm"] = (
        frame["setting"] + "/" + frame["method"] + np.where(frame["variant"] != "", "@variants", "")
    )
    return frame


def at_seeds(runs: pd.DataFrame, seeds: dict[str, int]) -> pd.DataFrame:
    return runs[runs["seed"] <= runs["arm"].map(seeds)]


def adaptive(runs: pd.DataFrame, budget: float) -> tuple[list[ClaimRow], float, dict[str, int]]:
    """The loop on one replicate: (the final claims, CPU-seconds spent, seeds per arm)."""
    seeds = dict.fromkeys(COST, DESIGN.looks[0])
    spent = sum(COST[arm] * n for arm, n in seeds.items())
    while True:
        rows = claim_rows(at_seeds(runs, seeds), None, power=False, design=DESIGN)
        plan = plan_round(rows, seeds, COST, DESIGN, budget - spent)
        if not plan.served:
            return rows, spent, seeds
        seeds, spent = plan.targets, spent + plan.cost


def fixed(runs: pd.DataFrame) -> list[ClaimRow]:
    seeds = {arm: FIXED_SEEDS[arm.split("/")[0]] for arm in COST}
    return claim_rows(at_seeds(runs, seeds), None, power=False)


def _count(args: tuple[str, str, int, int, float]) -> dict[str, dict[str, float]]:
    scenario, family, reps, seed, budget = args
    table = full_layout()
    rng = np.random.default_rng(seed)
    effects = OBSERVED if scenario == "observed" else EFFECT
    tally: dict[str, dict[str, float]] = {}
    for _ in range(reps):
        runs = simulate(table, "effect" if scenario == "observed" else scenario, family, rng, effects)
        rows, spent, seeds = adaptive(runs, budget)
        decided = 0
        for row in rows:
            if row.id == "IP-5" or row.reason == "not measured":
                continue
            if family.startswith("unequal-collapse") and row.id in SPREAD_CLAIMS:
                continue
            counts = tally.setdefault(claim_key(row), {})
            counts[row.verdict] = counts.get(row.verdict, 0) + 1
            counts["seeds"] = counts.get("seeds", 0) + max(seeds.get(arm, 0) for arm in arms_of(row))
            decided += row.verdict in DECIDED
        summary = tally.setdefault("all", {})
        summary["decided"] = summary.get("decided", 0) + decided
        summary["spent"] = summary.get("spent", 0) + spent
        if scenario == "observed":
            summary["fixed decided"] = summary.get("fixed decided", 0) + sum(
                row.verdict in DECIDED
                for row in fixed(runs)
                if row.id != "IP-5" and row.reason != "not measured"
            )
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument(
        "--budget-min", type=float, default=43.1, help="training CPU-minutes (default: the fixed grid's)"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    budget = args.budget_min * 60
    started = time.perf_counter()
    jobs = [("null", family, args.reps, i, budget) for i, family in enumerate(NULLS)]
    jobs += [("effect", "normal", args.reps, 20, budget), ("observed", "normal", args.reps, 21, budget)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = dict(zip([(j[0], j[1]) for j in jobs], pool.map(_count, jobs), strict=True))
    reps = args.reps
    print(
        f"design looks {DESIGN.looks}; budget {args.budget_min:g} CPU-min of training; {reps} replicates "
        f"per scenario; {time.perf_counter() - started:.0f} s"
    )
    print(
        "| claim | false reproduced (max over nulls) | false contradicted (max) | power at the stated effect "
        "| false 'below reference' | decided at the observed effects | mean seeds (observed) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    worst = 0.0
    keys = sorted({k for counts in results.values() for k in counts if k != "all"})
    for key in keys:
        nulls = [results["null", family].get(key, {}) for family in NULLS]
        false_rep = max(c.get("reproduced", 0) for c in nulls) / reps
        false_con = max(c.get("contradicted", 0) for c in nulls) / reps
        effect = results["effect", "normal"].get(key, {})
        observed = results["observed", "normal"].get(key, {})
        below = effect.get("below reference", 0) / reps
        worst = max(worst, false_rep, false_con, below)
        decided = sum(observed.get(v, 0) for v in DECIDED) / reps
        print(
            f"| {key} | {false_rep:.4f} | {false_con:.4f} | {effect.get('reproduced', 0) / reps:.3f} "
            f"| {below:.4f} | {decided:.3f} | {observed.get('seeds', 0) / reps:.1f} |"
        )
    total = results["observed", "normal"]["all"]
    adaptive_mean, fixed_mean = total["decided"] / reps, total["fixed decided"] / reps
    print(
        f"\nclaims decided at the observed effects, per replicate: adaptive {adaptive_mean:.2f}, fixed grid "
        f"{fixed_mean:.2f} (adaptive spent {total['spent'] / reps / 60:.1f} CPU-min of {args.budget_min:g})"
    )
    print(f"\nmax false-verdict rate: {worst:.4f}")


if __name__ == "__main__":
    main()
