"""The IP-5 verification: checkers that can fail, L̂ against the exact Hessian, synthetic and real runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from prompttune.data import fetch
from prompttune.mi_check import (
    check_converges,
    check_grad_decay,
    check_linear_rate,
    check_mi_rises,
    check_monotone,
    fit_rate,
    make_problem,
    power_iteration,
    verify,
)
from prompttune.splits import required_files

GOOD = [2.0 + 0.5**k for k in range(40)]  # f* = 2, rate 0.5
GOOD_GRADS = [0.5**k for k in range(40)]
DIVERGING = [2.0 + 1.5**k for k in range(40)]
OSCILLATING = [2.0 + (1.0 if k % 2 else 0.5) for k in range(40)]  # a 2-cycle that never settles


def test_checkers_pass_a_good_trajectory_and_fail_a_diverging_one() -> None:
    assert check_monotone("m", GOOD, 1e-12)["passed"]
    assert check_grad_decay("g", GOOD_GRADS, 1e-6, "initial")["passed"]
    assert check_linear_rate("r", GOOD, 2.0, bound=0.6)["passed"]
    assert check_converges("c", GOOD, GOOD_GRADS, 1e-12, 1e-6)["passed"]

    diverging_grads = [1.5**k for k in range(40)]
    assert not check_monotone("m", DIVERGING, 1e-12)["passed"]
    assert not check_grad_decay("g", diverging_grads, 1e-6, "initial")["passed"]
    assert not check_grad_decay("g", diverging_grads, 0.1, "peak")["passed"]
    assert not check_linear_rate("r", DIVERGING, 2.0, bound=0.99)["passed"]
    assert not check_converges("c", DIVERGING, diverging_grads, 1e-12, 1e-6)["passed"]
    assert not check_converges("c", OSCILLATING, [1.0] * 40, 1e-12, 1e-6)["passed"]
    blown_up = [1.0, 2.0, math.inf, math.nan]
    assert not check_monotone("m", blown_up, 1e-12)["passed"]
    assert not check_grad_decay("g", blown_up, 1e-6, "initial")["passed"]


def test_rate_fit_and_its_bound_are_sharp() -> None:
    rate, points = fit_rate([0.5**k for k in range(40)], floor=1e-11)
    assert rate == pytest.approx(0.5, rel=1e-9) and points == 19  # 37 gaps above 1e-11 (k ≤ 36): the last 19
    assert check_linear_rate("r", GOOD, 2.0, bound=0.5 + 1e-9)["passed"]
    assert not check_linear_rate("r", GOOD, 2.0, bound=0.49)["passed"]
    too_short = [2.0 + 0.5**k for k in range(5)]
    assert not check_linear_rate("r", too_short, 2.0, bound=0.9)["passed"]  # no measurable tail


def test_peak_reference_and_mi_rise() -> None:
    plateau_then_decay = [0.01, 0.5, 2.0, 0.5, 0.1]  # starts on a plateau, rises, decays
    assert check_grad_decay("g", plateau_then_decay, 0.1, "peak")["passed"]
    assert not check_grad_decay("g", plateau_then_decay, 0.1, "initial")["passed"]
    assert check_mi_rises("mi", [0.0, 0.1, 0.2], [1.0, 2.0, 3.0])["passed"]
    assert not check_mi_rises("mi", [0.0, 0.1, 0.2], [1.0, 2.0, 0.5])["passed"]


def test_power_iteration_matches_the_exact_hessian() -> None:
    problem = make_problem(d=6, n=5, seed=3)
    x = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    exact_hessian = torch.autograd.functional.hessian(problem.f, x)
    torch.testing.assert_close(problem.hessian(x), exact_hessian)  # closed form used on the runs' paths
    exact = torch.linalg.eigvalsh(exact_hessian)[-1].item()
    point = x.clone().requires_grad_(True)
    generator = torch.Generator().manual_seed(0)
    estimate = power_iteration(lambda: problem.f(point), [point], iters=2000, rtol=1e-12, generator=generator)
    assert exact * 0.99 <= estimate <= exact * (1 + 1e-9)
    assert estimate == pytest.approx(exact, rel=1e-6)


def test_synthetic_verify_passes_below_two_over_L_and_flags_2_5(tmp_path: Path) -> None:
    result = verify(tmp_path, None, quick=True)
    assert result["passed"] and result["real"] == {"skipped": "no data_root given"}
    checks = {c["name"]: c for c in result["checks"]}
    for factor in ("0.5", "1", "1.9"):
        for kind in ("monotone", "grad_to_zero", "linear_rate"):
            check = checks[f"synthetic.d8.n4.eta{factor}.{kind}"]
            assert check["passed"] and check["expected"], check
    control = checks["synthetic.d8.n4.eta2.5.converges"]
    assert control["passed"] is False and control["expected"] is False
    assert checks["synthetic.d8.n4.L_hat"]["measured"]["relative_error"] <= 0.01
    assert checks["synthetic.d8.n4.smoothness_on_path"]["passed"]
    assert json.loads((tmp_path / "checks.json").read_text()) == result
    assert (tmp_path / "synthetic.png").stat().st_size > 0 and not (tmp_path / "real.png").exists()


def test_quick_real_verify_writes_every_named_check(tiny_backbone: str, mirror: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    fetch(required_files("fewglue", "CB"), data, mirror=mirror)
    result = verify(tmp_path / "out", data, backbone=tiny_backbone, seeds=(1, 2), steps=4, quick=True)
    written = json.loads((tmp_path / "out" / "checks.json").read_text())
    assert written == result
    names = {c["name"] for c in written["checks"]}
    for seed in (1, 2):
        assert {f"real.seed{seed}.{kind}" for kind in ("monotone", "grad_decay", "mi_rises")} <= names
    for check in written["checks"]:
        assert set(check) == {"name", "passed", "measured", "threshold", "expected"}
        assert isinstance(check["passed"], bool)
    runs = written["real"]["runs"]
    assert [run["seed"] for run in runs] == [1, 2]
    assert all(len(run["loss"]) == 4 and run["eta"] * run["l_hat"] == pytest.approx(1.0) for run in runs)
    assert written["real"]["settings"]["n_examples"] == 8
    assert (tmp_path / "out" / "real.png").stat().st_size > 0


def test_mi_check_command_writes_checks_and_reports_them(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from prompttune.cli import app

    out = tmp_path / "mi"
    result = CliRunner().invoke(app, ["mi-check", "--synthetic-only", "--out", str(out), "--quick"])
    assert result.exit_code == 0, result.output
    checks = json.loads((out / "checks.json").read_text())["checks"]
    assert f"{len(checks)} of {len(checks)} checks came out as expected" in result.output
    assert any(not check["expected"] for check in checks), "the 2.5/L̂ control must be expected to fail"
