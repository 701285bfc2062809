"""Each claim of docs/claims.md, measured on the grid's runs (runs.csv, read through ``results.read_runs``)
and given a verdict whose error rates are known (``benchmarks/verdict_calibration.py``).

A claim is measured once per *scope* the runs cover — a setting and the prompt base its methods are
built on — on the backbone the runs used. A claim the runs do not cover gets one row saying what it needs.
Arms are chosen from what each run's objective declares (its ``family`` and what it is an ``ablation_of``),
never from method names.

Verdicts (stats.ALPHA per side):

- ``reproduced``: significant in the claimed direction;
- ``contradicted``: significant in the other direction;
- ``smaller than claimed``: the paper gives a number, on the base it used, and the interval excludes it;
- ``below reference``: where the paper gives no number, the interval excludes the reference effect the
  project chose (``Claim.reference``, named in the reason): an effect of the size that matters is ruled
  out (one side of TOST, at α; for a reference that is a fraction of the base's value, the interval
  against it, ``Part.reference_interval``, which carries the base's uncertainty);
- ``inconclusive``, with the reason: too few seeds (with the effect the seeds can detect and the seeds
  needed), tied differences (no spread, no test), collapsed runs among the arms of a mean comparison,
  runs not converged, arms not measured, or (IP-5) a part skipped or a negative control that passed.

Every verdict carries its reason: the p-value against α for ``reproduced`` and ``contradicted`` (and the
part or check behind it), the bound for ``smaller than claimed`` and ``below reference``. Under the
adaptive design a row's numbers are those of the look that gave its verdict (``Decision``), so the interval
it shows is the one its verdict read.

Choices (stated on the report page):

- scores are report-split scores in points; runs that ``failed`` (non-finite loss, crash) are left out
  and listed; ``collapsed`` runs (never above the majority class on the selection split) are results and
  count everywhere, so the instability PTP-3 and IP-3 are about is measured, not removed;
- pairs are formed on training seeds; a seed enters a claim only where both arms have it in every task;
- "best PTP variant" (PTP-1 to PTP-4) is the one with the highest mean *selection-split* score, so the
  report split never picks it. A fixed grid picks it on every seed and, because it is picked from k
  variants on the seeds it is tested on, tests it at α/k (Bonferroni). The adaptive design picks it on the
  first ``PICK_SEEDS`` seeds and tests it on the later seeds only, at α: the pick and the test share no
  seed, so the pick costs the test no level, which the design's looks already divide (pick, then confirm);
- claims with several parts (PTP-5, IP-4) are ``reproduced`` only when every part is (an
  intersection-union test, valid at α without correction) and ``contradicted`` when any part is
  significantly the wrong way after Holm's correction;
- a claim resting on a run that did not pass the convergence rule is ``inconclusive (not converged)``;
- a comparison of means guards against collapses it cannot see. An arm that collapses in some seeds but
  happened not to in these looks better than its mean: a verdict in favour of the treatment
  (``reproduced``) would be false if the treatment side collapses unseen, one in favour of the base
  (``contradicted``, ``smaller than claimed``, ``below reference``) if the base side does (simulated in
  the calibration's ``unequal-collapse`` null families). So such a verdict is given only when the side it
  favours has no collapsed run and at least ``GUARD_RUNS`` runs (its methods' main and variant runs, the
  sibling variants pooled for the best-variant claims): enough that a collapse rate of ``COLLAPSE_RISK``
  would have shown with probability 1 − ``GUARD_MISS`` (choice);
- where the paper gives no number, power is shown against a reference effect (``REFERENCE``, choice).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from prompttune import paper_numbers
from prompttune.schema import PICK_SEEDS, arm_name
from prompttune.stats import (
    ALPHA,
    MAX_SEEDS,
    POWER,
    Design,
    TestResult,
    describe,
    dispersion_test,
    holm,
    iut_seeds_needed,
    paired_t,
    spread_range,
    t_detectable,
    t_seeds_needed,
)

Verdict = Literal["reproduced", "contradicted", "smaller than claimed", "below reference", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = (
    "reproduced",
    "contradicted",
    "smaller than claimed",
    "below reference",
    "inconclusive",
)
Direction = Literal["greater", "less"]
PTP, INFOPROMPT = "ptp", "infoprompt"
COLLAPSE_RISK = 0.15  # the collapse rate a mean comparison must be able to see (choice; the calibration's)
GUARD_MISS = 0.05  # the chance such a rate goes unseen in GUARD_RUNS runs (choice)
GUARD_RUNS = math.ceil(math.log(GUARD_MISS) / math.log(1 - COLLAPSE_RISK))
FAVOURS_TREATMENT: tuple[str, ...] = ("reproduced",)
Scores = dict[str, dict[int, float]]  # task → seed → value
Measure = Callable[["Claim", "Runs", "dict[str, Any] | None"], "list[ClaimRow]"]  # (claim, runs, MI check)


@dataclass(frozen=True)
class Claim:
    """A claim of docs/claims.md (its section: ``docs/claims.md#<id>``): what it says, what is measured,
    the statistical test (the function itself, so the table's description is that function's own), the
    rule around it, and the effect its power is judged against (the paper's number where one is public,
    else a reference effect chosen by the project)."""

    id: str
    paper: str
    text: str
    measure: str
    tester: Callable[..., TestResult] | None
    rule: str
    reference: float
    reference_source: str  # "paper" or "choice"
    needs: str  # what "not measured" names when no scope of the runs measures it
    measured_by: Measure  # its rows: one per scope of the runs that measures it, [] when none does

    @property
    def test(self) -> str:
        """The test column: the measure, the test function's own description, and the rule."""
        named = f"; {describe(self.tester)} (stats.{self.tester.__name__})" if self.tester else ""
        return f"{self.measure}{named}{'; ' + self.rule if self.rule else ''}"


# How a reference that is relative (a fraction of the base's own value) is read, per claim.
RELATIVE = {
    "PTP-3": "sd ratio",
    "PTP-4": "of the base's sharpness",
    "IP-2": "of the base's learning-curve area",
    "IP-3": "of the base's spread",
}


@dataclass(frozen=True)
class Look:
    """A claim at one look: the seeds it used, the look's nominal level, the estimate of the part its verdict
    rests on (``resting_on``) and its interval at that level (the repeated confidence interval: it excludes
    0 exactly where the look's boundary is crossed; at a below-reference look, the interval against the
    reference, ``Part.reference_interval``), and the verdict at that look alone."""

    seeds: int
    level: float
    estimate: float
    low: float
    high: float
    verdict: Verdict
    no_effect: float = 0.0  # the estimate's value at no effect (1 for a ratio)
    reference: float = math.nan  # the reference effect on the claimed side, where the claim has one
    ratio: bool = False

    def text(self) -> str:
        return (
            f"{self.seeds}: {self.estimate:+.4g} [{self.low:+.4g}, {self.high:+.4g}] at level "
            f"{self.level:.2g}, {self.verdict}"
        )


@dataclass(frozen=True)
class ClaimRow:
    """One row of the claims table; the numbers behind the text columns are kept for planning."""

    id: str
    paper: str
    claim: str
    scope: str
    paper_number: str
    measured: str
    n: str
    test: str
    verdict: Verdict
    reason: str
    detectable: str  # the smallest effect the seeds detect with POWER
    seeds_needed: str  # seeds to decide at the observed effect and at the reference effect, with ranges
    setting: str = ""
    base: str = ""
    backbone: str = ""
    estimate: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_claimed: float = math.nan  # at the look the row reports (Decision), against ``level``
    alpha: float = math.nan  # the rule's α (a fixed grid's level; the adaptive design spends it over looks)
    level: float = math.nan  # the nominal level of the look the row reports (α for a fixed grid)
    n_seeds: int = 0
    n_tasks: int = 0
    detectable_effect: float = math.nan
    seeds_needed_observed: float = math.nan
    seeds_needed_reference: float = math.nan
    runs: int = 0
    unconverged: int = 0
    collapsed: int = 0  # collapsed runs among the two sides of a mean comparison
    seconds_per_seed: float = math.nan  # training time of one more seed of every arm the claim needs
    arms: str = ""  # the arms the claim reads, "<setting>/<method>" (+ "@variants": its variant runs too)
    seeds_before: int = 0  # seeds its arms train before those its test reads (the adaptive design's pick)
    plan_effect: float = math.nan  # the limiting part's estimate, positive in the claimed direction
    plan_sd: float = math.nan  # its spread per value
    plan_reference: float = math.nan  # its reference effect (a magnitude)
    plan_values_per_seed: float = 1.0  # values of its test per seed (PTP-3: seed pairs × tasks / 2)
    forest: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # the shown part's estimate and
    # interval in units of its reference effect, positive in the claimed direction (the forest plot)
    arm_seeds: str = ""  # the adaptive design: seeds each arm got, "<arm>=<n>" (decide.annotate)
    seconds: float = math.nan  # the adaptive design: recorded training seconds of the claim's arms
    stopped: str = ""  # the adaptive design: what closed an undecided claim (budget, cap, futility, …)
    trajectory: tuple[Look, ...] = ()  # the shown part at every look its seeds reached (one: a fixed grid)


# --- reading the runs ---------------------------------------------------------------------------


def _number(value: Any) -> float:
    """A recorded number as a float; nan where it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class Runs:
    """The runs of runs.csv as plain records, indexed for paired lookups. ``usable``: status not
    ``failed``; ``main``: not a variant run. ``power``: compute the planning columns (detectable effect,
    seeds needed); the calibration benchmark, which needs only verdicts, turns it off. ``design``: the
    looks of the adaptive design (``stats.Design``); None for a fixed grid."""

    def __init__(self, runs: pd.DataFrame, power: bool = True, design: Design | None = None) -> None:
        columns = [str(c) for c in runs.columns]  # DataFrame.to_dict("records"), without its overhead
        values = zip(*(runs[c].tolist() for c in runs.columns), strict=True)
        self.records = [dict(zip(columns, row, strict=True)) for row in values]
        self.power = power
        self.design = design
        self.backbone = ", ".join(sorted({r["backbone"] for r in self.records}))
        self.by_method: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in self.records:
            self.by_method.setdefault((record["setting"], record["method"]), []).append(record)
        self.objectives = {r["method"]: (r["objective"], r["family"], r["ablation_of"]) for r in self.records}

    def rows(self, setting: str, method: str, variants: bool = False) -> list[dict[str, Any]]:
        """The usable runs of one method in one setting (main runs only unless ``variants``)."""
        rows = self.by_method.get((setting, method), [])
        return [r for r in rows if r["status"] != "failed" and (variants or not r["variant"])]

    def values(
        self, setting: str, method: str, column: str = "report_score", after: int = 0, upto: int | None = None
    ) -> Scores:
        """task → seed → value of one method's usable main runs, for the seeds after ``after`` up to
        ``upto``."""
        out: Scores = {}
        for row in self.rows(setting, method):
            seed = int(row["seed"])
            if not pd.isna(row[column]) and after < seed and (upto is None or seed <= upto):
                out.setdefault(row["task"], {})[seed] = float(row[column])
        return out

    def scopes(self, family: str) -> list[tuple[str, str, list[str]]]:
        """(setting, base, methods of that family) for every setting × base whose base run exists."""
        found: dict[tuple[str, str], set[str]] = {}
        for (setting, method), rows in self.by_method.items():
            record = rows[0]
            if record["family"] == family and any(not r["variant"] for r in rows):
                found.setdefault((setting, record["base"]), set()).add(method)
        return [
            (setting, base, sorted(methods))
            for (setting, base), methods in sorted(found.items())
            if any(not r["variant"] for r in self.by_method.get((setting, base), []))
        ]

    def objective_of(self, method: str) -> dict[str, str]:
        objective, family, ablation_of = self.objectives[method]
        return {"objective": objective, "family": family, "ablation_of": ablation_of}

    def unconverged(self, setting: str, methods: Sequence[str], variants: bool = False) -> tuple[int, int]:
        """(runs, of which not converged) among the usable runs of ``methods`` in ``setting``."""
        rows = [r for method in methods for r in self.rows(setting, method, variants)]
        return len(rows), sum(not r["converged"] for r in rows)

    def side(self, setting: str, methods: Sequence[str]) -> tuple[int, int]:
        """(runs, of which collapsed) among the usable runs of ``methods`` in ``setting``, variant runs
        included: one side of a mean comparison, for the collapse guard."""
        rows = [r for m in methods for r in self.rows(setting, m, variants=True)]
        return len(rows), sum(r["status"] == "collapsed" for r in rows)

    def resolution(self, setting: str, methods: Sequence[str], tasks: Sequence[str]) -> float:
        """The smallest step of a per-seed difference averaged over ``tasks``: one report example of the
        largest report split, over the number of tasks (points); 0 where the sizes are not recorded."""
        sizes = [
            r["report_examples"]
            for m in methods
            for r in self.rows(setting, m)
            if r["task"] in tasks and not pd.isna(r.get("report_examples", math.nan))
        ]
        return 100.0 / max(sizes) / len(tasks) if sizes and tasks else 0.0

    def seconds_per_seed(self, setting: str, methods: Sequence[str], variants: bool = False) -> float:
        """The recorded wall time of one seed of ``methods`` in ``setting``: each method's usable runs'
        total over the seeds it has, summed over the methods (the adaptive design gives them different
        seeds): what each further seed of a claim costs on the machine that trained them. NaN where a run
        did not record it. Each total is ``math.fsum``'s, correctly rounded whatever the order of the runs
        (choice: the figure does not depend on how the rows were gathered)."""
        per_method = []
        for method in methods:
            rows = self.rows(setting, method, variants)
            seconds = [_number(r.get("wall_time_s")) for r in rows]
            if any(math.isnan(s) for s in seconds):
                return math.nan
            if rows:
                per_method.append(math.fsum(seconds) / len({int(r["seed"]) for r in rows}))
        return math.fsum(per_method) if per_method else math.nan

    def learned(self, setting: str, methods: Sequence[str]) -> tuple[int, int]:
        """(runs, of which learned) among the usable main runs of ``methods`` in ``setting``."""
        rows = [r for method in methods for r in self.rows(setting, method)]
        return len(rows), sum(bool(r["learned"]) for r in rows)

    def inits(self, setting: str) -> list[str]:
        return sorted(
            {r["prompt_init"] for (s, _), rows in self.by_method.items() if s == setting for r in rows}
        )


def paired_matrix(treatment: Scores, control: Scores) -> tuple[list[str], list[int], np.ndarray, np.ndarray]:
    """The tasks both arms have, the seeds both arms have in every one of them, and the values as
    (tasks, seeds) arrays."""
    tasks = sorted(set(treatment) & set(control))
    seeds = sorted(set.intersection(*(set(treatment[t]) & set(control[t]) for t in tasks))) if tasks else []
    shape = (len(tasks), len(seeds))  # (0, 0) too: no task, or no seed after a pick
    t = np.array([[treatment[task][s] for s in seeds] for task in tasks], dtype=float).reshape(shape)
    c = np.array([[control[task][s] for s in seeds] for task in tasks], dtype=float).reshape(shape)
    return tasks, seeds, t, c


# --- one part: a test, its verdict and its power --------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One comparison behind a claim row: the test, the claimed direction, the α it is tested at, the
    reference effect (a magnitude in the test's units) and where it comes from, and the paper's number
    (only on the paper's own base). ``seeds_per_unit`` turns the test's values into seeds: 1 for per-seed
    differences, 2 / tasks for PTP-3's seed pairs. ``ratio``: the test is on log ratios. ``resolution``:
    the smallest step of the values (an interval is never narrower). ``values`` / ``seeds``: the per-seed
    differences, for a multi-part claim's joint power. ``label``: the part's name in a multi-part row.
    ``reference_test``: for a reference relative to the base's own value (a fraction r of it), the test
    of treatment − (1 ± r)·base per seed against 0, so the base's estimated value carries its own
    uncertainty into the below-reference verdict."""

    test: TestResult
    direction: Direction
    alpha: float
    reference: float
    claimed: float | None = None
    reference_source: str = "choice"
    seeds_per_unit: float = 1.0
    ratio: bool = False
    resolution: float = 0.0
    values: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()
    label: str = ""
    reference_test: TestResult | None = None

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "greater" else -1.0

    @property
    def p_claimed(self) -> float:
        return self.test.p_greater if self.direction == "greater" else self.test.p_less

    @property
    def p_against(self) -> float:
        return self.test.p_less if self.direction == "greater" else self.test.p_greater

    @property
    def p_below(self) -> float:
        """One-sided p that the effect is smaller than the reference on the claimed side."""
        if self.reference_test is not None:
            return self.reference_test.p_below(0.0, self.direction)
        return self.test.p_below(self.sign * self.reference, self.direction)

    @property
    def decidable(self) -> bool:
        return not math.isnan(self.p_claimed)

    @property
    def tied(self) -> bool:
        return self.test.n >= 2 and self.test.sd == 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The 1 − 2α interval, widened where it is narrower than the mean's resolution (one value's
        resolution over the number of values)."""
        test = self.test
        half = max((test.high - test.low) / 2, self.resolution / max(1, test.n) / 2)
        return test.estimate - half, test.estimate + half

    @property
    def beyond_claim(self) -> bool:
        """The interval's bound on the claimed side excludes the paper's number."""
        low, high = self.interval
        if self.claimed is None or math.isnan(high):
            return False
        return high < self.claimed if self.direction == "greater" else low > self.claimed

    @property
    def excludes_zero(self) -> tuple[bool, bool]:
        """(the interval lies on the claimed side of 0, on the other side)."""
        low, high = self.interval
        claimed_side = low > 0 if self.direction == "greater" else high < 0
        other_side = high < 0 if self.direction == "greater" else low > 0
        return claimed_side, other_side

    @property
    def reference_interval(self) -> tuple[float, float]:
        """The interval the below-reference verdict reads, on the effect's scale: the row's interval, or
        for a reference relative to the base the 1 − 2α interval of treatment − (1 ± r)·base shifted by
        the reference (centred on the estimate; the base's uncertainty is in it, and it excludes the
        reference exactly where that test is significant)."""
        if self.reference_test is None:
            return self.interval
        shift = self.sign * self.reference
        return self.reference_test.low + shift, self.reference_test.high + shift

    @property
    def below_reference(self) -> bool:
        """An effect of the reference size is ruled out: significant at α, and the interval against the
        reference (widened to the resolution for an absolute reference) excludes it."""
        if not self.p_below < self.alpha:
            return False
        low, high = self.reference_interval
        return high < self.reference if self.direction == "greater" else low > -self.reference

    def read_by(self, verdict: Verdict) -> tuple[float, float]:
        """The interval ``verdict`` reads: against the reference for ``below reference``, else the test's."""
        return self.reference_interval if verdict == "below reference" else self.interval

    def bounds(self, interval: tuple[float, float], digits: int = 2) -> str:
        """An interval as the page prints it: "[low, high]"."""
        return f"[{self.text(interval[0], digits)}, {self.text(interval[1], digits)}]"

    def below_text(self) -> str:
        """The reason of a below-reference verdict: the interval it read and the reference."""
        relative = self.reference_test is not None
        against = " against the reference (the base's uncertainty in it)" if relative else ""
        return (
            f"the interval{against} {self.bounds(self.reference_interval)} excludes the reference effect "
            f"{self.reference_text()}"
        )

    def shown(self, value: float) -> float:
        """A value of the test's scale as the row shows it (ratios: exp of the log; a log bound too large
        for a float, as a strict look's interval on two seed pairs can be, is an infinite ratio)."""
        if not self.ratio:
            return value
        with np.errstate(over="ignore"):
            return float(np.exp(value))

    def text(self, value: float, digits: int = 2) -> str:
        """A value of the test's scale as the page prints it: a difference signed; a ratio in fixed point
        from 0.01 to 1000, else in scientific notation (a strict look's interval on a few seeds can span
        dozens of orders of magnitude), ∞ past a float."""
        if not self.ratio:
            return f"{value:+.{digits}f}"
        shown = self.shown(value)
        if math.isinf(shown):
            return "∞"
        return f"{shown:.{digits}f}" if shown == 0 or 0.01 <= shown < 1000 else f"{shown:.1e}"

    def reference_text(self) -> str:
        value = self.text(-self.reference if self.ratio else self.sign * self.reference)
        source = "choice" if self.reference_source == "choice" else "the paper's number, on another base"
        return f"{value} ({source})"

    def verdict(self) -> tuple[Verdict, str]:
        alpha = f"α = {self.alpha:.3g}"
        if self.tied:
            return "inconclusive", (
                f"tied: all {self.test.n} values equal {self.text(self.test.estimate)}, no spread to test"
            )
        if not self.decidable:
            seeds = self.test.n * self.seeds_per_unit
            return "inconclusive", f"too few seeds ({seeds:g} per task give no test)"
        claimed_side, other_side = self.excludes_zero
        if self.p_against < self.alpha and other_side:
            return "contradicted", f"significant the other way: p = {self.p_against:.2g} < {alpha}"
        if self.beyond_claim:
            bound = self.interval[1] if self.direction == "greater" else self.interval[0]
            return "smaller than claimed", (
                f"the interval's bound {self.text(bound)} excludes the paper's {self.claimed:+.2f}"
            )
        if self.p_claimed < self.alpha and claimed_side:
            return "reproduced", f"p = {self.p_claimed:.2g} < {alpha}"
        if self.below_reference:
            return "below reference", self.below_text()
        return "inconclusive", f"too few seeds (p = {self.p_claimed:.2g}, {alpha})"


def _seeds(value: float) -> str:
    if math.isnan(value):
        return "—"
    return f"> {MAX_SEEDS}" if math.isinf(value) else f"{int(value)}"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    return f"{seconds / 3600:.1f} h"


def _cost(seeds: float, evidence: Evidence) -> str:
    """`` (≈ 48 min)``: the training time of that many tested seeds, and of the seeds before them, at the
    grid's recorded cost per seed."""
    if not (math.isfinite(seeds) and math.isfinite(evidence.seconds_per_seed)):
        return ""
    return f" (≈ {_duration(seeds * evidence.seconds_per_seed + evidence.seconds_before)})"


def _in_seeds(part: Part, units: float) -> float:
    return float(math.ceil(units * part.seeds_per_unit - 1e-9)) if math.isfinite(units) else units


def seeds_needed(parts: Sequence[Part], effects: Sequence[float], sd_scale: float = 1.0) -> float:
    """Seeds for the claim's own rule to hold with ``POWER`` when each part's true effect is ``effects``
    (magnitudes in the claimed direction), at the observed spreads × ``sd_scale``: the noncentral t for
    one part, the intersection-union simulation for several (``stats.iut_seeds_needed``)."""
    if len(parts) == 1:
        part = parts[0]
        if not effects[0] > 0:
            return math.inf
        return _in_seeds(part, t_seeds_needed(effects[0], part.test.sd * sd_scale, part.alpha))
    common = sorted(set.intersection(*(set(part.seeds) for part in parts)))
    if len(common) < 3:
        return math.nan
    matrix = np.array([[dict(zip(p.seeds, p.values, strict=True))[s] for p in parts] for s in common])
    cov = np.cov(matrix, rowvar=False) * sd_scale**2
    return _in_seeds(parts[0], iut_seeds_needed(effects, cov, parts[0].alpha))


def _needed_text(parts: Sequence[Part], effects: Sequence[float]) -> tuple[str, float]:
    """Seeds needed at ``effects`` with the range the spread's uncertainty gives: ``14 (9–25)``."""
    point = seeds_needed(parts, effects)
    first = parts[0]
    low_sd, high_sd = spread_range(first.test.n, first.test.sd)
    if math.isnan(point) or math.isnan(low_sd):
        return _seeds(point), point
    low = seeds_needed(parts, effects, low_sd / first.test.sd)
    high = seeds_needed(parts, effects, high_sd / first.test.sd)
    return f"{_seeds(point)} ({_seeds(low)}–{_seeds(high)})", point


def _power_text(
    parts: Sequence[Part], claim: Claim, evidence: Evidence
) -> tuple[str, str, float, float, float]:
    """(detectable, seeds needed with their training time, detectable value, tested seeds for the observed
    effect, for the reference). No number for an observed effect in the wrong direction or not yet
    estimated (no tested seed); the seeds that picked the best PTP variant are named beside the tested ones,
    and their time is counted."""
    first = parts[0]
    detectable = [t_detectable(p.test.n, p.test.sd, p.alpha) for p in parts]
    worst = max(detectable, key=lambda d: -math.inf if math.isnan(d) else d)
    if math.isnan(worst):
        text = "none (too few seeds for the test)"
    elif first.ratio:
        text = f"sd ratio ≤ {math.exp(-worst):.2f}"
    else:
        text = f"{'±' if len(parts) == 1 else 'each part ≥ '}{worst:.2f}"
    observed = [p.sign * p.test.estimate for p in parts]
    labels = [p.label or claim.id for p in parts]
    unestimated = [label for label, effect in zip(labels, observed, strict=True) if math.isnan(effect)]
    wrong = [label for label, effect in zip(labels, observed, strict=True) if effect <= 0]
    picked = f" + {evidence.seeds_before} that pick the variant" if evidence.seeds_before else ""
    if unestimated:
        obs_text, need_obs = f"— ({', '.join(unestimated)} not estimated yet)", math.nan
    elif wrong:
        obs_text, need_obs = f"— ({', '.join(wrong)} observed the other way)", math.nan
    else:
        obs_text, need_obs = _needed_text(parts, observed)
        obs_text += picked + _cost(need_obs, evidence)
    ref_text, need_ref = _needed_text(parts, [p.reference for p in parts])
    ref_text += picked + _cost(need_ref, evidence)
    ref = f"{claim.reference:g}" + (f" ({RELATIVE[claim.id]})" if claim.id in RELATIVE else "")
    seeds = (
        f"{obs_text} for the observed effect; {ref_text} for {ref} "
        f"({claim.reference_source}); {POWER:.0%} power for the whole rule, range from the spread's "
        f"uncertainty"
    )
    return (
        f"{text} at {POWER:.0%} power",
        seeds,
        first.shown(-worst) if first.ratio else worst,
        need_obs,
        need_ref,
    )


def _interval(part: Part, digits: int) -> str:
    test = part.test
    if math.isnan(test.estimate):
        return "—"
    value = part.text(test.estimate, digits)
    if math.isnan(test.low):
        return value
    text = f"{value} {part.bounds(part.interval, digits)}"
    if part.reference_test is None or math.isnan(part.reference_test.low):
        return text
    against = part.bounds(part.reference_interval, digits)
    return f"{text}; against the reference {part.reference_text()}, the base's uncertainty in it: {against}"


@dataclass
class Scope:
    setting: str
    base: str
    backbone: str
    note: str = ""

    def text(self) -> str:
        return f"{self.setting}, base {self.base}, {self.backbone}" + (f"; {self.note}" if self.note else "")


@dataclass(frozen=True)
class Evidence:
    """What a measured row rests on besides its test: the paired tasks and seeds, the runs of its arms
    (how many, not converged), for a mean comparison its two sides as (runs, collapsed) for the collapse
    guard (None where the row is not a mean comparison), the recorded cost of one more seed, the arms
    the claim reads (``ClaimRow.arms``: what the adaptive design gives seeds to), and the seeds those arms
    train before the ones the test reads (the adaptive design's pick of the best PTP variant) with the
    recorded time of those seeds."""

    tasks: Sequence[str]
    seeds: Sequence[int]
    runs: tuple[int, int]
    sides: tuple[tuple[int, int], tuple[int, int]] | None = None
    seconds_per_seed: float = math.nan
    arms: tuple[str, ...] = ()
    seeds_before: int = 0
    seconds_before: float = 0.0

    def unguarded(self, verdict: Verdict) -> str:
        """Why the collapse guard withholds ``verdict`` (module docstring), or "" when it does not."""
        if self.sides is None or verdict == "inconclusive":
            return ""
        name, (runs, collapsed) = (
            ("treatment", self.sides[0]) if verdict in FAVOURS_TREATMENT else ("base", self.sides[1])
        )
        if collapsed:
            return f"{collapsed} of the {name} side's {runs} runs collapsed"
        if runs < GUARD_RUNS:
            return (
                f"the {name} side has {runs} runs; {GUARD_RUNS} without a collapse are needed to see a "
                f"{COLLAPSE_RISK:.0%} collapse rate"
            )
        return ""

    @property
    def collapsed(self) -> int:
        return sum(side[1] for side in self.sides) if self.sides else 0


def forest(part: Part, verdict: Verdict) -> tuple[float, float, float]:
    """The part's estimate and the interval ``verdict`` reads (``Part.read_by``) in units of its reference
    effect, positive in the claimed direction (nan where the reference is not a positive number)."""
    if not part.reference > 0:
        return math.nan, math.nan, math.nan
    low, high = part.read_by(verdict)
    ends = (low, high) if part.direction == "greater" else (high, low)
    return tuple(part.sign * value / part.reference for value in (part.test.estimate, *ends))


def arm_names(setting: str, methods: Sequence[str], variants: bool = False) -> tuple[str, ...]:
    """The arms a claim reads, as ``ClaimRow.arms`` names them: ``<setting>/<method>`` for its main runs
    and, with ``variants``, ``<setting>/<method>@variants`` for its variant runs too."""
    kinds = (False, True) if variants else (False,)
    return tuple(arm_name(setting, method, kind) for method in methods for kind in kinds)


def _row(
    claim: Claim,
    scope: Scope,
    parts: Sequence[Part],
    measured: str,
    evidence: Evidence,
    decision: Decision,
    power: bool,
    paper_number: str = "—",
) -> ClaimRow:
    """A measured row: ``parts`` on every seed at the rule's α (for power and planning), ``measured`` and
    the numbers from the look ``decision`` reports. It is ``inconclusive`` when it rests on a run that
    did not converge, or (a mean comparison) when the collapse guard withholds its verdict (module
    docstring)."""
    verdict_, reason = decision.verdict, decision.reason
    if power:
        detectable, seeds_text, worst, need_obs, need_ref = _power_text(parts, claim, evidence)
    else:
        detectable, seeds_text, worst, need_obs, need_ref = "—", "—", math.nan, math.nan, math.nan
    first = decision.part
    total, unconverged = evidence.runs
    seeds = len(evidence.seeds)
    look = f" (the verdict's look: the first {decision.seeds})" if decision.seeds < seeds else ""
    n = f"{seeds} seeds{look} × {len(evidence.tasks)} task(s); {total} runs"
    guard = evidence.unguarded(verdict_)
    if unconverged:
        verdict_, reason = "inconclusive", f"not converged: {unconverged} of {total} runs"
    elif guard:
        verdict_, reason = "inconclusive", f"collapse guard: {guard} (the test alone: {verdict_}; {reason})"
    low, high = first.read_by(verdict_)
    limiting = min(parts, key=lambda part: part.sign * part.test.estimate if part.decidable else math.inf)
    return ClaimRow(
        id=claim.id,
        paper=claim.paper,
        claim=claim.text,
        scope=scope.text(),
        paper_number=paper_number,
        measured=measured,
        n=n,
        test=claim.test,
        verdict=verdict_,
        reason=reason,
        detectable=detectable,
        seeds_needed=seeds_text,
        setting=scope.setting,
        base=scope.base,
        backbone=scope.backbone,
        estimate=first.shown(first.test.estimate),
        low=first.shown(low),
        high=first.shown(high),
        p_claimed=first.p_claimed,
        alpha=parts[0].alpha,
        level=decision.level,
        n_seeds=len(evidence.seeds),
        n_tasks=len(evidence.tasks),
        detectable_effect=worst,
        seeds_needed_observed=need_obs,
        seeds_needed_reference=need_ref,
        runs=total,
        unconverged=unconverged,
        collapsed=evidence.collapsed,
        seconds_per_seed=evidence.seconds_per_seed,
        arms=" ".join(evidence.arms),
        seeds_before=evidence.seeds_before,
        plan_effect=limiting.sign * limiting.test.estimate,
        plan_sd=limiting.test.sd,
        plan_reference=limiting.reference,
        plan_values_per_seed=1 / limiting.seeds_per_unit,
        forest=forest(first, verdict_),
        trajectory=decision.trajectory,
    )


def _missing(claim: Claim, needs: str) -> ClaimRow:
    return ClaimRow(
        claim.id,
        claim.paper,
        claim.text,
        "not in this profile",
        "—",
        f"not measured: needs {needs}",
        "0",
        claim.test,
        "inconclusive",
        "not measured",
        "—",
        "—",
    )


def gain_part(
    treatment: Scores,
    control: Scores,
    direction: Direction,
    alpha: float,
    reference: float,
    claimed: float | None = None,
    reference_source: str = "choice",
    resolution: float = 0.0,
    label: str = "",
    relative: bool = False,
    upto: int | None = None,
) -> tuple[Part, list[str], list[int]]:
    """The paired t part of treatment − control, per seed averaged over the tasks both arms have;
    ``relative``: ``reference`` is a fraction r of the base's mean value on those seeds and tasks, tested
    as treatment − (1 ± r)·base (``Part.reference_test``); ``upto``: only the first that many paired
    seeds (a look of the adaptive design)."""
    tasks, seeds, t, c = paired_matrix(treatment, control)
    seeds, t, c = seeds[:upto], t[:, :upto], c[:, :upto]
    diffs = (t - c).mean(axis=0) if tasks else np.array([])
    reference_test = None
    if relative:
        sign = 1.0 if direction == "greater" else -1.0
        shifted = (t - (1 + sign * reference) * c).mean(axis=0) if tasks else np.array([])
        reference_test = paired_t(shifted, alpha)
        reference = reference * abs(float(c.mean())) if c.size else math.nan
    part = Part(
        paired_t(diffs, alpha),
        direction,
        alpha,
        reference,
        claimed,
        reference_source,
        resolution=resolution,
        values=tuple(float(d) for d in diffs),
        seeds=tuple(seeds),
        label=label,
        reference_test=reference_test,
    )
    return part, tasks, seeds


# --- the claims -----------------------------------------------------------------------------------


def best_variant(runs: Runs, setting: str, variants: Sequence[str], upto: int | None = None) -> str:
    """The variant with the highest mean selection-split score over the scope's tasks, on the seeds up to
    ``upto`` (choice; ties: the first name in sorted order)."""

    def mean_select(method: str) -> float:
        per_task = runs.values(setting, method, "select_score", upto=upto)
        means = [np.mean(list(seeds.values())) for seeds in per_task.values() if seeds]
        return float(np.mean(means)) if means else -math.inf

    return max(sorted(variants), key=mean_select)


@dataclass(frozen=True)
class Best:
    """The best PTP variant of a scope, as its rows test it (module docstring): the variant, the level,
    the scope, and the seeds that picked it, which the tests leave out (0: a fixed grid, or a single
    variant, whose test reads every seed at α/k)."""

    variant: str
    alpha: float
    scope: Scope
    skip: int
    seconds_per_seed: float  # one more tested seed: every variant and the base, or after a pick the two
    seconds_before: float  # the seeds that picked it, of every variant and the base (0: no pick)

    def evidence(
        self,
        runs: Runs,
        tasks: Sequence[str],
        seeds: Sequence[int],
        sides: tuple[tuple[int, int], tuple[int, int]] | None = None,
    ) -> Evidence:
        """The evidence of a row that tests the variant against its base on ``tasks`` × ``seeds``."""
        setting, arms = self.scope.setting, [self.variant, self.scope.base]
        return Evidence(
            tasks,
            seeds,
            runs.unconverged(setting, arms),
            sides,
            self.seconds_per_seed,
            arm_names(setting, arms),
            self.skip,
            self.seconds_before,
        )


def best_of(runs: Runs, setting: str, base: str, variants: Sequence[str]) -> Best:
    k, every = len(variants), runs.seconds_per_seed(setting, [*variants, base])
    if runs.design is None or k == 1:  # one variant: nothing is picked
        best = best_variant(runs, setting, variants)
        note = f"best variant {best} of {k} (α/{k})"
        return Best(best, ALPHA / k, Scope(setting, base, runs.backbone, note), 0, every, 0.0)
    best = best_variant(runs, setting, variants, upto=PICK_SEEDS)
    note = f"best variant {best} of {k}, picked on seeds 1–{PICK_SEEDS}, tested on the later seeds (α)"
    scope = Scope(setting, base, runs.backbone, note)
    after = runs.seconds_per_seed(setting, [best, base])
    return Best(best, ALPHA, scope, PICK_SEEDS, after, PICK_SEEDS * every)


def ptp_gain(claim: Claim, runs: Runs, mi_checks: dict[str, Any] | None, setting_name: str) -> list[ClaimRow]:
    """PTP-1/2: the best variant's gain over its base, per base that ran PTP variants in ``setting_name``."""
    rows = []
    for setting, base, variants in runs.scopes(PTP):
        if setting != setting_name:
            continue
        pick = best_of(runs, setting, base, variants)
        best, alpha, scope = pick.variant, pick.alpha, pick.scope
        number = paper_numbers.difference("PTP", setting, base)
        treatment = runs.values(setting, best, after=pick.skip)
        at = functools.partial(
            gain_part,
            treatment,
            runs.values(setting, base, after=pick.skip),
            "greater",
            reference=claim.reference,
            claimed=number,
            reference_source=claim.reference_source,
            resolution=runs.resolution(setting, [best, base], sorted(treatment)),
        )
        part, tasks, seeds = at(alpha=alpha)
        decision = sequential(one_part(at), first_verdict, len(seeds), alpha, runs.design)
        if number is not None:
            scope.note += (
                f"; the paper's {number:+.2f} is its average over its own tasks and backbone, "
                f"measured here on {', '.join(tasks)} with {runs.backbone}"
            )
        evidence = pick.evidence(
            runs, tasks, seeds, (runs.side(setting, variants), runs.side(setting, [base]))
        )
        paper = "—" if number is None else f"{number:+.2f}"
        measured = _interval(decision.part, 2)
        rows.append(_row(claim, scope, [part], measured, evidence, decision, runs.power, paper))
    return rows


def each_ptp_scope(row: Callable[[Claim, Runs, str, str, Sequence[str]], ClaimRow]) -> Measure:
    """A measure with one row per (setting, base) where PTP variants and their base ran."""
    return lambda claim, runs, mi_checks: [row(claim, runs, *scope) for scope in runs.scopes(PTP)]


def ptp_stability(claim: Claim, runs: Runs, setting: str, base: str, variants: Sequence[str]) -> ClaimRow:
    pick = best_of(runs, setting, base, variants)
    best, alpha, scope = pick.variant, pick.alpha, pick.scope
    tasks, seeds, t, c = paired_matrix(
        runs.values(setting, best, after=pick.skip), runs.values(setting, base, after=pick.skip)
    )

    def at(upto: int | None, level: float) -> list[Part]:
        test = dispersion_test(t[:, :upto], c[:, :upto], level)
        reference = abs(math.log(claim.reference))
        return [Part(test, "less", level, reference, seeds_per_unit=2 / max(1, len(tasks)), ratio=True)]

    decision = sequential(at, first_verdict, len(seeds), alpha, runs.design)
    shown = decision.part
    per_task = "; ".join(
        f"{task} {np.std(x[: decision.seeds], ddof=1):.2f} vs {np.std(y[: decision.seeds], ddof=1):.2f}"
        for task, x, y in zip(tasks, t, c, strict=True)
        if decision.seeds > 1
    )
    measured = (
        "—"
        if math.isnan(shown.test.estimate)
        else f"spread ratio {_interval(shown, 2)} (sd per task, variant vs base: {per_task})"
    )
    evidence = pick.evidence(runs, tasks, seeds)
    return _row(claim, scope, at(None, alpha), measured, evidence, decision, runs.power)


def ptp_sharpness(claim: Claim, runs: Runs, setting: str, base: str, variants: Sequence[str]) -> ClaimRow:
    pick = best_of(runs, setting, base, variants)
    best, alpha, scope = pick.variant, pick.alpha, pick.scope
    if not runs.values(setting, best, "sharpness") or not runs.values(setting, base, "sharpness"):
        return _missing(claim, f"landscapes of {base} and {best} in {setting}")
    treat = runs.values(setting, best, "sharpness", after=pick.skip)  # none yet: too few seeds after the pick
    control = runs.values(setting, base, "sharpness", after=pick.skip)
    at = functools.partial(gain_part, treat, control, "less", reference=claim.reference, relative=True)
    part, tasks, seeds = at(alpha=alpha)
    decision = sequential(one_part(at), first_verdict, len(seeds), alpha, runs.design)
    evidence = pick.evidence(runs, tasks, seeds)  # its cost per seed: training only, landscapes not counted
    return _row(claim, scope, [part], _interval(decision.part, 4), evidence, decision, runs.power)


def combine(parts: Sequence[Part]) -> tuple[Verdict, str]:
    """All parts must hold (intersection-union: reproduced only when every part is significant); the claim
    is contradicted when any part is significantly the wrong way after Holm's correction, and below the
    reference when any part's effect is significantly below it after Holm's correction (the claim needs
    every part at the reference size)."""
    tied = [part.label for part in parts if part.tied]
    if tied:
        return "inconclusive", f"tied: {', '.join(tied)} has no spread to test"
    if not parts or not all(part.decidable for part in parts):
        return "inconclusive", "too few seeds (some part has no test)"
    alpha = parts[0].alpha
    against = holm([part.p_against for part in parts])
    worst = int(np.argmin(against))
    if against[worst] < alpha:
        return "contradicted", (
            f"{parts[worst].label} significant the other way: Holm-adjusted p = {against[worst]:.2g} < "
            f"α = {alpha:g}"
        )
    if all(part.p_claimed < alpha for part in parts):
        return "reproduced", f"every part p < α = {alpha:g} (largest {max(p.p_claimed for p in parts):.2g})"
    below = holm([part.p_below for part in parts])
    lowest = int(np.argmin(below))
    if below[lowest] < alpha:
        return "below reference", (
            f"{parts[lowest].label}: {parts[lowest].below_text()} (Holm-adjusted p = {below[lowest]:.2g})"
        )
    undecided = [part.label for part in parts if part.p_claimed >= alpha]
    return "inconclusive", f"too few seeds ({', '.join(undecided)} not yet significant)"


def one_part(at: Callable[..., tuple[Part, list[str], list[int]]]) -> Callable[[int, float], list[Part]]:
    """A one-part rule's parts at a look: ``at(alpha=, upto=)`` builds its part."""
    return lambda upto, level: [at(alpha=level, upto=upto)[0]]


def first_verdict(parts: Sequence[Part]) -> tuple[Verdict, str]:
    """A one-part rule's verdict."""
    return parts[0].verdict()


@dataclass(frozen=True)
class Decision:
    """A rule's verdict over the looks (``sequential``), its trajectory, and the look the row reports:
    the one that gave the verdict, else the last one reached (before the first look: every seed at the
    first look's level), with its seed count, nominal level, parts, and the part the verdict rests on
    (``resting_on``), so that the interval a row shows is the one its verdict read."""

    verdict: Verdict
    reason: str
    trajectory: tuple[Look, ...]
    seeds: int
    level: float
    parts: tuple[Part, ...]
    part: Part


def resting_on(parts: Sequence[Part], verdict: Verdict) -> int:
    """The index of the part a verdict rests on (one part: it; several, as ``combine`` judges them): the
    part most significantly the wrong way for ``contradicted``, the one most significantly below its
    reference for ``below reference``, else the one furthest from significance (the weakest, which every
    part must beat for ``reproduced``)."""
    if verdict == "contradicted":
        values, pick = [part.p_against for part in parts], min
    elif verdict == "below reference":
        values, pick = [part.p_below for part in parts], min
    else:
        values, pick = [part.p_claimed for part in parts], max
    tested = [(value, k) for k, value in enumerate(values) if not math.isnan(value)]
    return pick(tested)[1] if tested else 0


def _look(seeds: int, level: float, part: Part, verdict: Verdict) -> Look:
    """A look at ``part``, with the interval its verdict read (``ClaimRow.low`` / ``high`` likewise)."""
    values = [part.shown(value) for value in (part.test.estimate, *part.read_by(verdict))]
    reference = part.sign * part.reference if part.reference > 0 else math.nan
    return Look(seeds, level, *values, verdict, part.shown(0.0), part.shown(reference), part.ratio)


def sequential(
    parts_at: Callable[[int, float], Sequence[Part]],
    rule: Callable[[Sequence[Part]], tuple[Verdict, str]],
    n: int,
    alpha: float,
    design: Design | None,
) -> Decision:
    """The verdict of a rule at α over n paired seeds, and the claim's trajectory over the looks.
    ``parts_at(upto, level)``: the rule's parts on the first ``upto`` seeds at nominal ``level``; ``rule``:
    their verdict. Without a design (a fixed grid): one look at every seed. With one (the adaptive design,
    ``stats.Design``): the first look whose test decides at its nominal level, each look using the first
    that many seeds; later seeds cannot undo it (they are still shown in the trajectory, which follows
    the part the verdict rests on)."""
    looks = [(n, alpha)] if design is None else design.reached(n, alpha)
    if not looks:
        level = design.levels(alpha)[0]
        parts = tuple(parts_at(n, level))
        reason = f"too few seeds ({n}; the first look is at {design.looks[0]})"
        return Decision("inconclusive", reason, (), n, level, parts, parts[0])
    judged = [(seeds, level, tuple(parts_at(seeds, level))) for seeds, level in looks]
    verdicts = [rule(parts) for _, _, parts in judged]
    reported = next(
        (k for k, (verdict, _) in enumerate(verdicts) if verdict != "inconclusive"), len(looks) - 1
    )
    seeds, level, parts = judged[reported]
    verdict, reason = verdicts[reported]
    k = resting_on(parts, verdict)
    trajectory = tuple(
        _look(g, a, look_parts[k], look_verdict)
        for (g, a, look_parts), (look_verdict, _) in zip(judged, verdicts, strict=True)
    )
    if design is not None:
        looks_text = ", ".join(map(str, design.looks))
        reason = f"{reason}; look at {seeds} seeds, level {level:.2g} (looks at {looks_text})"
    return Decision(verdict, reason, trajectory, seeds, level, parts, parts[k])


def multi_part_row(
    claim: Claim,
    runs: Runs,
    setting: str,
    base: str,
    arms: Sequence[tuple[str, Scores, Scores]],
    treatments: Sequence[str],
    controls: Sequence[str],
) -> ClaimRow:
    """A claim whose every part must hold: one paired-t part per (label, treatment, control); the
    methods on each side, for the collapse guard."""
    methods = [*treatments, *controls]

    def at(upto: int | None, alpha: float) -> tuple[list[Part], list[str], list[int]]:
        parts, tasks, seeds = [], [], []
        for label, treatment, control in arms:
            resolution = runs.resolution(setting, methods, sorted(treatment))
            part, tasks, seeds = gain_part(
                treatment,
                control,
                "greater",
                alpha,
                claim.reference,
                resolution=resolution,
                label=label,
                upto=upto,
            )
            parts.append(part)
        return parts, tasks, seeds

    parts, tasks, seeds = at(None, ALPHA)
    decision = sequential(lambda upto, level: at(upto, level)[0], combine, len(seeds), ALPHA, runs.design)
    texts = [f"{part.label}: {_interval(part, 2)}" for part in decision.parts]
    evidence = Evidence(
        tasks,
        seeds,
        runs.unconverged(setting, methods),
        (runs.side(setting, treatments), runs.side(setting, controls)),
        runs.seconds_per_seed(setting, methods),
        arm_names(setting, methods),
    )
    return _row(
        claim,
        Scope(setting, base, runs.backbone),
        parts,
        "; ".join(texts),
        evidence,
        decision,
        runs.power,
    )


def ptp_variants(claim: Claim, runs: Runs, setting: str, base: str, variants: Sequence[str]) -> ClaimRow:
    control = runs.values(setting, base)
    arms = [(v.removeprefix(base + "-"), runs.values(setting, v), control) for v in variants]
    return multi_part_row(claim, runs, setting, base, arms, variants, [base])


def init_spread(runs: Runs, setting: str, method: str) -> Scores:
    """Per task and seed, the sd (ddof 1) of the report score across prompt inits: the main run's init
    and every variant run of the method that changes ``prompt_init`` (IP-3). Collapsed runs count; a
    (task, seed) missing an init (e.g. a failed run) is left out."""
    rows = runs.by_method.get((setting, method), [])
    main_inits = {r["prompt_init"] for r in rows if not r["variant"]}
    rows = [r for r in rows if not r["variant"] or r["prompt_init"] not in main_inits]
    inits = {r["prompt_init"] for r in rows}
    by_seed: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in rows:
        by_seed.setdefault((row["task"], int(row["seed"])), []).append(row)
    out: Scores = {}
    for (task, seed), group in sorted(by_seed.items()):
        usable = [r for r in group if r["status"] != "failed"]
        if len(inits) >= 2 and len(usable) == len(inits) == len({r["prompt_init"] for r in usable}):
            out.setdefault(task, {})[seed] = float(np.std([r["report_score"] for r in usable], ddof=1))
    return out


def infoprompt_scopes(runs: Runs) -> list[tuple[str, str, str, list[str]]]:
    """(setting, base, full InfoPrompt, its ablations) per setting × base where both InfoPrompt and its
    base ran."""
    scopes = []
    for setting, base, methods in runs.scopes(INFOPROMPT):
        full = [m for m in methods if not runs.objective_of(m)["ablation_of"]]
        if full:
            objective = runs.objective_of(full[0])["objective"]
            ablations = [m for m in methods if runs.objective_of(m)["ablation_of"] == objective]
            scopes.append((setting, base, full[0], ablations))
    return scopes


def each_infoprompt_scope(row: Callable[[Claim, Runs, str, str, str, list[str]], ClaimRow]) -> Measure:
    """A measure with one row per (setting, base) where InfoPrompt and its base ran."""
    return lambda claim, runs, mi_checks: [row(claim, runs, *scope) for scope in infoprompt_scopes(runs)]


def infoprompt_gain(
    claim: Claim,
    runs: Runs,
    setting: str,
    base: str,
    full: str,
    ablations: list[str],
    column: str,
    digits: int,
) -> ClaimRow:
    """IP-1 (``report_score``) and IP-2 (``learning_area``): full InfoPrompt against its base."""
    treat, control = runs.values(setting, full, column), runs.values(setting, base, column)
    resolution = runs.resolution(setting, [full, base], sorted(treat)) if claim.id == "IP-1" else 0.0

    at = functools.partial(
        gain_part,
        treat,
        control,
        "greater",
        reference=claim.reference,
        resolution=resolution,
        relative=claim.id in RELATIVE,
    )
    part, tasks, seeds = at(alpha=ALPHA)
    decision = sequential(one_part(at), first_verdict, len(seeds), ALPHA, runs.design)
    measured = _interval(decision.part, digits)
    if claim.id == "IP-2":
        total, learned = runs.learned(setting, [full, base])
        measured += f"; did not learn: {total - learned} of {total} runs"
    evidence = Evidence(
        tasks,
        seeds,
        runs.unconverged(setting, [full, base]),
        (runs.side(setting, [full]), runs.side(setting, [base])),
        runs.seconds_per_seed(setting, [full, base]),
        arm_names(setting, [full, base]),
    )
    return _row(claim, Scope(setting, base, runs.backbone), [part], measured, evidence, decision, runs.power)


def infoprompt_ablations(
    claim: Claim, runs: Runs, setting: str, base: str, full: str, ablations: list[str]
) -> ClaimRow:
    """IP-4: full InfoPrompt against each of its ablations (both needed)."""
    if len(ablations) < 2:
        return _missing(claim, f"both ablations of {full} in {setting}")
    arms = [
        (f"vs {a.removeprefix(base + '-')}", runs.values(setting, full), runs.values(setting, a))
        for a in ablations
    ]
    return multi_part_row(claim, runs, setting, base, arms, [full], ablations)


def infoprompt_init(
    claim: Claim, runs: Runs, setting: str, base: str, full: str, ablations: list[str]
) -> ClaimRow:
    treat, control = init_spread(runs, setting, full), init_spread(runs, setting, base)
    if not treat or not control:
        return _missing(claim, f"variant runs crossing prompt init with {full} and {base} in {setting}")
    at = functools.partial(gain_part, treat, control, "less", reference=claim.reference, relative=True)
    part, tasks, seeds = at(alpha=ALPHA)
    decision = sequential(one_part(at), first_verdict, len(seeds), ALPHA, runs.design)
    inits = ", ".join(runs.inits(setting))
    evidence = Evidence(
        tasks,
        seeds,
        runs.unconverged(setting, [full, base], variants=True),
        seconds_per_seed=runs.seconds_per_seed(setting, [full, base], variants=True),
        arms=arm_names(setting, [full, base], variants=True),
    )
    scope = Scope(setting, base, runs.backbone, f"inits {inits}")
    return _row(claim, scope, [part], _interval(decision.part, 2), evidence, decision, runs.power)


def _check_text(check: dict[str, Any]) -> str:
    steps = f" after {check['steps']} steps" if check.get("steps") is not None else ""
    return f"{check['name']}{steps} (measured {check['measured']}, threshold {check['threshold']})"


def mi_check_rows(claim: Claim, runs: Runs, mi_checks: dict[str, Any] | None) -> list[ClaimRow]:
    """IP-5 from the MI-convergence study: reproduced when both parts ran, every check passed and every
    negative control failed; a control that passed or a skipped part makes it inconclusive; a check that
    failed with every control behaving contradicts it. The reason names the check or control and the
    steps it was judged after; none without the study."""
    if mi_checks is None:
        return []
    checks = [c for c in mi_checks["checks"] if c["role"] == "check"]
    controls = [c for c in mi_checks["checks"] if c["role"] == "control"]
    failed = [c for c in checks if not c["passed"]]
    passing_controls = [c for c in controls if c["passed"]]
    skipped = [part for part in ("synthetic", "real") if mi_checks.get(part, {}).get("skipped")]
    measured = (
        f"{len(checks) - len(failed)} of {len(checks)} checks passed; "
        f"{len(controls) - len(passing_controls)} of {len(controls)} negative controls failed"
    )
    verdict: Verdict
    if skipped:
        verdict, reason = "inconclusive", f"part skipped: {', '.join(skipped)}"
    elif not controls:
        verdict, reason = "inconclusive", "no negative control ran: the checks cannot tell a broken loss"
    elif passing_controls:
        verdict, reason = (
            "inconclusive",
            (
                f"a negative control passed, so the checks cannot tell a broken loss: "
                f"{_check_text(passing_controls[0])}"
            ),
        )
    elif not checks:
        verdict, reason = "inconclusive", "no check ran"
    elif failed:
        verdict, reason = (
            "contradicted",
            (f"{len(failed)} check(s) failed while every control behaved; first: {_check_text(failed[0])}"),
        )
    else:
        verdict, reason = "reproduced", "every check passed and every negative control failed"
    backbone = mi_checks.get("real", {}).get("settings", {}).get("backbone", "skipped")
    scope = f"synthetic problems on the project's losses; real part: {backbone}"
    n = f"{len(checks)} checks, {len(controls)} controls"
    return [
        ClaimRow(
            claim.id,
            claim.paper,
            claim.text,
            scope,
            "— (theorem)",
            measured,
            n,
            claim.test,
            verdict,
            reason,
            "—",
            "—",
            runs=len(checks),
        )
    ]


# --- the claims, each with its measurement ------------------------------------------------------

BEST_RULE = (
    f"α/k for the best of k variants; the adaptive design: picked on seeds 1–{PICK_SEEDS}, tested on the "
    "later seeds at α"
)
CLAIMS = {
    claim.id: claim
    for claim in [
        Claim(
            "PTP-1",
            "PTP",
            "PTP improves the state-of-the-art prompt tuning method on SuperGLUE",
            "mean over tasks of (best PTP variant − base) per seed",
            paired_t,
            BEST_RULE,
            1.94,
            "paper",
            "PTP variants and their base in the superglue setting",
            functools.partial(ptp_gain, setting_name="superglue"),
        ),
        Claim(
            "PTP-2",
            "PTP",
            "… and on FewGLUE",
            "mean over tasks of (best PTP variant − base) per seed",
            paired_t,
            BEST_RULE,
            2.34,
            "paper",
            "PTP variants and their base in the fewglue setting",
            functools.partial(ptp_gain, setting_name="fewglue"),
        ),
        Claim(
            "PTP-3",
            "PTP",
            "vanilla prompt tuning is unstable across seeds; PTP reduces the variance",
            "spread across seeds, best PTP variant against base, per task",
            dispersion_test,
            f"{BEST_RULE}; collapsed runs count",
            0.5,
            "choice",
            "PTP variants and their base in the grid",
            each_ptp_scope(ptp_stability),
        ),
        Claim(
            "PTP-4",
            "PTP",
            "PTP's loss landscape is smoother than vanilla prompt tuning's",
            "mean over tasks of calibrated sharpness (best PTP variant − base) per seed",
            paired_t,
            BEST_RULE,
            0.5,
            "choice",
            "PTP variants and their base in the grid",
            each_ptp_scope(ptp_sharpness),
        ),
        Claim(
            "PTP-5",
            "PTP",
            "both RN and ADV help, in text and embedding space",
            "each variant: mean over tasks of (variant − base) per seed",
            paired_t,
            "all must hold (intersection-union), any against (Holm)",
            2.0,
            "choice",
            "PTP variants and their base in the grid",
            each_ptp_scope(ptp_variants),
        ),
        Claim(
            "IP-1",
            "InfoPrompt",
            "InfoPrompt outperforms traditional prompt tuning",
            "mean over tasks of (InfoPrompt − base) per seed",
            paired_t,
            "",
            2.0,
            "choice",
            "InfoPrompt and its base in the grid",
            each_infoprompt_scope(functools.partial(infoprompt_gain, column="report_score", digits=2)),
        ),
        Claim(
            "IP-2",
            "InfoPrompt",
            "InfoPrompt accelerates convergence",
            "mean over tasks of (InfoPrompt − base) per seed of the learning-curve area: the selection score "
            "above the majority class averaged over the step budget (a run that learns less cannot score "
            "higher; one that never learns scores 0)",
            paired_t,
            "",
            0.25,
            "choice",
            "InfoPrompt and its base in the grid",
            each_infoprompt_scope(functools.partial(infoprompt_gain, column="learning_area", digits=1)),
        ),
        Claim(
            "IP-3",
            "InfoPrompt",
            "InfoPrompt is more robust to the prompt initialisation",
            "per seed, sd of the score across prompt inits; mean over tasks of (InfoPrompt − base)",
            paired_t,
            "collapsed runs count",
            0.5,
            "choice",
            "InfoPrompt and its base in the grid",
            each_infoprompt_scope(infoprompt_init),
        ),
        Claim(
            "IP-4",
            "InfoPrompt",
            "both losses contribute",
            "each ablation: mean over tasks of (full − ablation) per seed",
            paired_t,
            "all must hold (intersection-union), any against (Holm)",
            2.0,
            "choice",
            "InfoPrompt and its base in the grid",
            each_infoprompt_scope(infoprompt_ablations),
        ),
        Claim(
            "IP-5",
            "InfoPrompt",
            "a gradient-descent algorithm can train the MI loss",
            "the MI-convergence study: every check passes and every negative control fails",
            None,
            "",
            math.nan,
            "—",
            "the MI-convergence study (prompttune mi-check)",
            mi_check_rows,
        ),
    ]
}


def claim_rows(
    runs: pd.DataFrame, mi_checks: dict[str, Any] | None, power: bool = True, design: Design | None = None
) -> list[ClaimRow]:
    """Every claim of docs/claims.md, in its order, with one row per scope the runs cover, or its "not
    measured" row (``power``: with the planning columns; ``design``: the adaptive design's looks, None for
    a fixed grid)."""
    indexed = Runs(runs, power, design)
    rows: list[ClaimRow] = []
    for claim in CLAIMS.values():
        rows += claim.measured_by(claim, indexed, mi_checks) or [_missing(claim, claim.needs)]
    return rows


def claims_table(rows: Sequence[ClaimRow], computed_by: dict[str, Any]) -> pd.DataFrame:
    """The rows as a table (results/claims.csv): the text columns, the numbers behind them, and the code
    that computed them (git revision and package versions, the same on every row)."""
    table = pd.DataFrame([row.__dict__ for row in rows])
    table["trajectory"] = ["; ".join(look.text() for look in row.trajectory) for row in rows]
    table["git_revision"] = computed_by["git_revision"]
    table["packages"] = "; ".join(f"{name} {version}" for name, version in computed_by["packages"].items())
    return table
