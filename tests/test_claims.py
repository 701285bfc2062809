"""Claim verdicts on hand-made run tables whose answers are known by construction, and every verdict rule
under a null and under a shift at n = 3, 5 and 10 seeds."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pandas as pd
import pytest

from prompttune.claims import CLAIMS, GUARD_RUNS, Runs, claim_rows, claims_table, init_spread
from prompttune.results import RUN_COLUMNS
from prompttune.stats import ALPHA, Design, describe, dispersion_test

PTP_VARIANTS = ["pt-ptp-rn-emb", "pt-ptp-adv-emb", "pt-ptp-rn-text", "pt-ptp-adv-text"]
ABLATIONS = ["pt-infoprompt-head", "pt-infoprompt-rep"]


def run(setting: str, task: str, method: str, seed: int, score: float, **extra) -> dict:
    base, _, objective = method.partition("-")
    objective = objective or "ce"
    family = (
        "ptp" if objective.startswith("ptp") else "infoprompt" if objective.startswith("infoprompt") else "ce"
    )
    row = dict.fromkeys(RUN_COLUMNS, "")
    row.update(
        setting=setting,
        task=task,
        method=method,
        base=base,
        objective=objective,
        family=family,
        ablation_of="infoprompt" if objective in ("infoprompt-head", "infoprompt-rep") else "",
        variant="",
        prompt_init="random",
        seed=seed,
        backbone="minilm",
        status="ok",
        converged=True,
        learned=True,
        report_score=score,
        select_score=score,
        learning_area=30.0,
        report_examples=56,
        sharpness=math.nan,
    )
    return {**row, **extra}


def table(
    shifts: dict[str, float], seeds: int, rng: np.random.Generator, sd: float = 3.0, **extra
) -> list[dict]:
    """Every method's score = a per-seed level + its shift + noise (sd); ``extra`` sets columns per method."""
    rows = []
    setting = "fewshot-256" if any("infoprompt" in m for m in shifts) else "fewglue"
    for seed in range(1, seeds + 1):
        level = 60 + rng.normal(0, 2)
        for method, shift in shifts.items():
            rows.append(
                run(setting, "CB", method, seed, level + shift + rng.normal(0, sd), **extra.get(method, {}))
            )
    return rows


def by_id(rows) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(row.id, []).append(row)
    return out


def verdicts(frame: pd.DataFrame, claim: str) -> list:
    return by_id(claim_rows(frame, None))[claim]


def test_ptp_gain_uses_the_best_variant_by_selection_score_at_alpha_over_k() -> None:
    rng = np.random.default_rng(0)
    rows = table({"pt": 0.0, **dict.fromkeys(PTP_VARIANTS, 0.0)}, 10, rng, sd=0.5)
    for row in rows:
        if row["method"] == "pt-ptp-rn-text":
            row["report_score"] += 5.0
            row["select_score"] += 5.0
    (ptp2,) = verdicts(pd.DataFrame(rows), "PTP-2")
    assert "best variant pt-ptp-rn-text of 4 (α/4)" in ptp2.scope and "minilm" in ptp2.scope
    assert ptp2.alpha == pytest.approx(ALPHA / 4) and ptp2.paper_number == "+2.34"
    assert ptp2.verdict == "reproduced" and ptp2.estimate == pytest.approx(5.0, abs=0.6)
    (ptp1,) = verdicts(pd.DataFrame(rows), "PTP-1")
    assert ptp1.verdict == "inconclusive" and ptp1.measured.startswith("not measured")


def test_a_gain_well_below_the_papers_number_is_smaller_than_claimed() -> None:
    rng = np.random.default_rng(1)
    rows = table({"pt": 0.0, **{v: 0.4 for v in PTP_VARIANTS}}, GUARD_RUNS, rng, sd=0.3)
    (ptp2,) = verdicts(pd.DataFrame(rows), "PTP-2")
    assert ptp2.high < 2.34 and ptp2.verdict == "smaller than claimed"
    assert "excludes the paper's +2.34" in ptp2.reason
    assert "its average over its own tasks and backbone, measured here on CB with minilm" in ptp2.scope


def test_the_papers_number_applies_only_to_the_base_it_used() -> None:
    rng = np.random.default_rng(1)
    rows = table({"pt2": 0.0, **{v.replace("pt-", "pt2-"): 0.4 for v in PTP_VARIANTS}}, 10, rng, sd=0.3)
    (ptp2,) = verdicts(pd.DataFrame(rows), "PTP-2")
    assert ptp2.paper_number == "—" and ptp2.verdict == "reproduced", "+2.34 is a gain over P-tuning (pt)"


def test_the_report_split_cannot_pick_the_best_variant() -> None:
    rng = np.random.default_rng(2)
    rows = table({"pt": 0.0, **dict.fromkeys(PTP_VARIANTS, 0.0)}, 5, rng)
    for row in rows:  # adv-text looks best on the selection split, rn-emb on the report split
        if row["method"] == "pt-ptp-adv-text":
            row["select_score"] += 10
        if row["method"] == "pt-ptp-rn-emb":
            row["report_score"] += 10
    (ptp2,) = verdicts(pd.DataFrame(rows), "PTP-2")
    assert "best variant pt-ptp-adv-text" in ptp2.scope


def test_a_variant_clearly_worse_contradicts_ptp5_and_all_four_must_hold() -> None:
    rng = np.random.default_rng(3)
    worse = {"pt": 0.0, **{v: 3.0 for v in PTP_VARIANTS}, "pt-ptp-adv-emb": -3.0}
    (ptp5,) = verdicts(pd.DataFrame(table(worse, GUARD_RUNS, rng, sd=0.5)), "PTP-5")
    assert ptp5.verdict == "contradicted" and "adv-emb: -" in ptp5.measured
    assert ptp5.reason.startswith("ptp-adv-emb significant the other way: Holm-adjusted p = ")
    three = {"pt": 0.0, **{v: 3.0 for v in PTP_VARIANTS}, "pt-ptp-adv-emb": 0.0}
    (ptp5,) = verdicts(pd.DataFrame(table(three, 10, np.random.default_rng(3), sd=0.5)), "PTP-5")
    assert ptp5.verdict == "inconclusive", "three of four variants helping is not 'both RN and ADV help'"


def test_collapsed_runs_count_in_stability_and_failed_runs_are_left_out() -> None:
    rng = np.random.default_rng(4)
    rows = table({"pt": 0.0, **dict.fromkeys(PTP_VARIANTS, 0.0)}, 10, rng, sd=0.3)
    for row in rows:
        if row["method"] == "pt" and row["seed"] in (2, 5, 8):
            row.update(status="collapsed", report_score=30.2, learned=False)
        if row["method"] == "pt-ptp-adv-text" and row["seed"] == 9:
            row.update(status="failed", report_score=math.nan, select_score=math.nan)
    frame = pd.DataFrame(rows)
    (ptp3,) = verdicts(frame, "PTP-3")
    assert ptp3.n.endswith("20 runs"), "the base's 3 collapsed runs are in its 10"
    assert ptp3.estimate < 0.5, "the collapses make the base's spread far larger"
    (ptp2,) = verdicts(frame, "PTP-2")
    if "adv-text" in ptp2.scope:
        assert ptp2.n.startswith("9 seeds")


def test_three_seeds_never_decide_stability() -> None:
    rng = np.random.default_rng(5)
    rows = table({"pt": 0.0, **dict.fromkeys(PTP_VARIANTS, 0.0)}, 3, rng)
    (ptp3,) = verdicts(pd.DataFrame(rows), "PTP-3")
    assert ptp3.verdict == "inconclusive" and ptp3.reason.startswith("too few seeds")
    assert ptp3.detectable.startswith("none"), "one seed pair is no test"


def test_a_claim_on_unconverged_runs_is_inconclusive_never_contradicted() -> None:
    rng = np.random.default_rng(6)
    rows = table({"pt": 0.0, "pt-infoprompt": -5.0, **dict.fromkeys(ABLATIONS, 0.0)}, GUARD_RUNS, rng, sd=0.5)
    (ip1,) = verdicts(pd.DataFrame(rows), "IP-1")
    assert ip1.verdict == "contradicted" and ip1.reason.startswith("significant the other way: p = ")
    assert rows[1]["method"] == "pt-infoprompt"
    rows[1]["converged"] = False
    (ip1,) = verdicts(pd.DataFrame(rows), "IP-1")
    assert ip1.verdict == "inconclusive" and ip1.reason == f"not converged: 1 of {2 * GUARD_RUNS} runs"


def test_infoprompt_gain_speed_and_ablations() -> None:
    rng = np.random.default_rng(7)
    shifts = {"pt": 0.0, "pt-infoprompt": 4.0, **dict.fromkeys(ABLATIONS, 0.0)}
    faster = {"pt-infoprompt": {"learning_area": 40.0}, "pt": {"learning_area": 10.0}}
    rows = table(shifts, GUARD_RUNS, rng, sd=0.5, **faster)
    for row in rows:
        row["learning_area"] += rng.normal(0, 2)
    claims = by_id(claim_rows(pd.DataFrame(rows), None))
    assert claims["IP-1"][0].verdict == "reproduced" and claims["IP-1"][0].estimate == pytest.approx(
        4, abs=0.5
    )
    assert claims["IP-2"][0].verdict == "reproduced" and claims["IP-2"][0].estimate == pytest.approx(
        30, abs=2
    )
    assert claims["IP-4"][0].verdict == "reproduced"
    assert claims["IP-3"][0].verdict == "inconclusive" and claims["IP-3"][0].reason == "not measured"


def test_runs_that_did_not_learn_are_counted_in_ip2() -> None:
    rng = np.random.default_rng(8)
    flat = {"pt": {"learned": False, "learning_area": 0.0}}
    rows = table({"pt": 0.0, "pt-infoprompt": 0.0, **dict.fromkeys(ABLATIONS, 0.0)}, 5, rng, **flat)
    (ip2,) = verdicts(pd.DataFrame(rows), "IP-2")
    assert "did not learn: 5 of 10 runs" in ip2.measured


def test_arms_come_from_the_objectives_declarations_not_their_names() -> None:
    rng = np.random.default_rng(9)
    rows = table({"pt": 0.0, **dict.fromkeys(PTP_VARIANTS, 0.0), "pt-ptp-mine": 20.0}, 5, rng)
    for row in rows:
        if row["method"] == "pt-ptp-mine":
            row.update(family="mine", select_score=row["select_score"] + 50)
    (ptp2,) = verdicts(pd.DataFrame(rows), "PTP-2")
    assert "ptp-mine" not in ptp2.scope and "of 4" in ptp2.scope, "a name starting ptp- does not join PTP"
    for row in rows:
        if row["method"] == "pt-ptp-mine":
            row["family"] = "ptp"
    (ptp2,) = verdicts(pd.DataFrame(rows), "PTP-2")
    assert "best variant pt-ptp-mine of 5 (α/5)" in ptp2.scope


def test_init_robustness_uses_the_spread_across_inits_per_seed() -> None:
    rng = np.random.default_rng(10)
    rows = table({"pt": 0.0, "pt-infoprompt": 0.0, **dict.fromkeys(ABLATIONS, 0.0)}, 10, rng, sd=0.2)
    for seed in range(1, 11):
        for init, offset in (("vocab", 6.0), ("text", -6.0)):
            rows.append(
                run("fewshot-256", "CB", "pt", seed, 60 + offset, variant=f"init-{init}", prompt_init=init)
            )
            rows.append(
                run(
                    "fewshot-256",
                    "CB",
                    "pt-infoprompt",
                    seed,
                    60 + rng.normal(0, 0.2),
                    variant=f"init-{init}",
                    prompt_init=init,
                )
            )
    frame = pd.DataFrame(rows)
    spread = init_spread(Runs(frame), "fewshot-256", "pt")
    main = {r["seed"]: r["report_score"] for r in rows if r["method"] == "pt" and not r["variant"]}
    assert spread["CB"][1] == pytest.approx(np.std([main[1], 66.0, 54.0], ddof=1))
    (ip3,) = by_id(claim_rows(frame, None))["IP-3"]
    assert ip3.verdict == "reproduced" and "inits random, text, vocab" in ip3.scope


def mi(checks: int, controls_caught: int, skipped: bool = False, failing: int = 0) -> dict:
    common = {"steps": 60, "measured": 0.1, "threshold": 0.5}
    entries = [{"name": f"c{i}", "role": "check", "passed": i >= failing, **common} for i in range(checks)]
    entries += [
        {"name": f"k{i}", "role": "control", "passed": i >= controls_caught, **common} for i in range(3)
    ]
    return {
        "checks": entries,
        "real": {"skipped": "no data"} if skipped else {"settings": {"backbone": "minilm"}},
    }


@pytest.mark.parametrize(
    ("result", "verdict", "reason"),
    [
        (mi(5, 3), "reproduced", "every check passed and every negative control failed"),
        (
            mi(5, 2),
            "inconclusive",
            "a negative control passed, so the checks cannot tell a broken loss: k2 after 60 steps "
            "(measured 0.1, threshold 0.5)",
        ),
        (mi(5, 3, skipped=True), "inconclusive", "part skipped: real"),
        (
            mi(5, 3, failing=1),
            "contradicted",
            "1 check(s) failed while every control behaved; first: c0 after 60 steps (measured 0.1, "
            "threshold 0.5)",
        ),
    ],
)
def test_ip5_needs_every_check_and_every_control(result: dict, verdict: str, reason: str) -> None:
    rows = table({"pt": 0.0}, 3, np.random.default_rng(0))
    (ip5,) = by_id(claim_rows(pd.DataFrame(rows), result))["IP-5"]
    assert (ip5.verdict, ip5.reason) == (verdict, reason)


# --- every verdict rule under a null and under a shift, at the seed counts the profiles use -----------

FULL_GRID = {"pt": 0.0, **dict.fromkeys(PTP_VARIANTS, 0.0)}
IP_GRID = {"pt": 0.0, "pt-infoprompt": 0.0, **dict.fromkeys(ABLATIONS, 0.0)}


def simulated(seeds: int, rng: np.random.Generator, shift: bool) -> pd.DataFrame:
    """A PTP scope and an InfoPrompt scope with init variants. Null: every method the same. ``shift``:
    every claim's effect, large — PTP +6 points with 1/60 of the spread (the seed-pair test at α/4 needs
    that at 10 seeds) and a fifth of the sharpness,
    InfoPrompt +6 points over its base and its ablations, twice the learning-curve area, a tenth of the
    spread across inits."""
    rows = []
    for seed in range(1, seeds + 1):
        level = 60 + rng.normal(0, 2)
        for method in ["pt", *PTP_VARIANTS]:
            ptp = method != "pt" and shift
            score = 60 + (6 if ptp else 0) + rng.normal(0, 0.05 if ptp else 3)
            sharp = (0.02 if ptp else 0.1) + rng.normal(0, 0.02)
            rows.append(run("fewglue", "CB", method, seed, score, sharpness=sharp))
        for method in ["pt", "pt-infoprompt", *ABLATIONS]:
            full = method == "pt-infoprompt" and shift
            gain, sd, area = (6, 0.3, 40) if full else (0, 3, 20)
            for variant, init in (("", "random"), ("init-vocab", "vocab"), ("init-text", "text")):
                if variant and method in ABLATIONS:
                    continue
                rows.append(
                    run(
                        "fewshot-256",
                        "SST-2",
                        method,
                        seed,
                        level + gain + rng.normal(0, sd),
                        variant=variant,
                        prompt_init=init,
                        learning_area=area + rng.normal(0, 3),
                    )
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_every_verdict_rule_keeps_its_error_rate_under_the_null(seeds: int) -> None:
    rng = np.random.default_rng(seeds)
    reps = 150
    wrong: dict[str, int] = {}
    for _ in range(reps):
        for row in claim_rows(simulated(seeds, rng, shift=False), None, power=False):
            if row.verdict in ("reproduced", "contradicted"):
                wrong[row.id] = wrong.get(row.id, 0) + 1
    bound = 2 * ALPHA + 3 * math.sqrt(2 * ALPHA / reps)  # both sides, plus three Monte Carlo errors
    assert all(count / reps <= bound for count in wrong.values()), wrong


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_every_verdict_rule_detects_a_large_shift_given_enough_seeds(seeds: int) -> None:
    rng = np.random.default_rng(100 + seeds)
    reps = 60
    hits: dict[str, int] = {}
    for _ in range(reps):
        for row in claim_rows(simulated(seeds, rng, shift=True), None, power=False):
            hits[row.id] = hits.get(row.id, 0) + (row.verdict in ("reproduced", "smaller than claimed"))
            assert row.verdict != "contradicted", row
    if seeds == 10:  # every rule decides a large effect at 10 seeds
        assert all(
            hits[c] / reps >= 0.7
            for c in ("PTP-2", "PTP-3", "PTP-4", "PTP-5", "IP-1", "IP-2", "IP-3", "IP-4")
        ), hits
    if seeds == 3:  # three seeds give the stability test nothing to test
        assert hits["PTP-3"] == 0


WALL = {"pt": 20.0, "pt-ptp-rn-emb": 35.0, "pt-ptp-adv-emb": 70.0, "pt-ptp-rn-text": 30.0,
        "pt-ptp-adv-text": 55.0}  # seconds per seed of each arm  # fmt: skip


def test_seeds_needed_come_with_their_training_time_at_the_grids_cost() -> None:
    """PTP-2's next seed costs one run of every variant (the best is picked among them) and of the base."""
    from prompttune.claims import _duration

    shifts = {"pt": 0.0, **dict.fromkeys(PTP_VARIANTS, 1.0)}
    rows = table(shifts, 6, np.random.default_rng(5), **{m: {"wall_time_s": w} for m, w in WALL.items()})
    row = verdicts(pd.DataFrame(rows), "PTP-2")[0]
    assert row.seconds_per_seed == 210.0
    n = int(row.seeds_needed_observed)
    assert re.match(
        rf"{n} \(\d+–\d+\) \(≈ {_duration(210.0 * n)}\) for the observed effect; ", row.seeds_needed
    )
    assert (_duration(2908), _duration(9139), _duration(20)) == ("48 min", "2.5 h", "1 min")
    no_times = verdicts(pd.DataFrame(table(shifts, 6, np.random.default_rng(5))), "PTP-2")[0]
    assert math.isnan(no_times.seconds_per_seed) and "≈" not in no_times.seeds_needed
    # The figure is the correctly rounded total, whatever order the runs come in: times whose float sum
    # depends on its order (0.1 + 0.2 + 0.3 ≠ 0.3 + 0.2 + 0.1) give one value for every order.
    timed = pd.DataFrame(rows)
    timed["wall_time_s"] = [(0.1, 0.2, 0.3, 1e-3)[i % 4] for i in range(len(timed))]
    orders = [timed.sample(frac=1.0, random_state=k) for k in range(8)]
    assert len({sum(order["wall_time_s"]) for order in orders}) > 1, "the orders must round differently"
    (figure,) = {verdicts(order, "PTP-2")[0].seconds_per_seed for order in orders}
    assert figure == pytest.approx(math.fsum(timed["wall_time_s"]) / 6, rel=1e-12)


def test_under_the_adaptive_design_seeds_needed_add_the_pick_and_its_time() -> None:
    """After the pick only the best variant and the base train on: one more tested seed costs those two,
    and the seeds needed name the 2 seeds that picked it (of every variant and the base) and count their
    time, each arm's at its own cost per seed though the variants left behind have fewer seeds."""
    from prompttune.claims import _duration
    from prompttune.schema import PICK_SEEDS

    shifts = {"pt": 0.0, **dict.fromkeys(PTP_VARIANTS, 2.0)}
    rows = table(shifts, 6, np.random.default_rng(6), **{m: {"wall_time_s": w} for m, w in WALL.items()})
    ptp2 = by_id(claim_rows(pd.DataFrame(rows), None, design=Design((4,))))["PTP-2"][0]
    best = re.search(r"best variant (\S+) of 4, picked", ptp2.scope)[1]
    runs = pd.DataFrame(rows)
    left_behind = runs["method"].isin(set(PTP_VARIANTS) - {best}) & (runs["seed"] > 4)
    row = by_id(claim_rows(runs[~left_behind], None, design=Design((4,))))["PTP-2"][0]
    assert best in row.scope and (row.n_seeds, PICK_SEEDS) == (4, 2)
    assert row.seconds_per_seed == WALL[best] + WALL["pt"]
    n = int(row.seeds_needed_observed)
    time = _duration(n * row.seconds_per_seed + 2 * 210.0)
    assert re.match(rf"{n} \(\d+–\d+\) \+ 2 that pick the variant \(≈ {time}\) for the observed effect; ",
                    row.seeds_needed), row.seeds_needed  # fmt: skip
    assert re.search(
        r"; \d+ \(\d+–\d+\) \+ 2 that pick the variant \(≈ [^)]+\) for 2\.34 \(paper\)", row.seeds_needed
    )


def test_tied_differences_are_inconclusive_and_say_so() -> None:
    """Six equal differences once gave a decided verdict on a zero-width interval (p = 1/64)."""
    rows = [
        run("fewshot-256", "SST-2", method, seed, 60.0 + (1.8 if method == "pt-infoprompt" else 0.0))
        for seed in range(1, 7)
        for method in ("pt", "pt-infoprompt", *ABLATIONS)
    ]
    (ip1,) = verdicts(pd.DataFrame(rows), "IP-1")
    assert ip1.verdict == "inconclusive"
    assert ip1.reason == "tied: all 6 values equal +1.80, no spread to test"
    assert ip1.measured == "+1.80" and "[" not in ip1.measured, "no zero-width interval is printed"


def test_an_interval_is_never_narrower_than_the_means_resolution() -> None:
    rng = np.random.default_rng(11)
    rows = table({"pt": 0.0, "pt-infoprompt": 1.0, **dict.fromkeys(ABLATIONS, 0.0)}, 6, rng, sd=0.01)
    (ip1,) = verdicts(pd.DataFrame(rows), "IP-1")
    assert ip1.high - ip1.low == pytest.approx(100 / 56 / 6), "one of CB's 56 examples, over 6 seeds"


def test_ptp3s_test_column_is_the_function_it_names() -> None:
    assert describe(dispersion_test) in CLAIMS["PTP-3"].test
    assert "stats.dispersion_test" in CLAIMS["PTP-3"].test and "permutation" not in CLAIMS["PTP-3"].test


def test_the_collapse_guard_withholds_the_verdict_an_unseen_collapse_would_fake() -> None:
    """A treatment side with a collapsed run cannot be ``reproduced``; a base side too small to show a 15 %
    collapse rate cannot be beaten the other way (``contradicted``); both say why."""
    rng = np.random.default_rng(12)
    better = {"pt": 0.0, "pt-infoprompt": 4.0, **dict.fromkeys(ABLATIONS, 0.0)}
    rows = table(better, GUARD_RUNS, rng, sd=0.5)
    (ip1,) = verdicts(pd.DataFrame(rows), "IP-1")
    assert ip1.verdict == "reproduced"
    collapsed_treatment = next(r for r in rows if r["method"] == "pt-infoprompt")
    collapsed_treatment.update(status="collapsed")
    (ip1,) = verdicts(pd.DataFrame(rows), "IP-1")
    assert ip1.verdict == "inconclusive" and ip1.collapsed == 1
    assert ip1.reason.startswith(f"collapse guard: 1 of the treatment side's {GUARD_RUNS} runs collapsed")
    worse = table({"pt": 0.0, "pt-infoprompt": -4.0, **dict.fromkeys(ABLATIONS, 0.0)}, 10, rng, sd=0.5)
    (ip1,) = verdicts(pd.DataFrame(worse), "IP-1")
    assert ip1.verdict == "inconclusive"
    assert ip1.reason.startswith(
        f"collapse guard: the base side has 10 runs; {GUARD_RUNS} without a collapse"
    )
    assert "(the test alone: contradicted;" in ip1.reason


def test_claims_csv_carries_the_code_that_computed_it() -> None:
    rows = claim_rows(pd.DataFrame(table(FULL_GRID, 6, np.random.default_rng(13))), None)
    computed_by = {"git_revision": "abc123", "packages": {"scipy": "1.0", "statsmodels": "0.1"}}
    frame = claims_table(rows, computed_by)
    assert set(frame["git_revision"]) == {"abc123"}
    assert set(frame["packages"]) == {"scipy 1.0; statsmodels 0.1"}


def test_seeds_needed_are_for_the_whole_rule_and_never_for_the_wrong_direction() -> None:
    rng = np.random.default_rng(14)
    rows = table({"pt": 0.0, **{v: 3.0 for v in PTP_VARIANTS}}, 6, rng, sd=1.0)
    (ptp5,) = verdicts(pd.DataFrame(rows), "PTP-5")
    (ptp2,) = verdicts(pd.DataFrame(rows), "PTP-2")
    assert "power for the whole rule" in ptp5.seeds_needed
    assert re.match(r"\d+ \(\d+–(\d+|> 1000)\)", ptp5.seeds_needed), "a point and the spread's range"
    worse = table({"pt": 0.0, **{v: -3.0 for v in PTP_VARIANTS}}, 6, rng)
    (ptp2,) = verdicts(pd.DataFrame(worse), "PTP-2")
    assert ptp2.seeds_needed.startswith("— (PTP-2 observed the other way)")
    assert math.isnan(ptp2.seeds_needed_observed)


def test_every_declared_claim_gets_its_rows_or_a_not_measured_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """One loop over CLAIMS builds the table: a claim is declared with its measurement and what it needs,
    so a claim no scope measures still has its row, and no list elsewhere can drop one."""
    runs = simulated(3, np.random.default_rng(0), shift=False)
    extra = dataclasses.replace(
        CLAIMS["IP-5"], id="X-1", needs="a study no profile runs", measured_by=lambda claim, runs, mi: []
    )
    monkeypatch.setitem(CLAIMS, "X-1", extra)
    rows = claim_rows(runs, None, power=False)
    assert [row.id for row in rows] == [*dict.fromkeys(row.id for row in rows)] == list(CLAIMS)
    last = rows[-1]
    assert (last.id, last.reason, last.measured) == (
        "X-1",
        "not measured",
        "not measured: needs a study no profile runs",
    )
    ip5 = next(row for row in rows if row.id == "IP-5")
    assert ip5.measured == "not measured: needs the MI-convergence study (prompttune mi-check)"
