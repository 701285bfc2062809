"""The adaptive design's pieces at n = 3, 5 and 10 seeds, under a null and under a shift: the sequential
boundaries (through the claims code's ``sequential``), futility, and an allocation that never gives seeds to
an arm no open claim reads. (The below-reference verdict's own tests are in tests/test_stats.py; the whole
procedure is simulated in benchmarks/adaptive_design.py.)"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from test_claims import run, simulated
from test_config import write_params

from prompttune.claims import (
    ClaimRow,
    Look,
    Part,
    _interval,
    claim_rows,
    claims_table,
    first_verdict,
    gain_part,
    sequential,
)
from prompttune.config import arm_seeds_path, expand_stages, load_params
from prompttune.decide import (
    FUTILE,
    arms_of,
    beyond_pilot,
    decision_chance,
    needed,
    plan_round,
    write_state,
)
from prompttune.figures import trajectories
from prompttune.schema import PICK_SEEDS
from prompttune.stats import ALPHA, Design, paired_t, spending_levels, spent

SEED_COUNTS = (3, 5, 10)


def looks_up_to(n: int) -> Design:
    return Design(tuple(sorted({3, (3 + n) // 2, n})))


def sequential_verdict(d: np.ndarray, design: Design) -> str:
    treatment = {"CB": {seed: float(v) for seed, v in enumerate(d, 1)}}
    control = {"CB": dict.fromkeys(range(1, d.size + 1), 0.0)}

    def parts_at(upto: int, level: float) -> list[Part]:
        return [gain_part(treatment, control, "greater", level, 2.0, upto=upto)[0]]

    return sequential(parts_at, first_verdict, d.size, ALPHA, design).verdict


def test_the_boundaries_spend_alpha_over_the_looks_of_a_t_test() -> None:
    """One look is the fixed test at α; several looks each get less, and the looks' Student t-tests on
    normal null data (paths independent of the ones the levels were set on) cross some boundary with
    probability α in all; the α spent up to each look follows the spending function."""
    assert spending_levels((6,), ALPHA) == (ALPHA,)
    looks = (3, 5, 8, 12)
    levels = spending_levels(looks, ALPHA)
    assert all(0 < level < ALPHA for level in levels)
    draws = np.random.default_rng(0).normal(size=(200_000, looks[-1]))
    crossed = np.zeros(len(draws), dtype=bool)
    for n, level in zip(looks, levels, strict=True):
        first = draws[:, :n]
        t = first.mean(axis=1) / (first.std(axis=1, ddof=1) / math.sqrt(n))
        crossed |= sps.t.sf(t, n - 1) < level
        assert crossed.mean() == pytest.approx(spent(n / looks[-1], ALPHA), abs=0.001)
    assert crossed.mean() == pytest.approx(ALPHA, abs=0.001)


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_repeated_looks_keep_the_error_rate_under_the_null(n: int) -> None:
    rng = np.random.default_rng(n)
    reps = 2000
    verdicts = [sequential_verdict(rng.normal(0, 3, n), looks_up_to(n)) for _ in range(reps)]
    bound = ALPHA + 3 * math.sqrt(ALPHA / reps)
    assert verdicts.count("reproduced") / reps <= bound
    assert verdicts.count("contradicted") / reps <= bound


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_repeated_looks_detect_a_shift(n: int) -> None:
    """A large shift is found at some look; at 10 seeds almost always, and never the wrong way."""
    rng = np.random.default_rng(100 + n)
    verdicts = [sequential_verdict(rng.normal(6, 2, n), looks_up_to(n)) for _ in range(300)]
    assert "contradicted" not in verdicts
    assert verdicts.count("reproduced") / 300 >= {3: 0.15, 5: 0.5, 10: 0.9}[n]


def test_a_decided_look_is_not_undone_by_later_seeds() -> None:
    d = np.array([5.0, 5.2, 4.9, 5.1, 5.0, -30.0, -30.0, -30.0])
    design = Design((4, 8))
    assert sequential_verdict(d, design) == "reproduced", "decided at the look with 4 seeds"
    assert sequential_verdict(d, Design.fixed(8)) != "reproduced"


def test_the_trajectory_shows_every_look_and_the_first_that_decides_is_the_verdict() -> None:
    """Each look's estimate and interval at its own level (a repeated confidence interval): the first look
    whose interval leaves 0 on the claimed side decides, later looks are shown but cannot undo it, and the
    page's figure and claims.csv carry the same looks."""
    d = np.array([5.0, 5.2, 4.9, 5.1, 5.0, -30.0, -30.0, -30.0])
    treatment = {"CB": {seed: float(v) for seed, v in enumerate(d, 1)}}
    control = {"CB": dict.fromkeys(range(1, d.size + 1), 0.0)}

    def parts_at(upto: int, level: float) -> list[Part]:
        return [gain_part(treatment, control, "greater", level, 2.0, upto=upto)[0]]

    design = Design((4, 8))
    decision = sequential(parts_at, first_verdict, d.size, ALPHA, design)
    looks = decision.trajectory
    assert decision.verdict == "reproduced" and "look at 4 seeds" in decision.reason
    assert [look.seeds for look in looks] == [4, 8]
    assert [look.level for look in looks] == list(design.levels(ALPHA))
    assert looks[0].estimate == pytest.approx(d[:4].mean()) and looks[0].low > 0
    assert looks[1].estimate == pytest.approx(d.mean()) and looks[1].low < 0 < looks[1].high
    assert [look.verdict for look in looks] == ["reproduced", "inconclusive"]
    assert (decision.seeds, decision.level) == (4, design.levels(ALPHA)[0]), "the deciding look is reported"
    assert decision.parts[0].test.estimate == pytest.approx(d[:4].mean())
    fixed = sequential(parts_at, first_verdict, d.size, ALPHA, None)
    assert [look.seeds for look in fixed.trajectory] == [8] and (fixed.seeds, fixed.level) == (8, ALPHA)


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_claim_rows_carry_their_trajectory_to_the_page_and_claims_csv(n: int) -> None:
    runs = simulated(n, np.random.default_rng(n), shift=True)
    design = looks_up_to(n)
    rows = claim_rows(runs, None, power=False, design=design)
    measured = [row for row in rows if row.reason != "not measured" and row.id != "IP-5"]
    for row in measured:
        assert [look.seeds for look in row.trajectory] == [g for g, _ in design.reached(row.n_seeds, ALPHA)]
        decided = [look.verdict for look in row.trajectory if look.verdict != "inconclusive"]
        assert row.verdict == "inconclusive" or row.verdict == decided[0] or "collapse guard" in row.reason
    table = claims_table(rows, {"git_revision": "r", "packages": {}})
    pt = table[table["id"] == "IP-1"]["trajectory"].iloc[0]
    assert pt.count(" at level ") == len(design.reached(n, ALPHA))
    figure = trajectories(rows)
    assert (figure != "") == (len(design.reached(n, ALPHA)) > 1)


def test_a_ratio_look_on_two_seed_pairs_can_have_an_infinite_bound_and_still_renders() -> None:
    """PTP-3 at a 4-seed look has two seed pairs: a t with 1 degree of freedom at a look's strict level
    can put the log ratio's bound past what a float's exp holds. The row shows an infinite ratio and the
    figure draws the interval up to the axis' edge, instead of the whole table failing. A bound that a
    float holds but fixed point would print as 0.00 or as 22 digits is printed in scientific notation."""
    part = gain_part({"CB": {1: 0.1, 2: 900.0}}, {"CB": {1: 0.0, 2: 0.0}}, "less", 1e-4, 0.1)[0]
    ratio = dataclasses.replace(part, ratio=True)
    assert ratio.interval[1] > 709 and ratio.shown(ratio.interval[1]) == math.inf
    assert ratio.text(ratio.interval[1]) == "∞"
    assert _interval(ratio, 2).endswith(", ∞]")
    texts = [ratio.text(math.log(v)) for v in (3.7265e21, 2.5e-22, 1.5, 0.012, 999.4)]
    assert texts == ["3.7e+21", "2.5e-22", "1.50", "0.01", "999.40"]
    assert ratio.text(-math.inf) == "0.00" and part.text(-1.234) == "-1.23"
    looks = (
        Look(2, 1e-4, 1.5, 0.0, math.inf, "inconclusive", 1.0, math.nan, True),
        Look(4, 1e-3, 1.2, 0.5, 3.0, "inconclusive", 1.0, math.nan, True),
    )
    figure = trajectories([dataclasses.replace(row(4, 0.2, 0.1), id="PTP-3", trajectory=looks)])
    assert figure.startswith("data:image/svg+xml")


def row(n: int, effect: float, sd: float, **extra) -> ClaimRow:
    base = ClaimRow(
        "IP-1",
        "InfoPrompt",
        "",
        "",
        "",
        "",
        "",
        "",
        "inconclusive",
        "too few seeds",
        "",
        "",
        setting="s",
        base="pt",
    )
    values = dict(
        n_seeds=n,
        alpha=ALPHA,
        arms="s/pt s/pt-infoprompt",
        plan_effect=effect,
        plan_sd=sd,
        plan_reference=2.0,
    )
    return dataclasses.replace(base, **{**values, **extra})


COST = {"s/pt": 10.0, "s/pt-infoprompt": 10.0, "s/pt-ptp": 30.0, "s/head": 1.0}
DESIGN = Design((3, 5, 10))


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_futility_closes_a_claim_the_cap_cannot_decide(n: int) -> None:
    """Under a shift halfway to the reference with a huge spread, even the cap (10 seeds) is unlikely to
    decide: the claim is closed with the reason. Under the null with a small spread it stays open (below
    reference is within reach) unless its seeds reached the cap."""
    seeds = dict.fromkeys(COST, n)
    hopeless = plan_round([row(n, 1.0, 40.0)], seeds, COST, DESIGN, 1e9)
    if n < 10:
        assert decision_chance(row(n, 1.0, 40.0), 10, DESIGN.levels(ALPHA)[-1]) < FUTILE
        assert list(hopeless.closed.values())[0].startswith("futility:") and not hopeless.served
    else:
        assert list(hopeless.closed.values()) == ["seed cap: 10 seeds reached"]
    null = plan_round([row(n, 0.0, 1.0)], seeds, COST, DESIGN, 1e9)
    assert (null.served != {}) == (n < 10)
    poor = plan_round([row(n, 0.0, 1.0)], seeds, COST, DESIGN, 5.0)
    if n < 10:
        assert list(poor.closed.values())[0].startswith("budget:"), "the next look costs more than is left"


@pytest.mark.parametrize("n", SEED_COUNTS)
@pytest.mark.parametrize("effect", [0.0, 3.0])
def test_allocation_never_gives_seeds_to_an_arm_no_open_claim_reads(n: int, effect: float) -> None:
    seeds = dict.fromkeys(COST, n)
    decided = row(n, 5.0, 1.0, id="PTP-2", verdict="reproduced", arms="s/pt s/pt-ptp")
    unmeasured = row(0, math.nan, math.nan, id="IP-3", reason="not measured", arms="s/head")
    plan = plan_round([decided, unmeasured, row(n, effect, 3.0)], seeds, COST, DESIGN, 1e9)
    open_arms = set(arms_of(row(n, effect, 3.0)))
    raised = {arm for arm, count in plan.targets.items() if count > seeds[arm]}
    assert raised <= open_arms
    if n < 10:
        assert raised == open_arms and plan.cost == pytest.approx(
            sum(COST[a] for a in open_arms) * (min(look for look in DESIGN.looks if look > n) - n)
        )
    else:
        assert not raised, "past the cap no arm gets a seed"


BEST_VARIANT_CLAIMS = ("PTP-2", "PTP-3", "PTP-4")


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_the_adaptive_design_picks_the_best_variant_on_its_first_seeds_and_tests_the_rest(n: int) -> None:
    """Under the adaptive design the best of several PTP variants is the one with the highest selection
    score on seeds 1…PICK_SEEDS, and PTP-2, -3 and -4 test it on the later seeds only, at α; the planner
    raises their arms by the seeds that picked it. A fixed grid picks on every seed and tests them all at
    α/k."""
    runs = simulated(n + PICK_SEEDS, np.random.default_rng(n), shift=False)
    picked_early = (runs["method"] == "pt-ptp-rn-text") & (runs["seed"] <= PICK_SEEDS)
    leads_later = (runs["method"] == "pt-ptp-adv-emb") & (runs["seed"] > PICK_SEEDS)
    runs.loc[picked_early, ["select_score", "report_score"]] += 50.0  # the report score: left out of tests
    runs.loc[leads_later, "select_score"] += 500.0
    tested = runs[(runs["seed"] > PICK_SEEDS) & (runs["setting"] == "fewglue")].set_index("seed")
    score = {
        method: tested.loc[tested["method"] == method, "report_score"] for method in ("pt", "pt-ptp-rn-text")
    }
    gain = (score["pt-ptp-rn-text"] - score["pt"]).mean()
    design = Design((n,))
    adaptive = {row.id: row for row in claim_rows(runs, None, power=False, design=design)}
    fixed = {row.id: row for row in claim_rows(runs, None, power=False)}
    for claim in BEST_VARIANT_CLAIMS:
        row = adaptive[claim]
        assert "best variant pt-ptp-rn-text of 4, picked on seeds 1–2" in row.scope
        assert (row.n_seeds, row.seeds_before, row.alpha) == (n, PICK_SEEDS, ALPHA)
        assert [look.seeds for look in row.trajectory] == [n]
        assert "best variant pt-ptp-adv-emb of 4 (α/4)" in fixed[claim].scope
        assert (fixed[claim].n_seeds, fixed[claim].seeds_before, fixed[claim].alpha) == (n + 2, 0, ALPHA / 4)
    assert adaptive["PTP-2"].estimate == pytest.approx(gain), "the mean gain on the seeds after the pick"
    assert adaptive["PTP-5"].n_seeds == n + PICK_SEEDS, "PTP-5 picks nothing: every seed"
    row = adaptive["PTP-2"]
    seeds = dict.fromkeys(arms_of(row), n + PICK_SEEDS)
    later = Design((n, n + 3))
    plan = plan_round([dataclasses.replace(row, verdict="inconclusive", reason="too few seeds")], seeds,
                      dict.fromkeys(seeds, 10.0), later, 1e9)  # fmt: skip
    assert plan.targets == dict.fromkeys(seeds, n + 3 + PICK_SEEDS), "the look at n + 3 tested seeds"
    assert needed(row, n + 3, seeds, dict.fromkeys(seeds, 10.0)) == pytest.approx(2 * 3 * 10.0)


def test_before_any_seed_after_the_pick_the_picked_claims_wait_for_seeds() -> None:
    """A first look at 2 seeds: the pilot trains only the seeds that pick the variant, so PTP-2, -3 and -4
    have no seed to test yet. Their rows say "too few seeds" (the report once crashed pairing no seeds, and
    PTP-4 read as not measured; the power column said the effect was observed the other way), and the
    planner raises their arms to the first look + PICK_SEEDS."""
    design = Design((2, 3))
    runs = simulated(PICK_SEEDS, np.random.default_rng(0), shift=False)
    rows = {row.id: row for row in claim_rows(runs, None, design=design)}  # with power: the page's rows
    for claim in BEST_VARIANT_CLAIMS:
        assert (rows[claim].verdict, rows[claim].n_seeds) == ("inconclusive", 0)
        assert rows[claim].reason.startswith("too few seeds (0; the first look is at 2)"), rows[claim].reason
        assert rows[claim].seeds_needed.startswith(f"— ({claim} not estimated yet)"), "not 'the other way'"
    seeds = dict.fromkeys(arms_of(rows["PTP-4"]), PICK_SEEDS)
    plan = plan_round([rows["PTP-4"]], seeds, dict.fromkeys(seeds, 10.0), design, 1e9)
    assert plan.targets == dict.fromkeys(seeds, 2 + PICK_SEEDS)


def test_a_picked_claims_last_look_is_a_seed_count_the_default_profile_accepts(tmp_path: Path) -> None:
    """At the cap's look the planner raises a best-variant claim's arms to the last look + PICK_SEEDS;
    seeds.yaml holds those counts and the default profile trains them (a cap of the last look alone
    refused the file, and the loop stopped with an error)."""
    path = write_params(tmp_path, lambda d: None, profile="default")
    looks = load_params(path).grid.decide.looks
    picked = row(looks[-2], 1.0, 3.0, seeds_before=PICK_SEEDS, arms="fewglue/pt fewglue/pt-ptp-rn-emb")
    seeds = dict.fromkeys(arms_of(picked), looks[-2] + PICK_SEEDS)
    plan = plan_round([picked], seeds, dict.fromkeys(seeds, 10.0), Design(tuple(looks)), 1e9)
    assert plan.targets == dict.fromkeys(seeds, looks[-1] + PICK_SEEDS)
    write_state(arm_seeds_path(path), {"seeds": plan.targets, "rounds": []})
    params = load_params(path)
    assert params.arm_seeds == plan.targets
    trained = {c.stage.method: c.seeds for c in expand_stages(params) if c.stage.cell == "fewglue.CB"}
    assert trained["pt"] == trained["pt-ptp-rn-emb"] == list(range(1, looks[-1] + PICK_SEEDS + 1))


def test_an_arm_raised_past_its_own_pilot_keeps_its_seeds(tmp_path: Path) -> None:
    """The default profile's PTP variants train 2 seeds before the first plan, every other arm 4 (the first
    look). When PTP-5, which reads every variant, gets its first look, the variants go to 4 seeds:
    seeds.yaml must hold them (comparing with the first look, not the arm's pilot, dropped them, and the
    loop trained the same round again)."""
    path = write_params(tmp_path, lambda d: None, profile="default")
    decide = load_params(path).grid.decide
    variants = [f"fewglue/pt-ptp-{kind}" for kind in ("rn-emb", "adv-emb", "rn-text", "adv-text")]
    assert {arm: decide.pilot_seeds(arm) for arm in [*variants, "fewglue/pt"]} == {
        **dict.fromkeys(variants, PICK_SEEDS),
        "fewglue/pt": decide.looks[0],
    }
    ptp5 = row(PICK_SEEDS, 1.0, 3.0, arms=" ".join(["fewglue/pt", *variants]))
    seeds = {arm: decide.pilot_seeds(arm) for arm in arms_of(ptp5)}
    plan = plan_round([ptp5], seeds, dict.fromkeys(seeds, 10.0), Design(tuple(decide.looks)), 1e9)
    assert plan.targets == dict.fromkeys(seeds, decide.looks[0])
    assert beyond_pilot(plan.targets, decide) == dict.fromkeys(sorted(variants), decide.looks[0])
    write_state(arm_seeds_path(path), {"seeds": beyond_pilot(plan.targets, decide), "rounds": []})
    trained = {
        c.stage.method: c.seeds for c in expand_stages(load_params(path)) if c.stage.cell == "fewglue.CB"
    }
    assert {method: trained[method] for method in ("pt", "pt-ptp-adv-text", "pt2")} == dict.fromkeys(
        ("pt", "pt-ptp-adv-text", "pt2"), [1, 2, 3, 4]
    )


@pytest.mark.parametrize("n", SEED_COUNTS)
@pytest.mark.parametrize("shift", [False, True])
def test_picking_on_other_seeds_keeps_the_level_under_the_null_and_finds_a_shift(n: int, shift: bool) -> None:
    """The pick and the test share no seed, so testing the picked variant at α (not α/k) keeps its error
    rates under the null, here with the selection score equal to the report score; a large shift is
    found at 10 tested seeds."""
    rng = np.random.default_rng(200 + n + 50 * shift)
    reps = 150
    counts: dict[str, dict[str, int]] = {claim: {} for claim in BEST_VARIANT_CLAIMS}
    for _ in range(reps):
        runs = simulated(n + PICK_SEEDS, rng, shift=shift)
        for row in claim_rows(runs, None, power=False, design=Design((n,))):
            if row.id in counts:
                counts[row.id][row.verdict] = counts[row.id].get(row.verdict, 0) + 1
    bound = ALPHA + 3 * math.sqrt(ALPHA / reps)
    for claim, verdicts in counts.items():
        assert verdicts.get("contradicted", 0) / reps <= bound, (claim, verdicts)
        if not shift:
            assert verdicts.get("reproduced", 0) / reps <= bound, (claim, verdicts)
        elif n == 10 and claim != "PTP-3":  # PTP-3 at 10 seeds: test_claims' shift is on the mean
            assert verdicts.get("reproduced", 0) / reps >= 0.7, (claim, verdicts)


def ip_runs(treatment: np.ndarray, control: np.ndarray, column: str) -> pd.DataFrame:
    """InfoPrompt and its base on SST-2, seed by seed, with ``column`` set from the two arrays."""
    rows = [
        run("fewshot-256", "SST-2", method, seed, 60.0, **{column: float(value)})
        for method, values in (("pt-infoprompt", treatment), ("pt", control))
        for seed, value in enumerate(values, 1)
    ]
    return pd.DataFrame(rows)


def test_a_row_shows_the_interval_its_verdict_read_at_its_look() -> None:
    """Under the adaptive design a row's interval, p-value and level are those of the look that gave its
    verdict (here the last look, undecided), not a fixed test at α on every seed: the same seeds give
    p between the look's level and α, so the fixed grid's interval excludes 0 and the look's does not."""
    design = Design((4, 10))
    level = design.levels(ALPHA)[-1]
    z = np.array([-1.0, 1.0, -1.0, 1.0, 0.5, -0.5, 1.5, -1.5, 0.8, -0.8])
    z = (z - z.mean()) / z.std(ddof=1)
    p = (level + ALPHA) / 2
    gain = z + sps.t.isf(p, z.size - 1) / math.sqrt(z.size)
    runs = ip_runs(60 + gain, np.full(z.size, 60.0), "report_score")
    (adaptive,) = [row for row in claim_rows(runs, None, design=design) if row.id == "IP-1"]
    (fixed,) = [row for row in claim_rows(runs, None) if row.id == "IP-1"]
    assert adaptive.verdict == "inconclusive" and "look at 10 seeds" in adaptive.reason
    assert (adaptive.level, adaptive.alpha, adaptive.p_claimed) == pytest.approx((level, ALPHA, p))
    assert adaptive.low < 0 < adaptive.high, "the look's interval agrees with its verdict"
    assert (fixed.level, fixed.p_claimed) == pytest.approx((ALPHA, p)) and fixed.low > 0
    assert adaptive.estimate == pytest.approx(fixed.estimate)
    assert adaptive.measured.startswith(_interval(claim_parts(runs, design)[0], 2))


def claim_parts(runs: pd.DataFrame, design: Design) -> list[Part]:
    """IP-1's part at the last look of ``design``, built directly."""
    values = {
        method: {"SST-2": dict(zip(frame["seed"], frame["report_score"], strict=True))}
        for method, frame in runs.groupby("method")
    }
    level = design.levels(ALPHA)[-1]
    return [gain_part(values["pt-infoprompt"], values["pt"], "greater", level, 2.0)[0]]


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_a_relative_reference_verdict_shows_the_interval_against_the_reference(n: int) -> None:
    """PTP-4's reference is half the base's sharpness, so it is tested as variant − 0.5·base. Here the
    variant's sharpness is half the base's plus 0.05, so that test is tight while the difference varies
    with the base: the difference's interval holds both 0 and the reference, and the row shows, and its
    reason names, the interval against the reference, which excludes it."""
    rng = np.random.default_rng(n)
    z = rng.standard_normal(n)
    base = 0.2 + 0.15 * math.sqrt(n / 5) * (z - z.mean()) / z.std(ddof=1)  # the mean's se stays 0.067
    variant = 0.5 * base + 0.05 + rng.normal(0, 0.005, n)
    rows = [
        run("fewglue", "CB", method, seed, 60.0, sharpness=float(value))
        for method, values in (("pt-ptp-adv-text", variant), ("pt", base))
        for seed, value in enumerate(values, 1)
    ]
    (row,) = [row for row in claim_rows(pd.DataFrame(rows), None) if row.id == "PTP-4"]
    reference = -0.5 * base.mean()
    difference = paired_t(variant - base, ALPHA)
    assert difference.low < reference < 0 < difference.high, "the difference alone decides nothing"
    assert row.verdict == "below reference" and row.low > reference
    assert (row.trajectory[-1].low, row.trajectory[-1].high) == (row.low, row.high), "the figure's look too"
    assert row.estimate == pytest.approx(difference.estimate)
    interval = f"[{row.low:+.2f}, {row.high:+.2f}]"
    assert f"the interval against the reference (the base's uncertainty in it) {interval}" in row.reason
    assert f"{reference:+.2f} (choice)" in row.reason
    shown = f"{difference.estimate:+.4f} [{difference.low:+.4f}, {difference.high:+.4f}]"
    assert row.measured.startswith(shown)
    assert row.measured.endswith(f"the base's uncertainty in it: [{row.low:+.4f}, {row.high:+.4f}]")


@pytest.mark.parametrize("design", [None, Design((4, 10))])
def test_a_multi_part_row_shows_the_part_its_verdict_rests_on(design: Design | None) -> None:
    """IP-4 is below the reference when either ablation's gap is ruled out at the reference size: here
    the gap to the second ablation (rep) is tight at 0 and the first (head) is too noisy to say. The row's
    numbers, its forest bar and its trajectory are rep's, whose interval excludes the reference; head's
    interval, the first part's, holds it."""
    rng = np.random.default_rng(3)
    n = 10
    z = rng.standard_normal((2, n))
    z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, ddof=1, keepdims=True)
    full = 60 + rng.normal(0, 1, n)
    scores = {
        "pt": 60 + rng.normal(0, 1, n),
        "pt-infoprompt": full,
        "pt-infoprompt-head": full - 2.0 - 8 * z[0],  # full − head: mean 2, sd 8
        "pt-infoprompt-rep": full - 0.3 * z[1],  # full − rep: mean 0, sd 0.3
    }
    rows = [
        run("fewshot-256", "SST-2", method, seed, float(value))
        for method, values in scores.items()
        for seed, value in enumerate(values, 1)
    ]
    (row,) = [row for row in claim_rows(pd.DataFrame(rows), None, design=design) if row.id == "IP-4"]
    seeds = next(look.seeds for look in row.trajectory if look.verdict != "inconclusive")
    to_rep, to_head = full - scores["pt-infoprompt-rep"], full - scores["pt-infoprompt-head"]
    rep, head = paired_t(to_rep[:seeds], row.level), paired_t(to_head[:seeds], row.level)
    assert row.verdict == "below reference" and "vs infoprompt-rep" in row.reason
    assert head.low < 2.0 < head.high, "the first part alone rules nothing out"
    assert (row.estimate, row.low, row.high) == pytest.approx((rep.estimate, rep.low, rep.high))
    assert row.high < 2.0 and row.forest[2] < 1.0
    assert [look.estimate for look in row.trajectory] == pytest.approx(
        [to_rep[: look.seeds].mean() for look in row.trajectory]
    )
