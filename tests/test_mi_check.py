"""The IP-5 verification: checkers that can fail, L̂ against the exact Hessian, the project's own losses
against independent minimisers, negative controls that fail, and a project whose loss is broken (a
sign-flipped critic, a wrong positive index) does not get `reproduced`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from prompttune.claims import claim_rows
from prompttune.data import fetch
from prompttune.mi_check import (
    check_bounds_rise,
    check_converges,
    check_grad_decay,
    check_linear_rate,
    check_monotone,
    fit_rate,
    head_problem,
    power_iteration,
    rep_problem,
    verify,
)
from prompttune.objectives import infoprompt
from prompttune.results import RUN_COLUMNS
from prompttune.splits import required_files

GOOD = [2.0 + 0.5**k for k in range(40)]  # f* = 2, rate 0.5
GOOD_GRADS = [0.5**k for k in range(40)]
DIVERGING = [2.0 + 1.5**k for k in range(40)]
OSCILLATING = [2.0 + (1.0 if k % 2 else 0.5) for k in range(40)]  # a 2-cycle that never settles


def test_checkers_pass_a_good_trajectory_and_fail_a_diverging_one() -> None:
    assert check_monotone("m", GOOD, 1e-12)["passed"]
    assert check_grad_decay("g", GOOD_GRADS, 1e-6, "initial")["passed"]
    assert check_linear_rate("r", GOOD, 2.0, bound=0.6)["passed"]
    assert check_converges("c", GOOD, GOOD_GRADS, 1e-12, 1e-6, "check")["passed"]

    diverging_grads = [1.5**k for k in range(40)]
    assert not check_monotone("m", DIVERGING, 1e-12)["passed"]
    assert not check_grad_decay("g", diverging_grads, 1e-6, "initial")["passed"]
    assert not check_grad_decay("g", diverging_grads, 0.1, "peak")["passed"]
    assert not check_linear_rate("r", DIVERGING, 2.0, bound=0.99)["passed"]
    assert not check_converges("c", DIVERGING, diverging_grads, 1e-12, 1e-6, "control")["passed"]
    assert not check_converges("c", OSCILLATING, [1.0] * 40, 1e-12, 1e-6, "control")["passed"]
    blown_up = [1.0, 2.0, math.inf, math.nan]
    assert not check_monotone("m", blown_up, 1e-12)["passed"]
    assert not check_grad_decay("g", blown_up, 1e-6, "initial")["passed"]


def test_rate_fit_and_its_bound_are_sharp() -> None:
    rate, points = fit_rate([0.5**k for k in range(40)], floor=1e-11)
    assert rate == pytest.approx(0.5, rel=1e-9) and points == 19  # 37 gaps above 1e-11 (k ≤ 36): the last 19
    assert fit_rate([0.1**k for k in range(5)], floor=1e-11)[1] == 3, "a fast run: the last 3 points"
    assert check_linear_rate("r", GOOD, 2.0, bound=0.5 + 1e-9)["passed"]
    assert not check_linear_rate("r", GOOD, 2.0, bound=0.49)["passed"]
    too_short = [2.0 + 0.5**k for k in range(2)]
    assert not check_linear_rate("r", too_short, 2.0, bound=0.9)["passed"]  # no measurable tail
    back_above = [2.0 + 0.5**k for k in range(40)] + [3.0]  # left the floor, then came back
    assert not check_linear_rate("r", back_above, 2.0, bound=0.9)["passed"]


def test_peak_reference_and_held_out_bounds() -> None:
    plateau_then_decay = [0.01, 0.5, 2.0, 0.5, 0.1]  # starts on a plateau, rises, decays
    assert check_grad_decay("g", plateau_then_decay, 0.1, "peak")["passed"]
    assert not check_grad_decay("g", plateau_then_decay, 0.1, "initial")["passed"]
    assert check_bounds_rise("b", {"mi_head": 0.0, "mi_rep": 1.0}, {"mi_head": 0.2, "mi_rep": 3.0})["passed"]
    assert not check_bounds_rise("b", {"mi_head": 0.0, "mi_rep": 1.0}, {"mi_head": 0.2, "mi_rep": 0.5})[
        "passed"
    ]


def test_power_iteration_matches_the_exact_hessian() -> None:
    problem = head_problem(d=6, negatives=5, seed=3)
    x = torch.randn(24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    exact = torch.linalg.eigvalsh(torch.autograd.functional.hessian(problem.f, x))[-1].item()
    point = x.clone().requires_grad_(True)
    generator = torch.Generator().manual_seed(0)
    estimate = power_iteration(lambda: problem.f(point), [point], iters=2000, rtol=1e-12, generator=generator)
    assert exact * 0.99 <= estimate <= exact * (1 + 1e-9)


def test_the_independent_minimisers_are_the_project_losses_minimisers() -> None:
    for problem in (head_problem(d=8, negatives=4, seed=0), rep_problem(d=6, examples=4, seed=2)):
        x_star = torch.from_numpy(problem.reduced_optimum().ravel().copy()).requires_grad_(True)
        (grad,) = torch.autograd.grad(problem.f(x_star), x_star)
        assert grad.norm().item() < 1e-10, f"{problem.name}: the project's gradient vanishes at x*"


def roles(result: dict) -> tuple[list[dict], list[dict]]:
    checks = [c for c in result["checks"] if c["role"] == "check"]
    return checks, [c for c in result["checks"] if c["role"] == "control"]


SYNTHETIC_SPEC = {"cell": "fewglue.CB", "backbone": "minilm", "seeds": [1], "steps": 4, "quick": True}


def test_synthetic_checks_pass_and_every_control_fails(tmp_path: Path) -> None:
    result = verify(tmp_path, None, SYNTHETIC_SPEC)
    checks, controls = roles(result)
    assert all(c["passed"] for c in checks), [c["name"] for c in checks if not c["passed"]]
    assert controls and not any(c["passed"] for c in controls)
    names = {c["name"] for c in result["checks"]}
    for problem in ("head.d8.neg4", "rep.d6.n4"):
        for factor in ("0.5", "1", "1.9"):
            for kind in ("monotone", "grad_to_zero", "linear_rate", "reaches_optimum"):
                assert f"synthetic.{problem}.eta{factor}.{kind}" in names
        for control in (
            "eta2.5.converges",
            "sign_flipped_critic.reaches_optimum",
            "wrong_positive_index.reaches_optimum",
        ):
            assert f"synthetic.{problem}.{control}" in names
    assert result["real"] == {"skipped": "no data given (--synthetic-only)"}
    assert json.loads((tmp_path / "checks.json").read_text()) == result
    assert (tmp_path / "synthetic.png").stat().st_size > 0 and not (tmp_path / "real.png").exists()


def ip5(result: dict) -> str:
    (row,) = [r for r in claim_rows(pd.DataFrame(columns=RUN_COLUMNS), result) if r.id == "IP-5"]
    return row.verdict


def test_a_sign_flipped_critic_in_the_project_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = infoprompt.critic
    monkeypatch.setattr(infoprompt, "critic", lambda a, b: -original(a, b))
    result = verify(tmp_path, None, SYNTHETIC_SPEC)
    checks, _ = roles(result)
    assert not all(c["passed"] for c in checks if c["name"].endswith(".reaches_optimum"))
    result["real"] = {"settings": {"backbone": "minilm"}}  # as if the real part had run too
    assert ip5(result) != "reproduced"


def test_a_wrong_positive_index_in_the_project_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = infoprompt.info_nce

    def shifted(positive, negatives, mask=None, contrast=infoprompt.PAPER):
        return original(positive, negatives, mask, infoprompt.Contrast(contrast.sign, 1 - contrast.positive))

    monkeypatch.setattr(infoprompt, "info_nce", shifted)
    result = verify(tmp_path, None, SYNTHETIC_SPEC)
    result["real"] = {"settings": {"backbone": "minilm"}}
    assert ip5(result) != "reproduced"


def test_an_untouched_project_reproduces_ip5_only_with_the_real_part(tmp_path: Path) -> None:
    result = verify(tmp_path, None, SYNTHETIC_SPEC)
    assert ip5(result) == "inconclusive", "a skipped part is never a reproduction"
    result["real"] = {"settings": {"backbone": "minilm"}}
    assert ip5(result) == "reproduced"


def test_quick_real_verify_checks_held_out_bounds_and_its_controls_fail(
    tiny_backbone: str, mirror: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    fetch(required_files("fewglue", "CB"), data, mirror=mirror)
    spec = {"cell": "fewglue.CB", "backbone": tiny_backbone, "seeds": [1, 2], "steps": 40, "quick": True}
    result = verify(tmp_path / "out", data, spec)
    written = json.loads((tmp_path / "out" / "checks.json").read_text())
    assert written == result
    real = [c for c in written["checks"] if c["name"].startswith("real.")]
    names = {c["name"] for c in real}
    for seed in (1, 2):
        assert {
            f"real.seed{seed}.{kind}" for kind in ("monotone", "grad_decay", "heldout_bounds_rise")
        } <= names
    checks = [c for c in real if c["role"] == "check"]
    controls = [c for c in real if c["role"] == "control"]
    assert all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
    assert {c["name"] for c in controls} == {
        f"real.{k}.heldout_bounds_rise" for k in ("sign_flipped_critic", "wrong_positive_index")
    }
    assert not any(c["passed"] for c in controls), controls
    for check in written["checks"]:
        assert set(check) == {"name", "role", "passed", "measured", "threshold"}
    runs = written["real"]["runs"]
    assert [(run["seed"], run["contrast"]) for run in runs] == [
        (1, "paper"),
        (2, "paper"),
        (1, "sign_flipped_critic"),
        (1, "wrong_positive_index"),
    ]
    assert all(len(run["loss"]) == 40 and run["eta"] * run["l_hat"] == pytest.approx(1.0) for run in runs)
    assert written["real"]["settings"]["n_train"] == 8 and written["real"]["settings"]["n_heldout"] == 8
    assert (tmp_path / "out" / "real.png").stat().st_size > 0


def test_mi_check_command_writes_checks_and_reports_them(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from prompttune.cli import app

    config = tmp_path / "mi_check.json"
    config.write_text(json.dumps(SYNTHETIC_SPEC))
    out = tmp_path / "mi"
    result = CliRunner().invoke(
        app, ["mi-check", "--config", str(config), "--synthetic-only", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    checks, controls = roles(json.loads((out / "checks.json").read_text()))
    n, k = len(checks), len(controls)
    assert f"{n} of {n} checks passed, {k} of {k} negative controls failed" in result.output
