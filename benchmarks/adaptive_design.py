"""The adaptive design against the fixed grid at equal CPU time, on the default profile's arms at their
measured cost per seed. The design's error rates at the shipped budget are part of ``verdict_calibration.py``
(profile ``default``); this script plays the same replicate of the loop (``verdict_calibration.adaptive``:
the pilot, the planner's rounds, the claims at the seeds each arm got) at a budget of its choosing.

Each replicate draws every arm's runs up to the design's cap (``verdict_calibration.simulate``, the same
null families and effects), then plays the loop. Counted:

- under every null family, false ``reproduced`` / ``contradicted`` per claim;
- under the calibration's "effect" scenario (the papers' numbers and the reference effects), power and
  false ``below reference``;
- under "observed" (the effects and spreads the fixed grid measured on 2026-12-02: PTP's variants
  +4 points on CB with a spread ratio 0.7 and no change in sharpness; InfoPrompt +0.4 on SST-2, no change in
  speed or robustness to the init), the claims decided by the adaptive design and by the fixed grid
  (6 seeds on CB, 10 on SST-2: profile ``fixed``) at the same CPU time.

    python benchmarks/adaptive_design.py [--reps 300] [--budget-min 49.8] [--jobs 2]

Prints the tables, then ``max false-verdict rate: <x>`` as its last line.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
from verdict_calibration import (
    ARMS,
    EFFECT,
    NULLS,
    SPREAD_CLAIMS,
    adaptive,
    adaptive_design,
    at_seeds,
    layout,
    simulate,
)

from prompttune.claims import ClaimRow, claim_rows
from prompttune.decide import arms_of, claim_key

PROFILE = "default"  # the arms under the adaptive design
FIXED_SEEDS = {"fewglue": 6, "fewshot-256": 10}  # the same arms' fixed grid (profile ``fixed``)
OBSERVED = {"ptp_gain": 4.0, "ptp_sd": 0.7, "ptp_sharp": 0.0, "ip_gain": 0.4, "ip_area": 0.0, "ip_init": 1.0}
DECIDED = ("reproduced", "contradicted", "smaller than claimed", "below reference")


def fixed(runs: pd.DataFrame) -> list[ClaimRow]:
    """The claims of the fixed grid, on the same replicate."""
    return claim_rows(
        at_seeds(runs, {arm: FIXED_SEEDS[arm.split("/")[0]] for arm in ARMS}), None, power=False
    )


def _count(args: tuple[str, str, int, int, float]) -> dict[str, dict[str, float]]:
    scenario, family, reps, seed, budget = args
    table = layout(PROFILE)
    decide, _ = adaptive_design(PROFILE)
    rng = np.random.default_rng(seed)
    effects = OBSERVED if scenario == "observed" else EFFECT
    tally: dict[str, dict[str, float]] = {}
    for _ in range(reps):
        runs = simulate(table, "effect" if scenario == "observed" else scenario, family, rng, effects)
        rows, spent, seeds = adaptive(runs, decide, budget)
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
        "--budget-min",
        type=float,
        default=49.8,
        help="training CPU-minutes (default: the fixed grid's, landscapes included)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    budget = args.budget_min * 60
    started = time.perf_counter()
    jobs = [("null", family, args.reps, i, budget) for i, family in enumerate(NULLS)]
    jobs += [("effect", "normal", args.reps, 20, budget), ("observed", "normal", args.reps, 21, budget)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = dict(zip([(j[0], j[1]) for j in jobs], pool.map(_count, jobs), strict=True))
    reps, decide = args.reps, adaptive_design(PROFILE)[0]
    pilot = ", ".join(f"{arm} {n}" for arm, n in decide.pilot.items()) or "none"
    print(
        f"design looks {tuple(decide.looks)}; pilot {decide.looks[0]} seeds, except {pilot}; budget "
        f"{args.budget_min:g} CPU-min of training; {reps} replicates per scenario; "
        f"{time.perf_counter() - started:.0f} s"
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
