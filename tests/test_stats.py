"""Seed statistics on hand-made data with known answers, and their error rates simulated under a null and
under a shift at the seed counts the profiles use (n = 3, 5, 10)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from prompttune.stats import (
    ALPHA,
    describe,
    dispersion_test,
    holm,
    iut_power,
    iut_seeds_needed,
    mean_interval,
    pair_log_ratios,
    paired_t,
    spread_range,
    t_detectable,
    t_seeds_needed,
)

SEED_COUNTS = (3, 5, 10)


def test_paired_t_is_students_test_with_its_interval() -> None:
    d = np.array([0.3, 0.5, 0.1])
    result = paired_t(d, alpha=0.025)
    assert result.estimate == pytest.approx(0.3)
    assert result.p_greater == pytest.approx(sps.ttest_1samp(d, 0, alternative="greater").pvalue)
    assert result.p_less == pytest.approx(sps.ttest_1samp(d, 0, alternative="less").pvalue)
    assert result.p_greater == pytest.approx(0.0608, abs=1e-4), "p = 0.12 two-sided: not significant"
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert (result.low, result.high) == pytest.approx((0.3 - half, 0.3 + half))
    assert result.low < 0 < result.high, "all three positive is not evidence at n = 3"


def test_tied_differences_give_no_test_and_no_interval() -> None:
    """Six equal differences used to give p = 1/64 (exact sign flip) and a decided verdict on a zero-width
    interval; now there is no test."""
    result = paired_t([1.8] * 6)
    assert result.name == "no spread" and result.estimate == pytest.approx(1.8) and result.sd == 0.0
    assert math.isnan(result.p_greater) and math.isnan(result.low) and math.isnan(result.high)
    assert math.isnan(result.p_below(2.0, "greater"))
    assert math.isnan(paired_t([1.0]).p_greater) and math.isnan(paired_t([]).estimate)


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_p_below_is_the_one_sided_test_against_the_reference(n: int) -> None:
    """TOST's one side: p that the effect is below a reference equals Student's test of d − reference, and
    its interval excludes the reference exactly when p < α."""
    rng = np.random.default_rng(n)
    d = rng.normal(0.5, 1.0, n)
    result = paired_t(d, ALPHA)
    expected = sps.ttest_1samp(d - 2.0, 0, alternative="less").pvalue
    assert result.p_below(2.0, "greater") == pytest.approx(expected)
    assert (result.p_below(2.0, "greater") < ALPHA) == (result.high < 2.0)
    mirrored = paired_t(-d, ALPHA)
    assert mirrored.p_below(-2.0, "less") == pytest.approx(expected)


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_below_reference_keeps_its_error_rate_at_the_reference_and_has_power_at_zero(n: int) -> None:
    """Under the null of the below-reference verdict (the true effect equals the reference) it is false at
    most α; with no effect at all it is found with the power of a shift of one reference."""
    rng = np.random.default_rng(100 + n)
    at_reference = [
        paired_t(row, ALPHA).p_below(2.0, "greater") < ALPHA for row in rng.normal(2, 2, (4000, n))
    ]
    assert np.mean(at_reference) <= ALPHA + 3 * math.sqrt(ALPHA / 4000)
    at_zero = [paired_t(row, ALPHA).p_below(2.0, "greater") < ALPHA for row in rng.normal(0, 2, (4000, n))]
    expected = 1 - sps.nct.cdf(sps.t.ppf(1 - ALPHA, n - 1), n - 1, math.sqrt(n))
    assert np.mean(at_zero) == pytest.approx(expected, abs=0.03)


def test_the_test_column_is_the_functions_own_description() -> None:
    assert describe(dispersion_test) == dispersion_test.__doc__.strip().splitlines()[0].rstrip(".")
    assert describe(paired_t).startswith("Student's one-sample t-test")


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_intersection_union_power_is_every_part_at_once(n: int) -> None:
    """One part: the noncentral t. Independent parts: the product of their powers. Simulated directly:
    the same. So 'seeds needed' for a multi-part claim gives the whole rule its power, not each part."""
    alpha = 0.02
    single = iut_power(np.array([2.0]), np.eye(1) * 4.0, n, alpha)
    exact = 1 - sps.nct.cdf(sps.t.ppf(1 - alpha, n - 1), n - 1, 2.0 / 2.0 * math.sqrt(n))
    assert single == pytest.approx(exact, abs=0.02)
    both = iut_power(np.array([2.0, 2.0]), np.eye(2) * 4.0, n, alpha)
    assert both == pytest.approx(exact**2, abs=0.02)
    rng = np.random.default_rng(n)
    draws = rng.normal(2.0, 2.0, (4000, n, 2))
    tests = [[paired_t(draw[:, k], alpha).p_greater < alpha for k in range(2)] for draw in draws]
    assert both == pytest.approx(np.mean(np.all(tests, axis=1)), abs=0.03)


def test_seeds_needed_for_several_parts_exceed_one_parts_and_none_for_the_wrong_direction() -> None:
    one = t_seeds_needed(2.0, 3.0, 0.02)
    four = iut_seeds_needed([2.0] * 4, np.eye(4) * 9.0, 0.02)
    assert iut_seeds_needed([2.0], np.eye(1) * 9.0, 0.02) == pytest.approx(one, abs=1)
    assert four > one, "all four parts significant together needs more seeds than one"
    assert iut_power(np.full(4, 2.0), np.eye(4) * 9.0, int(four), 0.02) >= 0.8
    assert iut_seeds_needed([2.0, -0.5], np.eye(2), 0.02) == math.inf
    assert math.isnan(iut_seeds_needed([2.0, 1.0], np.full((2, 2), math.nan), 0.02))


def test_the_spread_range_is_the_chi_square_interval_of_the_sd() -> None:
    low, high = spread_range(6, 3.0, 0.8)
    assert low == pytest.approx(3.0 * math.sqrt(5 / sps.chi2.ppf(0.9, 5)))
    assert high == pytest.approx(3.0 * math.sqrt(5 / sps.chi2.ppf(0.1, 5)))
    assert low < 3.0 < high and all(math.isnan(v) for v in spread_range(1, 3.0))


def rates(test, draws: np.ndarray, alpha: float) -> tuple[float, float]:
    """(share with p_greater < alpha, share with p_less < alpha) over the rows of ``draws``."""
    results = [test(row) for row in draws]
    return (
        float(np.mean([r.p_greater < alpha for r in results])),
        float(np.mean([r.p_less < alpha for r in results])),
    )


@pytest.mark.parametrize("n", SEED_COUNTS)
@pytest.mark.parametrize("family", ["normal", "heavy", "collapse"])
def test_paired_t_keeps_its_error_rate_under_the_null(n: int, family: str) -> None:
    rng = np.random.default_rng(n)
    size = (3000, n)
    if family == "normal":
        d = rng.normal(0, 3, size)
    elif family == "heavy":
        d = rng.standard_t(2, size)
    else:  # a run of either arm collapses (−20) with probability 0.15: the difference stays symmetric
        a = np.where(rng.random(size) < 0.15, -20, rng.normal(0, 3, size))
        b = np.where(rng.random(size) < 0.15, -20, rng.normal(0, 3, size))
        d = a - b
    greater, less = rates(paired_t, d, ALPHA)
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / size[0])  # α plus three Monte Carlo standard errors
    assert greater <= bound and less <= bound, (greater, less)


@pytest.mark.parametrize("n", SEED_COUNTS)
def test_paired_t_detects_a_shift_with_the_power_it_states(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    sd = 3.0
    effect = t_detectable(n, sd, ALPHA)  # the effect it claims to detect with 80 % power
    greater, less = rates(paired_t, rng.normal(effect, sd, (2000, n)), ALPHA)
    assert greater == pytest.approx(0.8, abs=0.04) and less < 0.001


def test_detectable_effect_and_seeds_needed_agree() -> None:
    for n in SEED_COUNTS:
        d = t_detectable(n, 1.0, ALPHA)
        assert t_seeds_needed(d, 1.0, ALPHA) == n
        assert t_seeds_needed(d * 1.01, 1.0, ALPHA) <= n < t_seeds_needed(d * 0.99, 1.0, ALPHA)
    assert t_detectable(3, 2.0, ALPHA) == pytest.approx(2 * t_detectable(3, 1.0, ALPHA))
    assert t_seeds_needed(0.0, 1.0, ALPHA) == math.inf and math.isnan(t_seeds_needed(1.0, 0.0, ALPHA))
    assert math.isnan(t_detectable(1, 1.0, ALPHA))


def test_dispersion_test_compares_spreads_within_disjoint_seed_pairs() -> None:
    x = [[10.0, 12.0, 50.0, 51.0, 7.0]]  # pairs (10, 12), (50, 51); the fifth seed has no partner
    y = [[20.0, 28.0, 5.0, 9.0, 1.0]]
    ratios = pair_log_ratios(x, y)
    assert ratios.shape == (2,)
    floor = 0.01 * np.std(
        np.concatenate([np.subtract(x[0], np.mean(x[0])), np.subtract(y[0], np.mean(y[0]))]), ddof=1
    )
    assert ratios[0] == pytest.approx(math.log(2 + floor) - math.log(8 + floor))
    shifted = pair_log_ratios([[v + 100 for v in x[0]]], [[v - 3 for v in y[0]]])
    np.testing.assert_allclose(shifted, ratios), "a shift of either arm's mean changes nothing"
    result = dispersion_test(x, y, ALPHA)
    assert result.estimate == pytest.approx(ratios.mean()) and result.n == 2


def test_three_seeds_give_no_dispersion_test() -> None:
    result = dispersion_test([[60.0, 60.1, 59.9]], [[40.0, 60.0, 80.0]], ALPHA)
    assert result.n == 1 and math.isnan(result.p_less), "one seed pair is no test, however calm one arm looks"


def null_draws(rng: np.random.Generator, family: str, reps: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(0, 3, (reps, n))
    y = rng.normal(0, 3, (reps, n)) + (5.0 if family == "shifted means" else 0.0)
    if family == "collapse":
        x = np.where(rng.random((reps, n)) < 0.15, -20, x)
        y = np.where(rng.random((reps, n)) < 0.15, -20, y)
    if family == "ties":
        x, y = np.round(x / 1.8) * 1.8, np.round(y / 1.8) * 1.8
    return x, y


@pytest.mark.parametrize("n", SEED_COUNTS)
@pytest.mark.parametrize("family", ["normal", "shifted means", "collapse", "ties"])
def test_dispersion_test_keeps_its_error_rate_under_the_null(n: int, family: str) -> None:
    reps = 3000
    x, y = null_draws(np.random.default_rng(7 * n + len(family)), family, reps, n)
    results = [dispersion_test([a], [b], ALPHA) for a, b in zip(x, y, strict=True)]
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / reps)
    assert np.mean([r.p_less < ALPHA for r in results]) <= bound
    assert np.mean([r.p_greater < ALPHA for r in results]) <= bound


def test_dispersion_test_has_the_power_it_states_at_ten_seeds() -> None:
    """Normal seeds: a pair's log spread ratio has sd π/2 (log|z₁| − log|z₂|), so 10 seeds (5 pairs) detect
    with 80 % power the ratio exp(−t_detectable(5, π/2)); simulated, they do (about)."""
    ratio = math.exp(-t_detectable(5, math.pi / 2, ALPHA))
    rng = np.random.default_rng(3)
    draws = [
        dispersion_test([rng.normal(0, 3 * ratio, 10)], [rng.normal(0, 3, 10)], ALPHA) for _ in range(2000)
    ]
    assert 0.05 < ratio < 0.15, "a quarter of the spread is not detectable at 10 seeds"
    assert np.mean([r.p_less < ALPHA for r in draws]) == pytest.approx(0.8, abs=0.07)
    assert np.mean([r.p_greater < ALPHA for r in draws]) < 0.001


def test_holm_matches_statsmodels() -> None:
    p = [0.01, 0.04, 0.03, 0.2, 0.005, float("nan")]
    expected = multipletests(p[:5], method="holm")[1].tolist()
    assert holm(p)[:5] == pytest.approx(expected) and math.isnan(holm(p)[5])


def test_mean_interval_covers_the_mean_at_its_level() -> None:
    rng = np.random.default_rng(11)
    covered = [low <= 1.0 <= high for low, high in (mean_interval(rng.normal(1, 2, 3)) for _ in range(3000))]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.015)
    assert all(math.isnan(v) for v in mean_interval([2.0]))
