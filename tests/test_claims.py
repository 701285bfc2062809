"""Claim verdicts on hand-made run tables whose answers are known by construction."""

from __future__ import annotations

import pandas as pd
import pytest

from prompttune.claims import Runs, claim_rows, init_spread

SEEDS = [1, 2, 3, 4, 5]
BASE = {"CB": [50.0, 55.0, 60.0, 52.0, 58.0], "RTE": [48.0, 51.0, 47.0, 53.0, 50.0]}


def run(task: str, method: str, seed: int, score: float, **extra) -> dict:
    base, _, objective = method.partition("-")
    row = {
        "setting": "fewglue",
        "task": task,
        "method": method,
        "base": base,
        "objective": objective or "ce",
        "variant": "",
        "prompt_init": "random",
        "seed": seed,
        "status": "ok",
        "report_score": score,
        "select_score": score,
        "steps_to_90": 30.0,
        "sharpness": float("nan"),
        "backbone": "minilm",
    }
    return {**row, **extra}


def table(shifts: dict[str, float], seeds: list[int] = SEEDS, **extra) -> list[dict]:
    """Every method's score = the base's + its shift + a small seed-dependent wobble."""
    rows = []
    for task, scores in BASE.items():
        for method, shift in shifts.items():
            for seed in seeds:
                wobble = 0.01 * seed * (method != "pt")
                rows.append(
                    run(task, method, seed, scores[seed - 1] + shift + wobble, **extra.get(method, {}))
                )
    return rows


def by_id(rows) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(row.id, []).append(row)
    return out


PTP_SHIFTS = {
    "pt": 0.0,
    "pt-ptp-rn-emb": 2.0,
    "pt-ptp-adv-emb": -1.0,
    "pt-ptp-rn-text": 1.0,
    "pt-ptp-adv-text": 0.5,
}


def test_ptp_gain_is_measured_on_the_best_variant_by_selection_score() -> None:
    claims = by_id(claim_rows(pd.DataFrame(table(PTP_SHIFTS)), None))
    (ptp2,) = claims["PTP-2"]
    assert "best variant pt-ptp-rn-emb" in ptp2.scope and "minilm" in ptp2.scope
    assert ptp2.measured.startswith("+2.03 [")  # 2 + mean wobble 0.03
    assert ptp2.verdict == "reproduced" and ptp2.paper_number == "+2.34"
    (ptp1,) = claims["PTP-1"]
    assert ptp1.verdict == "inconclusive" and ptp1.measured.startswith("not measured")
    (ptp5,) = claims["PTP-5"]
    assert ptp5.verdict == "not reproduced", "adv-emb is worse than the base on every seed"
    assert "ptp-adv-emb: -0.97" in ptp5.measured


def test_the_report_split_cannot_pick_the_best_variant() -> None:
    rows = table(PTP_SHIFTS)
    for row in rows:  # adv-text looks best on the selection split, rn-emb on the report split
        if row["method"] == "pt-ptp-adv-text":
            row["select_score"] += 10
    (ptp2,) = by_id(claim_rows(pd.DataFrame(rows), None))["PTP-2"]
    assert "best variant pt-ptp-adv-text" in ptp2.scope and ptp2.measured.startswith("+0.53")


def test_too_few_seeds_is_inconclusive_never_a_verdict() -> None:
    claims = by_id(claim_rows(pd.DataFrame(table(PTP_SHIFTS, seeds=[1, 2])), None))
    assert {row.verdict for row in claims["PTP-2"] + claims["PTP-5"]} == {"inconclusive"}


def test_infoprompt_gain_speed_and_ablations() -> None:
    shifts = {"pt": 0.0, "pt-infoprompt": -3.0, "pt-infoprompt-head": -4.0, "pt-infoprompt-rep": -5.0}
    faster = {"pt-infoprompt": {"steps_to_90": 10.0}}
    claims = by_id(claim_rows(pd.DataFrame(table(shifts, **faster)), None))
    assert claims["IP-1"][0].verdict == "not reproduced" and claims["IP-1"][0].measured.startswith("-2.97")
    assert claims["IP-2"][0].verdict == "reproduced" and claims["IP-2"][0].measured.startswith("-20.0")
    assert claims["IP-4"][0].verdict == "reproduced"
    assert claims["IP-3"][0].verdict == "inconclusive", "no init variants in this grid"


def test_init_robustness_uses_the_spread_across_inits_per_seed() -> None:
    rows = table({"pt": 0.0, "pt-infoprompt": 0.0})
    for task, scores in BASE.items():
        for seed in SEEDS:
            for init, offset in (("vocab", 6.0), ("text", -6.0)):
                rows.append(
                    run(task, "pt", seed, scores[seed - 1] + offset, variant=f"init-{init}", prompt_init=init)
                )
                rows.append(
                    run(task, "pt-infoprompt", seed, scores[seed - 1] + 0.01 * seed * (init == "vocab"),
                        variant=f"init-{init}", prompt_init=init)
                )  # fmt: skip
    runs = pd.DataFrame(rows)
    spread = init_spread(Runs(runs), "fewglue", "pt")
    assert spread["CB"][1] == pytest.approx(6.0)  # std of (x, x + 6, x − 6)
    (ip3,) = by_id(claim_rows(runs, None))["IP-3"]
    assert ip3.verdict == "reproduced" and ip3.measured.startswith("-5.9")


def test_failed_runs_are_left_out_of_the_pairs() -> None:
    rows = table(PTP_SHIFTS)
    for row in rows:
        if row["method"].startswith("pt-ptp") and row["seed"] >= 3:
            row["status"] = "failed"
    (ptp2,) = by_id(claim_rows(pd.DataFrame(rows), None))["PTP-2"]
    assert "best variant pt-ptp-rn-emb" in ptp2.scope
    assert ptp2.n == "4 pairs over 2 task(s)" and ptp2.verdict == "inconclusive"


@pytest.mark.parametrize(("flip", "expected"), [(False, "reproduced"), (True, "not reproduced")])
def test_mi_checks_give_ip5(flip: bool, expected: str) -> None:
    checks = [{"name": "eta=1/L monotone", "passed": True, "expected": True},
              {"name": "eta=2.5/L converges", "passed": flip, "expected": False}]  # fmt: skip
    mi = {"checks": checks, "real": {"settings": {"backbone": "minilm"}}}
    (ip5,) = by_id(claim_rows(pd.DataFrame(table({"pt": 0.0})), mi))["IP-5"]
    assert ip5.verdict == expected and ip5.n == "2"
