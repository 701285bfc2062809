"""Seed statistics on simulated and hand-made data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from prompttune.stats import (
    Interval,
    bootstrap_ci,
    mean_over_tasks_paired,
    paired_difference,
    paired_test,
    std_ratio,
    steps_to_fraction,
    variance_test,
    verdict,
)

SEEDS = range(1, 11)


def seed_scores(values: np.ndarray) -> dict[int, float]:
    return {s: float(v) for s, v in zip(SEEDS, values, strict=True)}


def test_bootstrap_ci_of_mean_covers_true_mean_at_about_nominal_rate() -> None:
    data_rng = np.random.default_rng(20240501)
    covered = 0
    for i in range(400):
        ci = bootstrap_ci(data_rng.normal(1.0, 2.0, size=20), n_resamples=2000, seed=i)
        covered += ci.low <= 1.0 <= ci.high
    assert 0.88 <= covered / 400 <= 0.98


def test_bootstrap_ci_estimate_is_statistic_of_original_sample() -> None:
    ci = bootstrap_ci([1.0, 2.0, 100.0], statistic=np.median, n_resamples=500)
    assert ci.estimate == 2.0
    assert ci.n == 3
    assert 1.0 <= ci.low <= ci.high <= 100.0


def test_bootstrap_ci_with_fewer_than_two_values_has_nan_bounds() -> None:
    empty = bootstrap_ci([])
    assert (math.isnan(empty.estimate), math.isnan(empty.low), math.isnan(empty.high), empty.n) == (
        True,
        True,
        True,
        0,
    )
    one = bootstrap_ci([3.0])
    assert one.estimate == 3.0 and one.n == 1
    assert math.isnan(one.low) and math.isnan(one.high)


def test_bootstrap_ci_rejects_level_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0, 3.0], level=95)


def test_paired_difference_of_constant_shift_is_the_shift_with_zero_width_ci() -> None:
    control = seed_scores(np.random.default_rng(1).uniform(0.4, 0.8, size=10))
    treatment = {s: v + 0.5 for s, v in control.items()}
    ci = paired_difference(treatment, control)
    assert ci.n == 10
    assert ci.estimate == pytest.approx(0.5, abs=1e-12)
    assert ci.low == pytest.approx(0.5, abs=1e-12)
    assert ci.high == pytest.approx(0.5, abs=1e-12)


def test_paired_difference_of_noisy_shift_excludes_zero_and_is_reproduced() -> None:
    rng = np.random.default_rng(2)
    control = seed_scores(rng.uniform(0.4, 0.8, size=10))
    treatment = {s: v + 0.5 + rng.normal(0.0, 0.01) for s, v in control.items()}
    ci = paired_difference(treatment, control)
    assert 0.0 < ci.low < 0.5 < ci.high
    assert verdict(ci) == "reproduced"


def test_paired_difference_of_pure_noise_is_inconclusive() -> None:
    rng = np.random.default_rng(3)
    control = seed_scores(rng.uniform(0.4, 0.8, size=10))
    treatment = {s: v + rng.normal(0.0, 0.01) for s, v in control.items()}
    ci = paired_difference(treatment, control)
    assert ci.low < 0.0 < ci.high
    assert verdict(ci) == "inconclusive"


def test_paired_difference_uses_only_seeds_present_in_both() -> None:
    treatment = {1: 1.0, 2: 2.0, 3: 3.0}
    control = {2: 1.5, 3: 2.0, 4: 100.0}
    ci = paired_difference(treatment, control, n_resamples=500)
    assert ci.n == 2
    assert ci.estimate == pytest.approx(0.75)
    assert 0.5 <= ci.low <= ci.high <= 1.0


def test_mean_over_tasks_paired_is_mean_of_per_task_mean_differences() -> None:
    treatment = {
        "CB": {1: 0.8, 2: 0.6, 3: 0.7},
        "RTE": {1: 0.4, 2: 0.5, 3: 0.6},
        "WiC": {1: 0.9, 2: 0.9},  # only in treatment: ignored
    }
    control = {
        "CB": {1: 0.5, 2: 0.5, 4: 0.9},  # seeds 1, 2 shared: differences 0.3, 0.1 -> 0.2
        "RTE": {1: 0.4, 2: 0.4, 3: 0.4},  # differences 0.0, 0.1, 0.2 -> 0.1
    }
    ci = mean_over_tasks_paired(treatment, control, n_resamples=2000)
    assert ci.estimate == pytest.approx(0.15)
    assert ci.n == 5
    # every stratified resample keeps both tasks: its mean lies in [(0.1 + 0.0) / 2, (0.3 + 0.2) / 2]
    assert 0.05 - 1e-12 <= ci.low < 0.15 < ci.high <= 0.25 + 1e-12


def test_mean_over_tasks_paired_with_one_task_equals_paired_difference() -> None:
    rng = np.random.default_rng(4)
    t, c = seed_scores(rng.normal(size=10)), seed_scores(rng.normal(size=10))
    assert mean_over_tasks_paired({"CB": t}, {"CB": c}, seed=7) == paired_difference(t, c, seed=7)


def test_mean_over_tasks_paired_task_with_one_pair_gives_nan_bounds() -> None:
    ci = mean_over_tasks_paired(
        {"CB": {1: 0.6, 2: 0.7}, "RTE": {1: 0.5}}, {"CB": {1: 0.5, 2: 0.5}, "RTE": {1: 0.4}}
    )
    assert ci.estimate == pytest.approx((0.15 + 0.1) / 2)
    assert ci.n == 3
    assert math.isnan(ci.low) and math.isnan(ci.high)
    assert verdict(ci) == "inconclusive"


def test_mean_over_tasks_paired_task_without_shared_seeds_gives_nan_estimate() -> None:
    ci = mean_over_tasks_paired(
        {"CB": {1: 0.6, 2: 0.7}, "RTE": {1: 0.5}}, {"CB": {1: 0.5, 2: 0.5}, "RTE": {2: 0.4}}
    )
    assert ci.n == 2
    assert math.isnan(ci.estimate) and math.isnan(ci.low) and math.isnan(ci.high)


def test_std_ratio_estimate_is_ratio_of_sample_stds() -> None:
    # std([1, 2, 4], ddof=1) = sqrt(7/3), std([0, 3, 3, 6], ddof=1) = sqrt(6)
    ci = std_ratio([1.0, 2.0, 4.0], [0.0, 3.0, 3.0, 6.0], n_resamples=2000)
    assert ci.estimate == pytest.approx(math.sqrt(7 / 18))
    assert ci.n == 3
    assert 0.0 <= ci.low <= ci.high < math.inf


def test_std_ratio_with_constant_control_is_infinite_with_nan_bounds() -> None:
    ci = std_ratio([0.6, 0.7, 0.8], [0.7, 0.7, 0.7])
    assert ci.estimate == math.inf
    assert math.isnan(ci.low) and math.isnan(ci.high)
    assert verdict(ci, threshold=1.0, direction="less") == "inconclusive"
    assert math.isnan(std_ratio([0.5, 0.5], [0.7, 0.7]).estimate)


@pytest.mark.filterwarnings("error")
def test_std_ratio_drops_resamples_where_control_std_is_zero() -> None:
    # a third of the control's resamples are constant: (0.1, 0.1, 0.1) w.p. 8/27, (0.2, 0.2, 0.2) w.p. 1/27
    # the others have std >= std([0.1, 0.1, 0.2]), the treatment's std <= std([1, 1, 3]): ratios <= 20
    ci = std_ratio([1.0, 2.0, 3.0], [0.1, 0.1, 0.2], n_resamples=2000)
    assert 0.0 <= ci.low <= ci.high <= 20.0 + 1e-9


def test_std_ratio_detects_smaller_spread() -> None:
    rng = np.random.default_rng(5)
    ci = std_ratio(rng.normal(0.0, 1.0, size=30), rng.normal(0.0, 4.0, size=30), n_resamples=2000)
    assert ci.high < 1.0
    assert verdict(ci, threshold=1.0, direction="less") == "reproduced"


def test_variance_test_detects_different_spreads() -> None:
    rng = np.random.default_rng(6)
    result = variance_test(rng.normal(0.0, 1.0, size=50), rng.normal(0.0, 5.0, size=50))
    assert result.name == "Brown-Forsythe"
    assert result.p_value < 0.01


def test_variance_test_does_not_reject_equal_spreads() -> None:
    rng = np.random.default_rng(7)
    assert variance_test(rng.normal(0.0, 2.0, size=50), rng.normal(3.0, 2.0, size=50)).p_value > 0.05


def test_variance_test_statistic_is_anova_f_on_absolute_deviations_from_median() -> None:
    groups = [[1.0, 2.0, 6.0], [2.0, 4.0, 4.0, 10.0]]
    # |x - median|: [1, 0, 4] (mean 5/3) and [2, 0, 0, 6] (mean 2), grand mean 13/7;
    # between SS = 3 (4/21)^2 + 4 (1/7)^2 = 4/21 on 1 df, within SS = 26/3 + 24 = 98/3 on 5 df
    f = (4 / 21) / (98 / 3 / 5)
    assert f == pytest.approx(10 / 343)
    result = variance_test(*groups)
    assert result.statistic == pytest.approx(f)
    assert result.p_value == pytest.approx(sps.f.sf(f, 1, 5))


@pytest.mark.filterwarnings("error")
def test_variance_test_is_nan_when_undefined() -> None:
    small = variance_test([1.0, 2.0, 3.0], [4.0])
    assert math.isnan(small.statistic) and math.isnan(small.p_value)
    pairs = variance_test([0.1, 0.3], [0.2, 0.9])  # |x - median| constant in each group: F = 0/0 or x/0
    assert math.isnan(pairs.statistic) and math.isnan(pairs.p_value)
    with pytest.raises(ValueError, match="2 groups"):
        variance_test([1.0, 2.0, 3.0])


def test_paired_test_matches_ttest_rel_on_shared_seeds() -> None:
    treatment = {1: 0.61, 2: 0.72, 3: 0.64, 4: 0.70, 5: 0.99}
    control = {1: 0.50, 2: 0.66, 3: 0.60, 4: 0.52, 6: 0.10}
    expected = sps.ttest_rel([0.61, 0.72, 0.64, 0.70], [0.50, 0.66, 0.60, 0.52])
    result = paired_test(treatment, control)
    assert result.name == "paired t"
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


@pytest.mark.filterwarnings("error")
def test_paired_test_is_nan_for_identical_differences_or_fewer_than_two_pairs() -> None:
    control = seed_scores(np.random.default_rng(8).uniform(0.4, 0.8, size=10))
    shifted = paired_test(
        {s: v + 0.5 for s, v in control.items()}, control
    )  # differences equal up to rounding
    assert math.isnan(shifted.statistic) and math.isnan(shifted.p_value)
    one = paired_test({1: 0.5, 2: 0.6}, {1: 0.4, 3: 0.1})
    assert math.isnan(one.statistic) and math.isnan(one.p_value)


@pytest.mark.parametrize(
    ("interval", "threshold", "direction", "expected"),
    [
        (Interval(1.0, 0.2, 1.5, 5), 0.0, "greater", "reproduced"),
        (Interval(-1.0, -2.0, -0.5, 5), 0.0, "greater", "not reproduced"),
        (Interval(0.3, -0.1, 0.7, 5), 0.0, "greater", "inconclusive"),
        (Interval(0.3, 0.0, 0.7, 5), 0.0, "greater", "inconclusive"),  # bound on the threshold
        (Interval(2.5, 2.1, 3.0, 5), 2.0, "greater", "reproduced"),
        (Interval(1.9, 1.5, 1.99, 5), 2.0, "greater", "not reproduced"),
        (Interval(0.6, 0.4, 0.8, 5), 1.0, "less", "reproduced"),
        (Interval(1.5, 1.2, 1.8, 5), 1.0, "less", "not reproduced"),
        (Interval(0.9, 0.7, 1.0, 5), 1.0, "less", "inconclusive"),
        (Interval(1.0, 0.2, 1.5, 2), 0.0, "greater", "inconclusive"),  # n < min_n
        (Interval(1.0, math.nan, math.nan, 5), 0.0, "greater", "inconclusive"),
    ],
)
def test_verdict_thresholds_and_directions(
    interval: Interval, threshold: float, direction: str, expected: str
) -> None:
    assert verdict(interval, threshold, direction) == expected  # type: ignore[arg-type]


def test_verdict_min_n_is_configurable_and_direction_checked() -> None:
    interval = Interval(1.0, 0.2, 1.5, 2)
    assert verdict(interval, min_n=2) == "reproduced"
    with pytest.raises(ValueError, match="direction"):
        verdict(interval, direction="up")  # type: ignore[arg-type]


def test_steps_to_fraction_on_hand_made_curves() -> None:
    steps = [0, 100, 200, 300, 400]
    assert steps_to_fraction(steps, [0.1, 0.5, 0.85, 0.95, 1.0]) == 300
    assert steps_to_fraction(steps, [0.1, 0.5, 0.85, 0.95, 1.0], fraction=0.5) == 100
    assert steps_to_fraction(steps, [0.1, math.nan, 0.5, 0.95, 1.0]) == 300  # nan never reaches
    assert steps_to_fraction(steps, [0.2, 0.4, 0.6, 0.8, 0.85]) == 300  # 0.8 >= 0.9 * 0.85 = 0.765


def test_steps_to_fraction_curve_starting_above_target_gives_first_step() -> None:
    assert steps_to_fraction([50, 100, 150], [0.95, 0.8, 1.0]) == 50


def test_steps_to_fraction_without_positive_final_score_is_none() -> None:
    assert steps_to_fraction([0, 100], [0.5, 0.0]) is None
    assert steps_to_fraction([0, 100], [0.5, -0.2]) is None
    assert steps_to_fraction([0, 100], [0.5, math.nan]) is None
    assert steps_to_fraction([], []) is None


def test_steps_to_fraction_rejects_malformed_curves() -> None:
    with pytest.raises(ValueError, match="equal length"):
        steps_to_fraction([0, 100], [0.5])
    with pytest.raises(ValueError, match="increasing"):
        steps_to_fraction([100, 0], [0.5, 0.6])


def test_same_seed_gives_identical_intervals_and_other_seed_differs() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=8), rng.normal(size=8)
    t, c = seed_scores(rng.normal(size=10)), seed_scores(rng.normal(size=10))
    tasks_t, tasks_c = {"CB": t, "RTE": c}, {"CB": c, "RTE": t}
    for compute in (
        lambda seed: bootstrap_ci(x, n_resamples=1000, seed=seed),
        lambda seed: paired_difference(t, c, n_resamples=1000, seed=seed),
        lambda seed: mean_over_tasks_paired(tasks_t, tasks_c, n_resamples=1000, seed=seed),
        lambda seed: std_ratio(x, y, n_resamples=1000, seed=seed),
    ):
        assert compute(11) == compute(11)
        assert compute(11) != compute(12)
