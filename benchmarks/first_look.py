"""How often a look of the adaptive design crosses its level on IP-3's statistic, by seed noise family:
why the ``adaptive`` profile's first look is at 4 seeds, not 3.

IP-3 is a paired t-test on per-seed differences of the spread across prompt inits (sd over three inits:
the main run and two variant runs, per arm). Seeds are drawn as ``verdict_calibration.py`` draws them for
SST-2 (its noise constants, the SST-2 spread scale); no true difference. Every look is taken (no
futility stop, no allocation), so the rates bound the whole procedure's for this claim. A collapsed run
scores the majority class exactly and a discrete score is whole examples: point masses, on which a t-test of
very few values is far from its nominal level.

    python benchmarks/first_look.py [--looks 3 6 10 15] [--paths 400000]

Prints, per family, the share of paths crossing each look's level for the first time and the total, per
side ("less" is the claimed side).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import special
from verdict_calibration import COLLAPSE_DROP, COLLAPSE_P, DISCRETE_STEP, INIT_SD, RUN_SD, SEED_SD, SPREAD

from prompttune.stats import ALPHA, spending_levels

FAMILIES = ("normal", "heavy", "collapse", "discrete")


def differences(family: str, paths: int, seeds: int, rng: np.random.Generator) -> np.ndarray:
    """(paths, seeds) per-seed differences of the spread across three inits, treatment − control."""
    shape = (paths, seeds, 2, 3)  # arms × inits (the main run's init first: no init effect of its own)
    shared = rng.normal(0, SEED_SD, (paths, seeds, 1, 1))
    if family == "heavy":
        noise = rng.standard_t(3, shape) * RUN_SD / math.sqrt(3)
    else:
        noise = rng.normal(0, RUN_SD, shape)
    init = rng.normal(0, INIT_SD, shape)
    init[..., 0] = 0.0
    scores = 60 + SPREAD["fewshot-256"] * (shared + noise + init)
    if family == "collapse":
        scores = np.where(rng.random(shape) < COLLAPSE_P, 60 - COLLAPSE_DROP, scores)
    if family == "discrete":
        scores = np.round(scores / DISCRETE_STEP) * DISCRETE_STEP
    spread = scores.std(axis=-1, ddof=1)
    return spread[..., 1] - spread[..., 0]


def one_sided(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Student t p-values (less, greater) of each row's mean; tied rows (sd 0) never cross, as in the
    claims code."""
    n = d.shape[1]
    mean, sd = d.mean(axis=1), d.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / math.sqrt(n))
    tied = sd == 0
    return np.where(tied, 1.0, special.stdtr(n - 1, t)), np.where(tied, 1.0, special.stdtr(n - 1, -t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--looks", type=int, nargs="+", default=[3, 6, 10, 15])
    parser.add_argument("--paths", type=int, default=400_000)
    args = parser.parse_args()
    looks = tuple(args.looks)
    levels = spending_levels(looks, ALPHA)
    shown = ", ".join(f"{level:.5f}" for level in levels)
    print(f"looks {looks}, levels {shown}; {args.paths} paths per family")
    print("| family | side | first crossing at each look | total |")
    print("| --- | --- | --- | --- |")
    for family in FAMILIES:
        d = differences(family, args.paths, looks[-1], np.random.default_rng(1))
        decided = np.zeros(args.paths, dtype=bool)
        first = {"less": [], "greater": []}
        for n, level in zip(looks, levels, strict=True):
            less, greater = one_sided(d[:, :n])
            new_less, new_greater = ~decided & (less < level), ~decided & (greater < level)
            first["less"].append(new_less.mean())
            first["greater"].append(new_greater.mean())
            decided |= new_less | new_greater
        for side, shares in first.items():
            cells = ", ".join(f"{n}: {share:.4f}" for n, share in zip(looks, shares, strict=True))
            print(f"| {family} | {side} | {cells} | {sum(shares):.4f} |")


if __name__ == "__main__":
    main()
