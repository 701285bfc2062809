"""Seed statistics behind the claim verdicts: tests whose error rates are known at the seed counts the
profiles run, and the power of each (``benchmarks/verdict_calibration.py`` measures both by simulation,
through the claims code itself).

Choices, each stated on the report page:

- **Paired gains** (a method against its base on the same training seeds, averaged over tasks): the
  one-sample Student t-test on the per-seed differences, each seed's difference averaged over the tasks
  first, so the values are independent across seeds whatever the tasks' spreads. Under the null of no
  effect the two arms of a pair are exchangeable and the differences are symmetric about 0; Student's
  test is then close to its nominal level at small n but not exactly at it (a constructed symmetric
  two-point case reaches 0.12 at n = 3), so its error rates are not assumed: the calibration benchmark
  measures them at every profile's seed counts and null family, and the page quotes that measurement.
  Where the differences have no spread at all (ties of a discrete metric) there is no test: a verdict
  never rests on a zero-width interval. Intervals are the matching Student intervals at level 1 − 2α,
  never printed narrower than the data's resolution (one example of the report split).
- **Below a reference effect** (an equivalence-style bound, TOST's one side): the same interval excluding
  a reference effect on the claimed side is a one-sided test at α that the effect is smaller than the
  reference (``p_below``).
- **Dispersion across seeds** (PTP-3): the seeds of each task are taken in disjoint consecutive pairs,
  and each pair gives ``log|x_a − x_b| − log|y_a − y_b|`` (treatment x, control y; a floor of 1 % of the
  pooled sd keeps ties finite). A pair's within-arm differences do not move when either arm's mean does,
  and swapping the arms of both its seeds flips its sign, so under the null (the arms exchangeable within
  a seed) the values are symmetric about 0 and Student's test on them is valid as above — whatever the
  means, collapses or ties. The estimate is the geometric-mean ratio of the spreads. This is what validity
  costs: a floor(n/2)-value test. Comparing the arms' whole-sample sds by an F test or a permutation of
  centred values is not valid here (simulated: 6 % false verdicts per side at 10 seeds when some runs
  collapse), so it is not used.
- **Repeated looks** (the adaptive design): a claim looked at after every round of seeds is tested at
  pre-declared seed counts (``Design.looks``), each at a nominal level from Lan–DeMets α-spending of the
  Pocock type over the information fraction n / cap, the levels set for the looks' own Student t-tests
  (by simulation of normal null paths, ``spending_levels``: boundaries computed for a normal statistic
  and applied to the t p-value cross 10 % too often at 3 seeds). Stopping early (decided, futile, out of
  budget) only removes chances to cross, so the false-verdict rate stays within α whatever the order in
  which rounds reach the claims; the calibration benchmark measures it for the whole adaptive procedure,
  allocation included, under non-normal null families too. A fixed grid is one look at its own seed
  count, at α itself.
- **Power**: the smallest effect detectable with probability ``POWER`` at the rule's α and the observed
  spread (noncentral t), and the seeds needed for a given effect; for a claim of several parts that must
  all hold (an intersection-union test) the seeds at which *all* parts reach significance together with
  ``POWER``, simulated from the parts' observed covariance (``iut_seeds_needed``). Both are shown with
  the range the spread's own uncertainty gives (``SPREAD_LEVEL`` interval of the sd, chi-square).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps
from statsmodels.stats.power import TTestPower

NAN = float("nan")
ALPHA = 0.02  # per side: each false verdict at most 2 % (the target is 2.5 %; margin for the calibration)
POWER = 0.8
MAX_SEEDS = 1000  # "seeds needed" beyond this is reported as more than MAX_SEEDS
SPREAD_LEVEL = 0.8  # the sd's interval behind the range of "seeds needed" (choice)
IUT_DRAWS = 4000  # simulated experiments per seed count for a multi-part claim's power (choice)


@dataclass(frozen=True)
class TestResult:
    """One test: the estimate, the interval at level 1 − 2·alpha (nan where the test has none), both
    one-sided p-values, the values' count and spread (for power), and the test's name."""

    __test__ = False  # not a pytest class

    name: str
    estimate: float
    low: float
    high: float
    p_greater: float
    p_less: float
    n: int
    sd: float
    alpha: float

    def p_below(self, threshold: float, direction: str) -> float:
        """One-sided p-value that the effect is short of ``threshold`` on the claimed side (``direction``
        "greater": the effect is below ``threshold``; "less": above it) — TOST's one side; nan without a
        test."""
        if not (self.n >= 2 and self.sd > 0):
            return NAN
        t = (self.estimate - threshold) / (self.sd / math.sqrt(self.n))
        return float(special.stdtr(self.n - 1, t if direction == "greater" else -t))


def _nan_result(name: str, estimate: float, n: int, alpha: float) -> TestResult:
    return TestResult(name, estimate, NAN, NAN, NAN, NAN, n, NAN, alpha)


def paired_t(differences: Sequence[float], alpha: float = ALPHA) -> TestResult:
    """Student's one-sample t-test of the mean of per-seed differences; no test when they do not vary."""
    d = np.asarray(differences, dtype=float)
    name = "paired t"
    if d.size == 0:
        return _nan_result(name, NAN, 0, alpha)
    estimate = float(d.mean())
    if d.size < 2:
        return _nan_result(name, estimate, 1, alpha)
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, float(np.abs(d).max())):
        return TestResult("no spread", estimate, NAN, NAN, NAN, NAN, d.size, 0.0, alpha)
    se = sd / math.sqrt(d.size)
    t = estimate / se
    df = d.size - 1
    half = special.stdtrit(df, 1 - alpha) * se  # scipy.stats.t's own ppf, without its overhead
    return TestResult(
        name,
        estimate,
        estimate - half,
        estimate + half,
        float(special.stdtr(df, -t)),
        float(special.stdtr(df, t)),
        d.size,
        sd,
        alpha,
    )


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student interval of a mean (the results tables' per-cell interval); nan below 2 values."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return NAN, NAN
    half = sps.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def pair_log_ratios(treatment: Sequence[Sequence[float]], control: Sequence[Sequence[float]]) -> np.ndarray:
    """``log|x_a − x_b| − log|y_a − y_b|`` over disjoint consecutive seed pairs (a, b) of every task;
    ``treatment[t][s]`` and ``control[t][s]`` are task t's values at its s-th shared seed (module
    docstring)."""
    values = []
    for x, y in zip(treatment, control, strict=True):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        pooled = np.concatenate([x - x.mean(), y - y.mean()]) if x.size else np.array([])
        floor = 0.01 * (float(pooled.std(ddof=1)) if pooled.size > 1 else 0.0) or 1e-12
        for a in range(0, x.size - 1, 2):
            values.append(np.log(abs(x[a] - x[a + 1]) + floor) - np.log(abs(y[a] - y[a + 1]) + floor))
    return np.array(values)


def dispersion_test(
    treatment: Sequence[Sequence[float]], control: Sequence[Sequence[float]], alpha: float = ALPHA
) -> TestResult:
    """Student's t on the log ratio of the arms' within-pair differences over disjoint seed pairs.

    Module docstring; ``estimate``, ``low`` and ``high`` are on the log scale (exp gives the ratio of
    spreads and its interval)."""
    result = paired_t(pair_log_ratios(treatment, control), alpha)
    return dataclasses.replace(result, name=f"seed-pair spread ratio, {result.name}")


@dataclass(frozen=True)
class Design:
    """The seed counts at which a claim may be looked at (increasing; the last is the cap). ``fixed(n)``
    is the single look of a fixed grid."""

    looks: tuple[int, ...]

    @classmethod
    def fixed(cls, n: int) -> Design:
        return cls((n,))

    def levels(self, alpha: float) -> tuple[float, ...]:
        return spending_levels(self.looks, alpha)

    def reached(self, n: int, alpha: float) -> list[tuple[int, float]]:
        """(seed count, nominal level) of every look that ``n`` seeds reach, for a rule at ``alpha``."""
        return [(g, a) for g, a in zip(self.looks, self.levels(alpha), strict=True) if g <= n]


def spent(fraction: float, alpha: float) -> float:
    """Lan–DeMets Pocock-type α-spending: α·ln(1 + (e − 1)·t) at information fraction t (choice: it
    spends evenly enough that a claim stopped at a third of its cap keeps most of its power)."""
    return alpha * math.log(1 + (math.e - 1) * min(1.0, fraction))


LEVEL_PATHS = 1_000_000  # simulated null paths behind the looks' levels (MC error of each spend ≈ 1e-4)


@functools.cache
def spending_levels(looks: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    """One-sided nominal levels of the looks (seed counts ``looks``, the last the cap) for the looks'
    Student t-tests: under a normal null, the t p-value of the first n seeds falls under look n's level,
    for the first time, with probability exactly the α spent since the previous look, so the repeated
    looks cross with total probability α. Computed on ``LEVEL_PATHS`` simulated paths (fixed seed: the
    levels are the same on every machine). A boundary computed for a normal statistic and applied to the
    t p-value crosses more often at small n (2.2 % instead of 2 % at looks 3, 6, 10, 15), hence the t's
    own. One look is the fixed test at α."""
    if len(looks) == 1:
        return (alpha,)
    rng = np.random.default_rng(20261205)
    p_values = []
    for start in range(0, LEVEL_PATHS, 100_000):  # in chunks: a (paths × cap) array at once is large
        draws = rng.standard_normal((min(100_000, LEVEL_PATHS - start), looks[-1]))
        columns = []
        for n in looks:
            first = draws[:, :n]
            t = first.mean(axis=1) / (first.std(axis=1, ddof=1) / math.sqrt(n))
            columns.append(special.stdtr(n - 1, -t))  # one-sided p-value of the look's t-test
        p_values.append(np.stack(columns, axis=1))
    p = np.concatenate(p_values)
    alive = np.ones(len(p), dtype=bool)
    levels, spent_before = [], 0.0
    for k, n in enumerate(looks):
        crossings = round((spent(n / looks[-1], alpha) - spent_before) * len(p))
        survivors = np.sort(p[alive, k])
        level = float(survivors[crossings]) if crossings < survivors.size else 1.0
        crossed = alive & (p[:, k] < level)
        spent_before += crossed.sum() / len(p)
        alive &= ~crossed
        levels.append(level)
    return tuple(levels)


def describe(test: Callable[..., TestResult]) -> str:
    """The first line of a test function's docstring: what the claims table's test column says, so the
    text and the code it names come from one source."""
    return (test.__doc__ or test.__name__).strip().splitlines()[0].rstrip(".")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979; what ``statsmodels.stats.multitest.multipletests``
    with ``method="holm"`` gives — a test checks it — without its per-call garbage collection, which the
    calibration's thousands of calls cannot afford); nan stays nan."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, NAN)
    known = np.flatnonzero(~np.isnan(p))
    order = known[np.argsort(p[known], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out.tolist()


# --- power -----------------------------------------------------------------------------------------


@functools.cache
def _detectable_d(n: int, alpha: float, power: float) -> float:
    """The standardised mean difference a one-sided one-sample t-test detects (noncentral t; statsmodels)."""
    return float(
        TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="larger")
    )


def t_detectable(n: int, sd: float, alpha: float, power: float = POWER) -> float:
    """Smallest mean difference a one-sided paired t-test at ``alpha`` detects with ``power`` (n values of
    spread ``sd``); nan when it cannot be computed."""
    if n < 2 or not sd > 0 or not math.isfinite(sd):
        return NAN
    return _detectable_d(n, alpha, power) * sd


def t_seeds_needed(effect: float, sd: float, alpha: float, power: float = POWER) -> float:
    """Seeds for a one-sided paired t-test at ``alpha`` to detect ``effect`` with ``power``: the fewest
    whose detectable effect is no larger; inf above ``MAX_SEEDS``, nan when the spread is unknown."""
    if not (math.isfinite(effect) and math.isfinite(sd)) or not sd > 0:
        return NAN
    d = abs(effect) / sd
    if _detectable_d(MAX_SEEDS, alpha, power) > d:
        return math.inf
    low, high = 2, MAX_SEEDS
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if _detectable_d(mid, alpha, power) <= d else (mid + 1, high)
    return float(low)


def spread_range(n: int, sd: float, level: float = SPREAD_LEVEL) -> tuple[float, float]:
    """The ``level`` interval of a normal sample's sd from n values (chi-square with n − 1 df)."""
    if n < 2 or not sd > 0:
        return NAN, NAN
    df = n - 1
    low = sd * math.sqrt(df / sps.chi2.ppf((1 + level) / 2, df))
    high = sd * math.sqrt(df / sps.chi2.ppf((1 - level) / 2, df))
    return low, high


def iut_power(effects: np.ndarray, cov: np.ndarray, n: int, alpha: float, draws: int = IUT_DRAWS) -> float:
    """Probability that every part's one-sided paired t-test at ``alpha`` is significant in its claimed
    direction (each effect given as positive in that direction) at n seeds, the parts' per-seed
    differences normal with covariance ``cov``: simulated through the sample mean (normal) and the sample
    covariance (Wishart), so the cost does not grow with n; a fixed random stream keeps it reproducible."""
    m = len(effects)
    rng = np.random.default_rng(12345)
    means = rng.multivariate_normal(effects, cov / n, size=draws, method="cholesky")
    covs = sps.wishart.rvs(df=n - 1, scale=cov, size=draws, random_state=rng).reshape(draws, m, m) / (n - 1)
    se = np.sqrt(np.diagonal(covs, axis1=1, axis2=2) / n)
    critical = sps.t.ppf(1 - alpha, n - 1)
    return float(np.mean(np.all(means / se > critical, axis=1)))


def iut_seeds_needed(effects: Sequence[float], cov: np.ndarray, alpha: float, power: float = POWER) -> float:
    """The fewest seeds at which every part of an intersection-union claim is significant together with
    ``power`` (``iut_power``); inf above ``MAX_SEEDS`` (or when an effect is not in the claimed
    direction), nan when the covariance is unknown."""
    effects = np.asarray(effects, dtype=float)
    cov = np.asarray(cov, dtype=float)
    if not (np.all(np.isfinite(effects)) and np.all(np.isfinite(cov))) or not np.all(np.diag(cov) > 0):
        return NAN
    if np.any(effects <= 0):
        return math.inf
    cov = cov + np.eye(len(effects)) * 1e-9 * float(np.max(np.diag(cov)))
    if iut_power(effects, cov, MAX_SEEDS, alpha) < power:
        return math.inf
    low, high = max(3, len(effects) + 1), MAX_SEEDS  # the sample covariance needs n > parts
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if iut_power(effects, cov, mid, alpha) >= power else (mid + 1, high)
    return float(low)
