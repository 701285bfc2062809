"""Each claim of CLAIMS.md, measured on the grid's runs (runs.csv, read through ``results.read_runs``) and
given a verdict whose error rates are known (``benchmarks/verdict_calibration.py``).

A claim is measured once per *scope* the runs cover — a setting and the prompt base its methods are
built on — on the backbone the runs used. A claim the runs do not cover gets one row saying what it needs.
Arms are chosen from what each run's objective declares (its ``family`` and what it is an ``ablation_of``),
never from method names.

Verdicts (stats.ALPHA per side):

- ``reproduced``: significant in the claimed direction;
- ``contradicted``: significant in the other direction;
- ``smaller than claimed``: the paper gives a number, on the base it used, and the interval excludes it;
- ``inconclusive``, with the reason: too few seeds (with the effect the seeds can detect and the seeds
  needed), no effect of the claimed or reference size, runs not converged, arms not measured, or
  (IP-5) a part skipped or a negative control that passed.

Choices (stated on the report page):

- scores are report-split scores in points; runs that ``failed`` (non-finite loss, crash) are left out
  and listed; ``collapsed`` runs (never above the majority class on the selection split) are results and
  count everywhere, so the instability PTP-3 and IP-3 are about is measured, not removed;
- pairs are formed on training seeds; a seed enters a claim only where both arms have it in every task;
- "best PTP variant" (PTP-1 to PTP-4) is the one with the highest mean *selection-split* score, so the
  report split never picks it; because it is picked from k variants, its rows test at α/k (Bonferroni);
- claims with several parts (PTP-5, IP-4) are ``reproduced`` only when every part is (an
  intersection-union test, valid at α without correction) and ``contradicted`` when any part is
  significantly the wrong way after Holm's correction;
- a claim resting on a run that did not pass the convergence rule is ``inconclusive (not converged)``;
- where the paper gives no number, power is shown against a reference effect (``REFERENCE``, choice).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from prompttune import paper_numbers
from prompttune.stats import (
    ALPHA,
    MAX_SEEDS,
    POWER,
    TestResult,
    dispersion_test,
    holm,
    paired_t,
    t_detectable,
    t_seeds_needed,
)

Verdict = Literal["reproduced", "contradicted", "smaller than claimed", "inconclusive"]
Direction = Literal["greater", "less"]
PTP, INFOPROMPT = "ptp", "infoprompt"
Scores = dict[str, dict[int, float]]  # task → seed → value


@dataclass(frozen=True)
class Claim:
    """A claim of CLAIMS.md: what it says, how it is tested, and the effect its power is judged against
    (the paper's number where one is public, else a reference effect chosen by the project)."""

    id: str
    paper: str
    text: str
    test: str
    reference: float
    reference_source: str  # "paper" or "choice"


CLAIMS = {
    claim.id: claim
    for claim in [
        Claim(
            "PTP-1",
            "PTP",
            "PTP improves the state-of-the-art prompt tuning method on SuperGLUE",
            "mean over tasks of (best PTP variant − base), paired t over seeds (α/k)",
            1.94,
            "paper",
        ),
        Claim(
            "PTP-2",
            "PTP",
            "… and on FewGLUE",
            "mean over tasks of (best PTP variant − base), paired t over seeds (α/k)",
            2.34,
            "paper",
        ),
        Claim(
            "PTP-3",
            "PTP",
            "vanilla prompt tuning is unstable across seeds; PTP reduces the variance",
            "geometric mean over tasks of sd(best PTP variant) / sd(base), within-seed swap "
            "permutation test (α/k); collapsed runs count",
            0.5,
            "choice",
        ),
        Claim(
            "PTP-4",
            "PTP",
            "PTP's loss landscape is smoother than vanilla prompt tuning's",
            "mean over tasks of calibrated sharpness (best PTP variant − base), paired t (α/k)",
            0.5,
            "choice",
        ),
        Claim(
            "PTP-5",
            "PTP",
            "both RN and ADV help, in text and embedding space",
            "each variant: mean over tasks of (variant − base), paired t; all must hold "
            "(intersection-union), any against (Holm)",
            2.0,
            "choice",
        ),
        Claim(
            "IP-1",
            "InfoPrompt",
            "InfoPrompt outperforms traditional prompt tuning",
            "mean over tasks of (InfoPrompt − base), paired t over seeds",
            2.0,
            "choice",
        ),
        Claim(
            "IP-2",
            "InfoPrompt",
            "InfoPrompt accelerates convergence",
            "mean over tasks of steps to 90 % of the gain over the untrained score (InfoPrompt − base), "
            "paired t; a run that did not learn counts at its step cap",
            0.25,
            "choice",
        ),
        Claim(
            "IP-3",
            "InfoPrompt",
            "InfoPrompt is more robust to the prompt initialisation",
            "per seed, sd of the score across prompt inits; mean over tasks of (InfoPrompt − base), "
            "paired t; collapsed runs count",
            0.5,
            "choice",
        ),
        Claim(
            "IP-4",
            "InfoPrompt",
            "both losses contribute",
            "each ablation: mean over tasks of (full − ablation), paired t; all must hold "
            "(intersection-union), any against (Holm)",
            2.0,
            "choice",
        ),
        Claim(
            "IP-5",
            "InfoPrompt",
            "a gradient-descent algorithm can train the MI loss",
            "the MI-convergence study: every check passes and every negative control fails",
            math.nan,
            "—",
        ),
    ]
}
# How a reference that is relative (a fraction of the base's own value) is read, per claim.
RELATIVE = {
    "PTP-3": "sd ratio",
    "PTP-4": "of the base's sharpness",
    "IP-2": "of the base's steps",
    "IP-3": "of the base's spread",
}


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
    seeds_needed: str  # seeds to decide at the observed effect and at the reference effect
    setting: str = ""
    base: str = ""
    backbone: str = ""
    estimate: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_claimed: float = math.nan
    alpha: float = math.nan
    n_seeds: int = 0
    n_tasks: int = 0
    detectable_effect: float = math.nan
    seeds_needed_observed: float = math.nan
    seeds_needed_reference: float = math.nan
    runs: int = 0
    unconverged: int = 0
    seconds_per_seed: float = math.nan  # training time of one more seed of every arm the claim needs


# --- reading the runs ---------------------------------------------------------------------------


class Runs:
    """The runs of runs.csv as plain records, indexed for paired lookups. ``usable``: status not
    ``failed``; ``main``: not a variant run."""

    def __init__(self, runs: pd.DataFrame) -> None:
        self.records = runs.to_dict("records")
        self.backbone = ", ".join(sorted({r["backbone"] for r in self.records}))
        self.by_method: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in self.records:
            self.by_method.setdefault((record["setting"], record["method"]), []).append(record)
        self.objectives = {r["method"]: (r["objective"], r["family"], r["ablation_of"]) for r in self.records}

    def rows(self, setting: str, method: str, variants: bool = False) -> list[dict[str, Any]]:
        """The usable runs of one method in one setting (main runs only unless ``variants``)."""
        rows = self.by_method.get((setting, method), [])
        return [r for r in rows if r["status"] != "failed" and (variants or not r["variant"])]

    def values(self, setting: str, method: str, column: str = "report_score") -> Scores:
        out: Scores = {}
        for row in self.rows(setting, method):
            if not pd.isna(row[column]):
                out.setdefault(row["task"], {})[int(row["seed"])] = float(row[column])
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

    def seconds_per_seed(self, setting: str, methods: Sequence[str], variants: bool = False) -> float:
        """The recorded wall time of one seed of ``methods`` in ``setting`` (their usable runs' total over
        the seeds they have): what each further seed of a claim costs on the machine that trained them.
        NaN where a run did not record it."""
        rows = [r for method in methods for r in self.rows(setting, method, variants)]
        recorded = pd.Series([r.get("wall_time_s") for r in rows], dtype=object)
        seconds = pd.to_numeric(recorded, errors="coerce")
        if not rows or seconds.isna().any():
            return math.nan
        return float(seconds.sum()) / len({int(r["seed"]) for r in rows})

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
    t = np.array([[treatment[task][s] for s in seeds] for task in tasks], dtype=float).reshape(len(tasks), -1)
    c = np.array([[control[task][s] for s in seeds] for task in tasks], dtype=float).reshape(len(tasks), -1)
    return tasks, seeds, t, c


# --- one part: a test, its verdict and its power --------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One comparison behind a claim row: the test, the claimed direction, the α it is tested at, the
    reference effect for power (a magnitude in the test's units) and the paper's number (only on the
    paper's own base). ``seeds_per_unit`` turns the test's values into seeds: 1 for per-seed differences,
    2 / tasks for PTP-3's seed pairs (one per task per two seeds). ``ratio``: the test is on log ratios."""

    test: TestResult
    direction: Direction
    alpha: float
    reference: float
    claimed: float | None = None
    seeds_per_unit: float = 1.0
    ratio: bool = False

    @property
    def p_claimed(self) -> float:
        return self.test.p_greater if self.direction == "greater" else self.test.p_less

    @property
    def p_against(self) -> float:
        return self.test.p_less if self.direction == "greater" else self.test.p_greater

    @property
    def decidable(self) -> bool:
        return not math.isnan(self.p_claimed)

    @property
    def beyond_claim(self) -> bool:
        """The interval's bound on the claimed side excludes the paper's number."""
        if self.claimed is None or math.isnan(self.test.high):
            return False
        return self.test.high < self.claimed if self.direction == "greater" else self.test.low > self.claimed

    @property
    def below_reference(self) -> bool:
        """The interval excludes the reference effect (an effect of that size is ruled out)."""
        if math.isnan(self.test.high):
            return False
        if self.direction == "greater":
            return self.test.high < self.reference
        return self.test.low > -self.reference

    def detectable(self) -> float:
        return t_detectable(self.test.n, self.test.sd, self.alpha)

    def seeds_needed(self, effect: float) -> float:
        units = t_seeds_needed(effect, self.test.sd, self.alpha)
        return float(math.ceil(units * self.seeds_per_unit - 1e-9)) if math.isfinite(units) else units

    def verdict(self) -> tuple[Verdict, str]:
        if not self.decidable:
            seeds = self.test.n * self.seeds_per_unit
            return "inconclusive", f"too few seeds ({seeds:g} per task give no test)"
        if self.p_against < self.alpha:
            return "contradicted", ""
        if self.beyond_claim:
            return "smaller than claimed", ""
        if self.p_claimed < self.alpha:
            return "reproduced", ""
        if self.below_reference:
            return "inconclusive", "no effect of the reference size"
        return "inconclusive", "too few seeds"

    def shown(self, value: float) -> float:
        """A value of the test's scale as the row shows it (ratios: exp of the log)."""
        return math.exp(value) if self.ratio else value


def _seeds(value: float) -> str:
    if math.isnan(value):
        return "—"
    return f"> {MAX_SEEDS}" if math.isinf(value) else f"{int(value)}"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min"
    return f"{seconds / 3600:.1f} h"


def _cost(seeds: float, seconds_per_seed: float) -> str:
    """`` (≈ 48 min)``: the training time of that many seeds at the grid's recorded cost per seed."""
    if not (math.isfinite(seeds) and math.isfinite(seconds_per_seed)):
        return ""
    return f" (≈ {_duration(seeds * seconds_per_seed)})"


def _power_text(
    parts: Sequence[Part], claim: Claim, seconds_per_seed: float
) -> tuple[str, str, float, float, float]:
    """(detectable, seeds needed with their training time, detectable value, seeds for the observed
    effect, for the reference)."""
    first = parts[0]
    detectable = [part.detectable() for part in parts]
    worst = max(detectable, key=lambda d: -math.inf if math.isnan(d) else d)
    need_obs = max((p.seeds_needed(p.test.estimate) for p in parts), default=math.nan)
    need_ref = max((p.seeds_needed(p.reference) for p in parts), default=math.nan)
    if math.isnan(worst):
        text = "none (too few seeds for the test)"
    elif first.ratio:
        text = f"sd ratio ≤ {math.exp(-worst):.2f}"
    else:
        text = f"{'±' if len(parts) == 1 else 'each part ≥ '}{worst:.2f}"
    ref = f"{claim.reference:g}" + (f" ({RELATIVE[claim.id]})" if claim.id in RELATIVE else "")
    seeds = (
        f"{_seeds(need_obs)}{_cost(need_obs, seconds_per_seed)} for the observed effect; "
        f"{_seeds(need_ref)}{_cost(need_ref, seconds_per_seed)} for {ref} ({claim.reference_source})"
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
    sign = "" if part.ratio else "+"
    value = f"{part.shown(test.estimate):{sign}.{digits}f}"
    if math.isnan(test.low):
        return value
    return f"{value} [{part.shown(test.low):{sign}.{digits}f}, {part.shown(test.high):{sign}.{digits}f}]"


@dataclass
class Scope:
    setting: str
    base: str
    backbone: str
    note: str = ""

    def text(self) -> str:
        return f"{self.setting}, base {self.base}, {self.backbone}" + (f"; {self.note}" if self.note else "")


def _row(
    claim: Claim,
    scope: Scope,
    parts: Sequence[Part],
    measured: str,
    paired: tuple[Sequence[str], Sequence[int]],
    verdict: Verdict,
    reason: str,
    runs: tuple[int, int],
    paper_number: str = "—",
    seconds_per_seed: float = math.nan,
) -> ClaimRow:
    """A measured row; a claim resting on a run that did not converge is ``inconclusive``."""
    detectable, seeds_text, worst, need_obs, need_ref = _power_text(parts, claim, seconds_per_seed)
    first = parts[0]
    tasks, seeds = paired
    total, unconverged = runs
    n = f"{len(seeds)} seeds × {len(tasks)} task(s); {total} runs"
    if unconverged:
        verdict, reason = "inconclusive", f"not converged: {unconverged} of {total} runs"
    return ClaimRow(
        id=claim.id,
        paper=claim.paper,
        claim=claim.text,
        scope=scope.text(),
        paper_number=paper_number,
        measured=measured,
        n=n,
        test=claim.test,
        verdict=verdict,
        reason=reason,
        detectable=detectable,
        seeds_needed=seeds_text,
        setting=scope.setting,
        base=scope.base,
        backbone=scope.backbone,
        estimate=first.shown(first.test.estimate),
        low=first.shown(first.test.low),
        high=first.shown(first.test.high),
        p_claimed=first.p_claimed,
        alpha=first.alpha,
        n_seeds=len(seeds),
        n_tasks=len(tasks),
        detectable_effect=worst,
        seeds_needed_observed=need_obs,
        seeds_needed_reference=need_ref,
        runs=total,
        unconverged=unconverged,
        seconds_per_seed=seconds_per_seed,
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
) -> tuple[Part, list[str], list[int]]:
    """The paired t part of treatment − control, per seed averaged over the tasks both arms have."""
    tasks, seeds, t, c = paired_matrix(treatment, control)
    diffs = (t - c).mean(axis=0) if tasks else np.array([])
    return Part(paired_t(diffs, alpha), direction, alpha, reference, claimed), tasks, seeds


def relative_reference(claim: Claim, control: Scores) -> float:
    """A relative reference effect (a fraction of the base's mean value) in the claim's units."""
    values = [v for seeds in control.values() for v in seeds.values()]
    return claim.reference * abs(float(np.mean(values))) if values else math.nan


# --- the claims -----------------------------------------------------------------------------------


def best_variant(runs: Runs, setting: str, variants: Sequence[str]) -> str:
    """The variant with the highest mean selection-split score over the scope's tasks (choice; ties:
    the first name in sorted order)."""

    def mean_select(method: str) -> float:
        per_task = runs.values(setting, method, "select_score")
        means = [np.mean(list(seeds.values())) for seeds in per_task.values() if seeds]
        return float(np.mean(means)) if means else -math.inf

    return max(sorted(variants), key=mean_select)


def ptp_rows(runs: Runs) -> list[ClaimRow]:
    rows: list[ClaimRow] = []
    scopes = runs.scopes(PTP)
    for claim_id, setting_name in (("PTP-1", "superglue"), ("PTP-2", "fewglue")):
        claim = CLAIMS[claim_id]
        matching = [scope for scope in scopes if scope[0] == setting_name]
        if not matching:
            rows.append(_missing(claim, f"PTP variants and their base in the {setting_name} setting"))
        for setting, base, variants in matching:
            best = best_variant(runs, setting, variants)
            alpha = ALPHA / len(variants)
            number = paper_numbers.difference("PTP", setting, base)
            part, tasks, seeds = gain_part(
                runs.values(setting, best),
                runs.values(setting, base),
                "greater",
                alpha,
                claim.reference,
                number,
            )
            scope = Scope(
                setting, base, runs.backbone, f"best variant {best} of {len(variants)} (α/{len(variants)})"
            )
            arms = runs.unconverged(setting, [best, base])
            paper = "—" if number is None else f"{number:+.2f}"
            rows.append(
                _row(
                    claim,
                    scope,
                    [part],
                    _interval(part, 2),
                    (tasks, seeds),
                    *part.verdict(),
                    arms,
                    paper,
                    runs.seconds_per_seed(setting, [*variants, base]),
                )
            )
    if not scopes:
        rows += [
            _missing(CLAIMS[c], "PTP variants and their base in the grid")
            for c in ("PTP-3", "PTP-4", "PTP-5")
        ]
        return rows
    for setting, base, variants in scopes:
        rows += [ptp_stability(runs, setting, base, variants), ptp_sharpness(runs, setting, base, variants)]
        rows.append(ptp_variants(runs, setting, base, variants))
    return rows


def ptp_stability(runs: Runs, setting: str, base: str, variants: Sequence[str]) -> ClaimRow:
    claim = CLAIMS["PTP-3"]
    best = best_variant(runs, setting, variants)
    alpha = ALPHA / len(variants)
    tasks, seeds, t, c = paired_matrix(runs.values(setting, best), runs.values(setting, base))
    test = dispersion_test(t, c, alpha)
    part = Part(
        test, "less", alpha, abs(math.log(claim.reference)), seeds_per_unit=2 / max(1, len(tasks)), ratio=True
    )
    per_task = "; ".join(
        f"{task} {np.std(x, ddof=1):.2f} vs {np.std(y, ddof=1):.2f}"
        for task, x, y in zip(tasks, t, c, strict=True)
        if len(seeds) > 1
    )
    measured = (
        "—"
        if math.isnan(test.estimate)
        else f"spread ratio {_interval(part, 2)} (sd per task, variant vs base: {per_task})"
    )
    scope = Scope(setting, base, runs.backbone, f"best variant {best} of {len(variants)} (α/{len(variants)})")
    arms = runs.unconverged(setting, [best, base])
    cost = runs.seconds_per_seed(setting, [*variants, base])
    return _row(claim, scope, [part], measured, (tasks, seeds), *part.verdict(), arms, seconds_per_seed=cost)


def ptp_sharpness(runs: Runs, setting: str, base: str, variants: Sequence[str]) -> ClaimRow:
    claim = CLAIMS["PTP-4"]
    best = best_variant(runs, setting, variants)
    treat, control = runs.values(setting, best, "sharpness"), runs.values(setting, base, "sharpness")
    if not treat or not control:
        return _missing(claim, f"landscapes of {base} and {best} in {setting}")
    alpha = ALPHA / len(variants)
    part, tasks, seeds = gain_part(treat, control, "less", alpha, relative_reference(claim, control))
    scope = Scope(setting, base, runs.backbone, f"best variant {best} of {len(variants)} (α/{len(variants)})")
    arms = runs.unconverged(setting, [best, base])
    cost = runs.seconds_per_seed(setting, [*variants, base])  # landscapes not counted
    return _row(
        claim, scope, [part], _interval(part, 4), (tasks, seeds), *part.verdict(), arms, seconds_per_seed=cost
    )


def combine(parts: Sequence[Part]) -> tuple[Verdict, str]:
    """All parts must hold (intersection-union: reproduced only when every part is significant); the claim
    is contradicted when any part is significantly the wrong way after Holm's correction."""
    if not parts or not all(part.decidable for part in parts):
        return "inconclusive", "too few seeds"
    against = holm([part.p_against for part in parts])
    if min(against) < parts[0].alpha:
        return "contradicted", ""
    if all(part.p_claimed < part.alpha for part in parts):
        return "reproduced", ""
    undecided = [i for i, part in enumerate(parts) if part.p_claimed >= part.alpha]
    if all(parts[i].below_reference for i in undecided):
        return "inconclusive", "no effect of the reference size"
    return "inconclusive", "too few seeds"


def multi_part_row(
    claim: Claim,
    runs: Runs,
    setting: str,
    base: str,
    arms: Sequence[tuple[str, Scores, Scores]],
    methods: Sequence[str],
) -> ClaimRow:
    """A claim whose every part must hold: one paired-t part per (label, treatment, control)."""
    parts, texts, tasks, seeds = [], [], [], []
    for label, treatment, control in arms:
        part, tasks, seeds = gain_part(treatment, control, "greater", ALPHA, claim.reference)
        parts.append(part)
        texts.append(f"{label}: {_interval(part, 2)}")
    counts = runs.unconverged(setting, methods)
    return _row(
        claim,
        Scope(setting, base, runs.backbone),
        parts,
        "; ".join(texts),
        (tasks, seeds),
        *combine(parts),
        counts,
        seconds_per_seed=runs.seconds_per_seed(setting, methods),
    )


def ptp_variants(runs: Runs, setting: str, base: str, variants: Sequence[str]) -> ClaimRow:
    control = runs.values(setting, base)
    arms = [(v.removeprefix(base + "-"), runs.values(setting, v), control) for v in variants]
    return multi_part_row(CLAIMS["PTP-5"], runs, setting, base, arms, [*variants, base])


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


def infoprompt_rows(runs: Runs, mi_checks: dict[str, Any] | None) -> list[ClaimRow]:
    rows: list[ClaimRow] = []
    scopes = []
    for setting, base, methods in runs.scopes(INFOPROMPT):
        full = [m for m in methods if not runs.objective_of(m)["ablation_of"]]
        if full:
            ablations = [
                m
                for m in methods
                if runs.objective_of(m)["ablation_of"] == runs.objective_of(full[0])["objective"]
            ]
            scopes.append((setting, base, full[0], ablations))
    if not scopes:
        rows += [
            _missing(CLAIMS[c], "InfoPrompt and its base in the grid")
            for c in ("IP-1", "IP-2", "IP-3", "IP-4")
        ]
    for setting, base, full, ablations in scopes:
        scope = Scope(setting, base, runs.backbone)
        for claim_id, column, direction, digits in (
            ("IP-1", "report_score", "greater", 2),
            ("IP-2", "steps_to_gain", "less", 1),
        ):
            claim = CLAIMS[claim_id]
            treat, control = runs.values(setting, full, column), runs.values(setting, base, column)
            reference = claim.reference if claim_id not in RELATIVE else relative_reference(claim, control)
            part, tasks, seeds = gain_part(treat, control, direction, ALPHA, reference)
            counts = runs.unconverged(setting, [full, base])
            measured = _interval(part, digits)
            if claim_id == "IP-2":
                total, learned = runs.learned(setting, [full, base])
                measured += f"; did not learn: {total - learned} of {total} runs"
            cost = runs.seconds_per_seed(setting, [full, base])
            rows.append(
                _row(
                    claim,
                    scope,
                    [part],
                    measured,
                    (tasks, seeds),
                    *part.verdict(),
                    counts,
                    seconds_per_seed=cost,
                )
            )
        rows.append(infoprompt_init(runs, setting, base, full))
        if len(ablations) < 2:
            rows.append(_missing(CLAIMS["IP-4"], f"both ablations of {full} in {setting}"))
        else:
            arms = [
                (f"vs {a.removeprefix(base + '-')}", runs.values(setting, full), runs.values(setting, a))
                for a in ablations
            ]
            rows.append(multi_part_row(CLAIMS["IP-4"], runs, setting, base, arms, [full, *ablations]))
    rows.append(mi_check_row(mi_checks))
    return rows


def infoprompt_init(runs: Runs, setting: str, base: str, full: str) -> ClaimRow:
    claim = CLAIMS["IP-3"]
    treat, control = init_spread(runs, setting, full), init_spread(runs, setting, base)
    if not treat or not control:
        return _missing(claim, f"variant runs crossing prompt init with {full} and {base} in {setting}")
    part, tasks, seeds = gain_part(treat, control, "less", ALPHA, relative_reference(claim, control))
    inits = ", ".join(runs.inits(setting))
    counts = runs.unconverged(setting, [full, base], variants=True)
    return _row(
        claim,
        Scope(setting, base, runs.backbone, f"inits {inits}"),
        [part],
        _interval(part, 2),
        (tasks, seeds),
        *part.verdict(),
        counts,
        seconds_per_seed=runs.seconds_per_seed(setting, [full, base], variants=True),
    )


def mi_check_row(mi_checks: dict[str, Any] | None) -> ClaimRow:
    """IP-5 from the MI-convergence study: reproduced when both parts ran, every check passed and every
    negative control failed; a control that passed or a skipped part makes it inconclusive; a check that
    failed with every control behaving contradicts it."""
    claim = CLAIMS["IP-5"]
    if mi_checks is None:
        return _missing(claim, "the MI-convergence study (prompttune mi-check)")
    checks = [c for c in mi_checks["checks"] if c["role"] == "check"]
    controls = [c for c in mi_checks["checks"] if c["role"] == "control"]
    passed = sum(c["passed"] for c in checks)
    caught = sum(not c["passed"] for c in controls)
    skipped = [part for part in ("synthetic", "real") if mi_checks.get(part, {}).get("skipped")]
    measured = (
        f"{passed} of {len(checks)} checks passed; {caught} of {len(controls)} negative controls failed"
    )
    verdict: Verdict
    if skipped:
        verdict, reason = "inconclusive", f"part skipped: {', '.join(skipped)}"
    elif caught < len(controls) or not controls:
        verdict, reason = "inconclusive", "a negative control passed: the checks cannot tell a broken loss"
    elif passed < len(checks) or not checks:
        verdict, reason = "contradicted", ""
    else:
        verdict, reason = "reproduced", ""
    backbone = mi_checks.get("real", {}).get("settings", {}).get("backbone", "skipped")
    scope = f"synthetic problems on the project's losses; real part: {backbone}"
    n = f"{len(checks)} checks, {len(controls)} controls"
    return ClaimRow(
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


def claim_rows(runs: pd.DataFrame, mi_checks: dict[str, Any] | None) -> list[ClaimRow]:
    """Every claim of CLAIMS.md, in its order, with one row per scope the runs cover."""
    indexed = Runs(runs)
    return ptp_rows(indexed) + infoprompt_rows(indexed, mi_checks)


def claims_table(rows: Sequence[ClaimRow]) -> pd.DataFrame:
    """The rows as a table (results/claims.csv): the text columns and the numbers behind them."""
    return pd.DataFrame([row.__dict__ for row in rows])
