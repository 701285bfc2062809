"""Seed statistics behind the report's claim verdicts: bootstrap intervals, variance and paired tests.

Every resampling is the percentile bootstrap (Efron & Tibshirani 1993, ch. 13) with an explicit ``seed``
fed to ``numpy.random.default_rng``, so a report is reproducible bit for bit. A ``statistic`` is called
as ``statistic(array, axis=-1)`` (``np.mean``, ``np.median`` work) so that all resamples are evaluated
at once on an index matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats as sps

NAN = float("nan")
# Choice: values whose spread is below this fraction of their magnitude count as constant (rounding, e.g.
# (c + 0.5) - c), so degenerate tests give nan instead of a huge statistic from floating-point noise.
_RTOL = 1e-12

Statistic = Callable[..., Any]
Verdict = Literal["reproduced", "not reproduced", "inconclusive"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap confidence interval; ``n`` is the number of values behind it."""

    estimate: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class TestResult:
    """A named hypothesis test's statistic and two-sided p-value (nan when the test is undefined)."""

    __test__ = False  # not a pytest test class despite the name

    name: str
    statistic: float
    p_value: float


def _percentiles(resampled: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval (Efron & Tibshirani 1993, eq. 13.5) of the bootstrap distribution."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resampled.size == 0:
        return NAN, NAN
    low, high = np.quantile(resampled, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _resample(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """An ``(n_resamples, len(values))`` matrix of draws with replacement."""
    return values[rng.integers(0, values.size, size=(n_resamples, values.size))]


def _paired(treatment: Mapping[int, float], control: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Treatment and control values over the seeds present in both, in seed order."""
    seeds = sorted(treatment.keys() & control.keys())
    t = np.array([treatment[s] for s in seeds], dtype=float)
    c = np.array([control[s] for s in seeds], dtype=float)
    return t, c


def _nearly_constant(values: np.ndarray, scale: float) -> bool:
    """Whether ``values`` are equal up to rounding relative to ``scale`` (choice, see ``_RTOL``)."""
    return bool(np.ptp(values) <= _RTOL * scale)


def bootstrap_ci(
    values: Sequence[float],
    *,
    statistic: Statistic = np.mean,
    n_resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (resampled with replacement).

    With fewer than 2 values the interval is (nan, nan); the estimate is the statistic of the one value,
    or nan when there are none.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Interval(NAN, NAN, NAN, 0)
    estimate = float(statistic(x, axis=-1))
    if x.size < 2:
        return Interval(estimate, NAN, NAN, 1)
    rng = np.random.default_rng(seed)
    low, high = _percentiles(statistic(_resample(x, n_resamples, rng), axis=-1), level)
    return Interval(estimate, low, high, int(x.size))


def paired_difference(
    treatment: Mapping[int, float],
    control: Mapping[int, float],
    *,
    statistic: Statistic = np.mean,
    n_resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of ``statistic`` (default the mean) of treatment − control, paired by seed.

    Only seeds present in both mappings are used; ``n`` is the number of paired seeds.
    """
    t, c = _paired(treatment, control)
    return bootstrap_ci(t - c, statistic=statistic, n_resamples=n_resamples, level=level, seed=seed)


def mean_over_tasks_paired(
    treatment: Mapping[str, Mapping[int, float]],
    control: Mapping[str, Mapping[int, float]],
    *,
    n_resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The papers' "average score" difference: mean over tasks of each task's mean paired difference.

    Tasks in only one mapping are ignored; within a task only shared seeds are paired. The bootstrap is
    stratified by task (seeds resampled independently within each task, in sorted task order), which keeps
    every task in every resample as the average score does. ``n`` is the number of paired (task, seed)
    values. If any task has fewer than 2 pairs the interval is (nan, nan); a task with no pairs also makes
    the estimate nan (choice: the average is over all shared tasks, none is dropped silently).
    """
    tasks = sorted(treatment.keys() & control.keys())
    diffs = [np.subtract(*_paired(treatment[task], control[task])) for task in tasks]
    n = sum(d.size for d in diffs)
    if not diffs or any(d.size == 0 for d in diffs):
        return Interval(NAN, NAN, NAN, n)
    estimate = float(np.mean([d.mean() for d in diffs]))
    if any(d.size < 2 for d in diffs):
        return Interval(estimate, NAN, NAN, n)
    rng = np.random.default_rng(seed)
    resampled = np.mean([_resample(d, n_resamples, rng).mean(axis=1) for d in diffs], axis=0)
    low, high = _percentiles(resampled, level)
    return Interval(estimate, low, high, n)


def std_ratio(
    treatment: Sequence[float],
    control: Sequence[float],
    *,
    n_resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of std(treatment) / std(control) (ddof = 1), each group resampled independently.

    A zero std means all values equal (tested exactly, so rounding in ``np.std`` cannot give a tiny
    nonzero denominator). Resamples whose control std is 0 are dropped. If the original control std is
    0 the estimate is inf (nan when the treatment std is 0 too: 0/0) and the interval (nan, nan). ``n`` is
    the smaller group size (choice: the verdict's ``min_n`` then applies to both groups); with fewer than
    2 values in a group everything is nan.
    """
    t = np.asarray(treatment, dtype=float)
    c = np.asarray(control, dtype=float)
    n = int(min(t.size, c.size))
    if n < 2:
        return Interval(NAN, NAN, NAN, n)
    if np.ptp(c) == 0:
        return Interval(NAN if np.ptp(t) == 0 else math.inf, NAN, NAN, n)
    estimate = float(np.std(t, ddof=1) / np.std(c, ddof=1))
    rng = np.random.default_rng(seed)
    t_res = _resample(t, n_resamples, rng)
    c_res = _resample(c, n_resamples, rng)
    keep = np.ptp(c_res, axis=1) > 0
    ratios = np.std(t_res[keep], axis=1, ddof=1) / np.std(c_res[keep], axis=1, ddof=1)
    low, high = _percentiles(ratios, level)
    return Interval(estimate, low, high, n)


def variance_test(*groups: Sequence[float]) -> TestResult:
    """Brown–Forsythe test of equal variances (Brown & Forsythe 1974): Levene's test about the median.

    Statistic and p-value are nan when a group has fewer than 2 values, or when every group's absolute
    deviations from its median are constant up to rounding (e.g. all groups of size 2), where the
    ANOVA behind the test divides by zero.
    """
    if len(groups) < 2:
        raise ValueError(f"variance_test needs at least 2 groups, got {len(groups)}")
    arrays = [np.asarray(g, dtype=float) for g in groups]
    name = "Brown-Forsythe"
    if any(a.size < 2 for a in arrays):
        return TestResult(name, NAN, NAN)
    scale = max(float(np.max(np.abs(a))) for a in arrays)
    if all(_nearly_constant(np.abs(a - np.median(a)), scale) for a in arrays):
        return TestResult(name, NAN, NAN)
    result = sps.levene(*arrays, center="median")
    return TestResult(name, float(result.statistic), float(result.pvalue))


def paired_test(treatment: Mapping[int, float], control: Mapping[int, float]) -> TestResult:
    """Two-sided paired t-test (``scipy.stats.ttest_rel``) over the seeds present in both mappings.

    nan with fewer than 2 pairs, or when the differences are identical up to rounding (zero variance).
    """
    t, c = _paired(treatment, control)
    name = "paired t"
    if t.size < 2:
        return TestResult(name, NAN, NAN)
    scale = float(max(np.max(np.abs(t)), np.max(np.abs(c))))
    if _nearly_constant(t - c, scale):
        return TestResult(name, NAN, NAN)
    result = sps.ttest_rel(t, c)
    return TestResult(name, float(result.statistic), float(result.pvalue))


def verdict(
    interval: Interval,
    threshold: float = 0.0,
    direction: Literal["greater", "less"] = "greater",
    min_n: int = 3,
) -> Verdict:
    """A claim's verdict from a confidence interval (choice).

    "inconclusive" when ``interval.n < min_n``, either bound is nan, or the interval straddles the
    threshold (low ≤ threshold ≤ high). For ``direction="greater"`` (the claim is "above threshold"):
    "reproduced" when low > threshold, "not reproduced" when high < threshold; mirrored for "less".
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    low, high = interval.low, interval.high
    if interval.n < min_n or math.isnan(low) or math.isnan(high) or low <= threshold <= high:
        return "inconclusive"
    above = low > threshold
    return "reproduced" if above == (direction == "greater") else "not reproduced"


def steps_to_fraction(steps: Sequence[int], scores: Sequence[float], fraction: float = 0.9) -> int | None:
    """First step whose score reaches ``fraction`` × the final (last) score.

    CLAIMS.md IP-2: steps for the selection-split metric to reach 90 % of its final value. ``steps`` must
    be strictly increasing. None when the curve is empty or the final score is nan or ≤ 0 (a fraction of
    it is then no target); nan scores along the curve never count as reaching it.
    """
    s = np.asarray(steps)
    y = np.asarray(scores, dtype=float)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"steps and scores must be 1-d and of equal length, got {s.shape} and {y.shape}")
    if s.size and np.any(np.diff(s) <= 0):
        raise ValueError("steps must be strictly increasing")
    if y.size == 0 or not y[-1] > 0:
        return None
    reached = np.flatnonzero(y >= fraction * y[-1])
    return int(s[reached[0]]) if reached.size else None
