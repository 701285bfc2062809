"""The IP-5 verification: checkers that can fail, L̂ against the exact Hessian, the project's own losses
against independent minimisers, negative controls that fail, and a project whose loss is broken (a
sign-flipped critic, a wrong positive index) does not get `reproduced`; every check says after how many GD
steps it was judged, and checks.json carries no timing (a rerun gives the same bytes)."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from prompttune.claims import claim_rows
from prompttune.data import fetch
from prompttune.mi_check import (
    SYNTHETIC_STEPS,
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
from prompttune.results import RUN_COLUMNS, code_provenance
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
    rose = check_bounds_rise("b", {"mi_head": 0.0, "mi_rep": 1.0}, {"mi_head": 0.2, "mi_rep": 3.0}, steps=7)
    assert rose["passed"] and rose["steps"] == 7
    fell = check_bounds_rise("b", {"mi_head": 0.0, "mi_rep": 1.0}, {"mi_head": 0.2, "mi_rep": 0.5}, steps=7)
    assert not fell["passed"]


def test_trajectory_checks_are_judged_after_their_last_step() -> None:
    assert check_monotone("m", GOOD, 1e-12)["steps"] == len(GOOD) - 1
    assert check_grad_decay("g", GOOD_GRADS[:5], 1e-6, "initial")["steps"] == 4
    assert check_linear_rate("r", GOOD, 2.0, bound=0.6)["steps"] == 39
    assert check_converges("c", DIVERGING[:3], [1.0, 2.0, 3.0], 1e-12, 1e-6, "control")["steps"] == 2


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
STABLE_KINDS = ("monotone", "grad_to_zero", "linear_rate", "reaches_optimum")
TIMING_WORDS = {"time", "seconds", "s", "elapsed", "duration", "wall"}  # as in wall_time_s, seconds


@pytest.fixture(scope="module")
def synthetic_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic-only verify of the untouched project, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("mi_synthetic")
    verify(out, None, SYNTHETIC_SPEC)
    return out


def synthetic_result(out: Path) -> dict[str, Any]:
    return json.loads((out / "checks.json").read_text())


def timing_keys(value: Any) -> list[str]:
    """The keys of a JSON value (at any depth) that name a time: one of their ``_``-separated words is."""
    return [key for key in keys(value) if TIMING_WORDS & set(key.lower().split("_"))]


def keys(value: Any) -> Iterator[str]:
    """Every key of every object in a JSON value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from keys(inner)


def test_synthetic_checks_pass_and_every_control_fails(synthetic_out: Path) -> None:
    result = synthetic_result(synthetic_out)
    checks, controls = roles(result)
    assert all(c["passed"] for c in checks), [c["name"] for c in checks if not c["passed"]]
    assert controls and not any(c["passed"] for c in controls)
    names = {c["name"] for c in result["checks"]}
    for problem in ("head.d8.neg4", "rep.d6.n4"):
        for factor in ("0.5", "1", "1.9"):
            for kind in STABLE_KINDS:
                assert f"synthetic.{problem}.eta{factor}.{kind}" in names
        for control in (
            "eta2.5.converges",
            "sign_flipped_critic.reaches_optimum",
            "wrong_positive_index.reaches_optimum",
        ):
            assert f"synthetic.{problem}.{control}" in names
    assert result["real"] == {"skipped": "no data given (--synthetic-only)"}
    assert (synthetic_out / "synthetic.png").stat().st_size > 0 and not (synthetic_out / "real.png").exists()


def test_every_check_says_after_how_many_steps_it_was_judged(synthetic_out: Path) -> None:
    checks = {c["name"]: c for c in synthetic_result(synthetic_out)["checks"]}
    for check in checks.values():
        assert list(check) == ["name", "role", "passed", "steps", "measured", "threshold"]
        assert isinstance(check["steps"], int) and 0 <= check["steps"] < SYNTHETIC_STEPS, check["name"]
    for problem in ("head.d8.neg4", "rep.d6.n4"):
        tag = f"synthetic.{problem}"
        # The diverging control never stops early: its 600 iterates x_0 … x_599 are judged after 599 steps.
        assert checks[f"{tag}.eta2.5.converges"]["steps"] == SYNTHETIC_STEPS - 1
        # A stable run stops once its gradient is exactly 0; its four checks judge the same last iterate.
        assert len({checks[f"{tag}.eta1.{kind}"]["steps"] for kind in STABLE_KINDS}) == 1
        assert checks[f"{tag}.L_hat"]["steps"] == checks[f"{tag}.unstable_at_2.5"]["steps"] == 0  # on no run


def test_checks_json_has_no_timing_and_says_what_computed_it(synthetic_out: Path) -> None:
    result = synthetic_result(synthetic_out)
    assert list(result) == ["claim", "computed_by", "inputs_sha256", "checks", "synthetic", "real"]
    assert result["computed_by"] == json.loads(json.dumps(code_provenance()))
    assert timing_keys(result) == []
    assert timing_keys({"wall_time_s": 1, "x": {"seconds": 2}, "eta_times_L_hat": 1}) == [
        "wall_time_s",
        "seconds",
    ]


def test_a_result_from_the_same_inputs_is_kept_and_other_inputs_recompute(
    synthetic_out: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(synthetic_out, out)
    before = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    lines: list[str] = []
    assert verify(out, None, SYNTHETIC_SPEC, lines.append) == synthetic_result(synthetic_out)
    assert lines == [f"{out}: inputs unchanged, result kept"]
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == before
    other = verify(out, None, {**SYNTHETIC_SPEC, "seeds": [2]})
    assert other["inputs_sha256"] != synthetic_result(synthetic_out)["inputs_sha256"]
    assert synthetic_result(out) == json.loads(json.dumps(other))


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


def test_an_untouched_project_reproduces_ip5_only_with_the_real_part(synthetic_out: Path) -> None:
    result = synthetic_result(synthetic_out)
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
        assert set(check) == {"name", "role", "passed", "steps", "measured", "threshold"}
    steps = {c["name"]: c["steps"] for c in real}
    assert steps["real.seed1.monotone"] == steps["real.seed2.grad_decay"] == 39  # losses at x_0 … x_39
    assert (
        steps["real.seed1.heldout_bounds_rise"]
        == steps["real.wrong_positive_index.heldout_bounds_rise"]
        == 40
    )
    assert timing_keys(written) == []
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


def test_mi_check_command_writes_checks_and_reports_them(tmp_path: Path, synthetic_out: Path) -> None:
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
    rerun = (out / "checks.json").read_bytes()
    assert rerun == (synthetic_out / "checks.json").read_bytes(), "a rerun writes the same bytes"


def test_the_diverging_control_does_not_flatten_the_synthetic_figure() -> None:
    """The step size past 2/L̂ grows by hundreds of orders; the axis stays on the converging runs."""
    from prompttune.mi_check import ETA_FACTORS, Trajectory, synthetic_figure

    converging = [1.0 / (k + 1) for k in range(50)]
    diverging = [10.0 ** (3 * k) for k in range(50)]
    runs = [Trajectory(f, diverging if f >= 2 else converging, [], []) for f in ETA_FACTORS]
    figure = synthetic_figure({"p": runs}, [{"problem": "p", "f_star": 0.0, "L_hat": 1.0}])
    (ax,) = figure.axes
    assert ax.get_ylim()[1] == pytest.approx(10.0)
    assert any("diverges; clipped" in text.get_text() for text in ax.get_legend().get_texts())
