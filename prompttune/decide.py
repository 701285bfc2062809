"""The adaptive design's planning: after each round of seeds, which claims are still open, which are closed
and why, and which arms get the next round's seeds (pure functions of the claims table; the loop that
trains the rounds calls them, and ``benchmarks/adaptive_design.py`` simulates the whole procedure through
them and the claims code).

Choices:

- **Looks** (``stats.Design``): a claim is looked at when its paired seeds reach one of the design's seed
  counts, at that look's nominal level; every arm starts with the first look's seeds (the pilot).
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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scipy import stats as sps

from prompttune.claims import ClaimRow
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
    z = sps.norm.isf(level)
    chance = sps.norm.cdf(row.plan_effect / se - z) + sps.norm.cdf(-row.plan_effect / se - z)
    if math.isfinite(row.plan_reference):
        chance += sps.norm.cdf((row.plan_reference - row.plan_effect) / se - z)
    return float(min(1.0, chance))


def needed(row: ClaimRow, look: int, seeds: Mapping[str, int], cost: Mapping[str, float]) -> float:
    """CPU-seconds for every arm of the claim to reach ``look`` seeds."""
    return sum(max(0, look - seeds.get(arm, 0)) * cost[arm] for arm in arms_of(row))


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
        plan.targets[arm] = max(plan.targets.get(arm, 0), look)
    plan.cost = needed(row, look, seeds, cost)
    plan.served[key] = f"next look at {look} seeds; {worth * 3600:.2g} decisions per CPU-hour"
    for _, other_key, other_look, other in open_rows:
        if other_key != key and all(plan.targets.get(arm, 0) >= other_look for arm in arms_of(other)):
            plan.served[other_key] = f"next look at {other_look} seeds, with {key}'s arms"
    return plan
