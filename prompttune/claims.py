"""Each claim of CLAIMS.md, measured on the grid's runs and given a verdict.

A claim is measured once per *scope* the profile covers — a setting and the prompt base its method is
built on — so a claim measured on the embedded backbone says so and is never a statement about the
paper's backbone. A claim the profile does not cover gets one row saying what it needs, with the
verdict ``inconclusive``.

Choices (stated on the report page):

- scores are report-split scores in points; runs whose status is not ``ok`` are left out, and pairs
  are formed on the training seeds both methods have;
- "best PTP variant" (PTP-1/2/3/4) is the variant with the highest mean *selection-split* score over
  the scope's tasks, so the report split never picks it;
- intervals are 95 % percentile-bootstrap intervals over seeds (stratified by task for averages over
  tasks); a verdict is ``reproduced`` when the whole interval lies on the claimed side of the
  threshold, ``not reproduced`` when it lies on the other side, ``inconclusive`` otherwise or with
  fewer than ``MIN_SEEDS`` seeds (prompttune.stats.verdict).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from prompttune.paper_numbers import difference
from prompttune.stats import (
    Interval,
    Verdict,
    mean_over_tasks_paired,
    std_ratio,
    variance_test,
    verdict,
)

MIN_SEEDS = 3
N_RESAMPLES = 10_000
PTP_PREFIX = "ptp-"
INFOPROMPT = "infoprompt"

Scores = dict[str, dict[int, float]]  # task → seed → value


@dataclass(frozen=True)
class ClaimRow:
    """One row of the claims table."""

    id: str
    paper: str
    claim: str
    scope: str  # setting, base, backbone — what the measurement covers
    paper_number: str  # "—" when the paper's number is not known
    measured: str  # estimate [95 % CI], or what is missing
    n: str
    test: str
    verdict: Verdict


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    text: str
    paper_number: str
    test: str


PTP_GAIN = "mean over tasks of (best PTP variant − base), paired over seeds; > 0"
CLAIMS = {
    claim.id: claim
    for claim in [
        Claim("PTP-1", "PTP", "PTP improves the state-of-the-art prompt tuning method on SuperGLUE",
              difference("PTP", "superglue"), PTP_GAIN),
        Claim("PTP-2", "PTP", "… and on FewGLUE", difference("PTP", "fewglue"), PTP_GAIN),
        Claim("PTP-3", "PTP", "vanilla prompt tuning is unstable across seeds; PTP reduces the variance",
              "—", "per task: std(best PTP variant) / std(base) < 1; Brown–Forsythe p shown"),
        Claim("PTP-4", "PTP", "PTP's loss landscape is smoother than vanilla prompt tuning's", "—",
              "mean over tasks of sharpness(best PTP variant) − sharpness(base), paired; < 0"),
        Claim("PTP-5", "PTP", "both RN and ADV help, in text and embedding space", "—",
              "each variant: mean over tasks of (variant − base), paired; all four > 0"),
        Claim("IP-1", "InfoPrompt", "InfoPrompt outperforms traditional prompt tuning", "—",
              "mean over tasks of (InfoPrompt − base), paired over seeds; > 0"),
        Claim("IP-2", "InfoPrompt", "InfoPrompt accelerates convergence", "—",
              "mean over tasks of steps-to-90 % (InfoPrompt − base), paired; < 0"),
        Claim("IP-3", "InfoPrompt", "InfoPrompt is more robust to the prompt initialisation", "—",
              "per seed, std of the score across prompt inits; mean over tasks of (InfoPrompt − base), "
              "paired; < 0"),
        Claim("IP-4", "InfoPrompt", "both losses contribute", "—",
              "mean over tasks of (full − each ablation), paired; both > 0"),
        Claim("IP-5", "InfoPrompt", "a gradient-descent algorithm can train the MI loss", "— (theorem)",
              "every check of the MI-convergence study comes out as expected"),
    ]
}  # fmt: skip


def fmt_interval(interval: Interval, digits: int = 2, signed: bool = True) -> str:
    if math.isnan(interval.estimate):
        return "—"
    sign = "+" if signed else ""
    text = f"{interval.estimate:{sign}.{digits}f}"
    if math.isnan(interval.low):
        return f"{text} (no CI: n = {interval.n})"
    return f"{text} [{interval.low:{sign}.{digits}f}, {interval.high:{sign}.{digits}f}]"


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """Several intervals that must all hold (PTP-5, IP-4): reproduced if all are, not reproduced if any
    is not, inconclusive otherwise."""
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if any(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    return "inconclusive"


class Runs:
    """The ``ok`` runs of runs.csv, indexed for paired lookups."""

    def __init__(self, runs: pd.DataFrame) -> None:
        self.all = runs
        self.ok = runs[runs["status"] == "ok"]
        self.main = self.ok[self.ok["variant"] == ""]
        self.backbone = ", ".join(sorted(set(runs["backbone"])))

    def values(self, setting: str, method: str, column: str = "report_score") -> Scores:
        rows = self.main[(self.main["setting"] == setting) & (self.main["method"] == method)]
        out: Scores = {}
        for row in rows.itertuples():
            value = getattr(row, column)
            if value is not None and not pd.isna(value):
                out.setdefault(row.task, {})[int(row.seed)] = float(value)
        return out

    def scopes(self, objective_test: Callable[[str], bool]) -> list[tuple[str, str, list[str]]]:
        """(setting, base, methods) for every setting × base with methods whose objective passes."""
        found: dict[tuple[str, str], list[str]] = {}
        for row in self.all[self.all["variant"] == ""].drop_duplicates(["setting", "method"]).itertuples():
            if objective_test(row.objective):
                found.setdefault((row.setting, row.base), []).append(row.method)
        return [(setting, base, sorted(methods)) for (setting, base), methods in sorted(found.items())]

    def has(self, setting: str, method: str) -> bool:
        main = self.all[self.all["variant"] == ""]
        return bool(((main["setting"] == setting) & (main["method"] == method)).any())


def _paired_over_tasks(treatment: Scores, control: Scores, seed: int) -> Interval:
    """``mean_over_tasks_paired`` with ``n`` = the fewest paired seeds of any task, so that
    ``verdict(min_n=MIN_SEEDS)`` asks for that many seeds in every task."""
    interval = mean_over_tasks_paired(treatment, control, n_resamples=N_RESAMPLES, seed=seed)
    tasks = set(treatment) & set(control)
    fewest = min((len(set(treatment[t]) & set(control[t])) for t in tasks), default=0)
    return dataclasses.replace(interval, n=fewest)


def _n_pairs(treatment: Scores, control: Scores) -> str:
    tasks = sorted(set(treatment) & set(control))
    pairs = [len(set(treatment[t]) & set(control[t])) for t in tasks]
    return f"{sum(pairs)} pairs over {len(tasks)} task(s)"


def _scope(setting: str, base: str, backbone: str, extra: str = "") -> str:
    return f"{setting}, base {base}, {backbone}{extra}"


def best_variant(runs: Runs, setting: str, variants: Sequence[str]) -> str:
    """The variant with the highest mean selection-split score over the scope's tasks (choice)."""

    def mean_select(method: str) -> float:
        per_task = runs.values(setting, method, "select_score")
        means = [np.mean(list(seeds.values())) for seeds in per_task.values() if seeds]
        return float(np.mean(means)) if means else -math.inf

    return max(variants, key=mean_select)


def _missing(claim: Claim, needs: str) -> ClaimRow:
    return ClaimRow(claim.id, claim.paper, claim.text, "not in this profile", claim.paper_number,
                    f"not measured: needs {needs}", "0", claim.test, "inconclusive")  # fmt: skip


def _row(claim: Claim, scope: str, measured: str, n: str, result: Verdict) -> ClaimRow:
    return ClaimRow(
        claim.id, claim.paper, claim.text, scope, claim.paper_number, measured, n, claim.test, result
    )


def ptp_rows(runs: Runs, seed: int) -> list[ClaimRow]:
    rows: list[ClaimRow] = []
    scopes = [
        (setting, base, methods)
        for setting, base, methods in runs.scopes(lambda o: o.startswith(PTP_PREFIX))
        if runs.has(setting, base)
    ]
    best = {(setting, base): best_variant(runs, setting, variants) for setting, base, variants in scopes}
    for claim_id, setting_name in (("PTP-1", "superglue"), ("PTP-2", "fewglue")):
        claim = CLAIMS[claim_id]
        matching = [scope for scope in scopes if scope[0] == setting_name]
        if not matching:
            rows.append(_missing(claim, f"PTP variants and their base in the {setting_name} setting"))
        for setting, base, _ in matching:
            treat, control = runs.values(setting, best[setting, base]), runs.values(setting, base)
            interval = _paired_over_tasks(treat, control, seed)
            scope = _scope(setting, base, runs.backbone, f"; best variant {best[setting, base]}")
            rows.append(
                _row(claim, scope, fmt_interval(interval), _n_pairs(treat, control), verdict(interval))
            )
    if not scopes:
        for claim_id in ("PTP-3", "PTP-4", "PTP-5"):
            rows.append(_missing(CLAIMS[claim_id], "PTP variants and their base in the grid"))
        return rows
    for setting, base, variants in scopes:
        best_name = best[setting, base]
        treat, control = runs.values(setting, best_name), runs.values(setting, base)
        for task in sorted(set(treat) & set(control)):
            a, b = list(treat[task].values()), list(control[task].values())
            ratio = std_ratio(a, b, n_resamples=N_RESAMPLES, seed=seed)
            test = variance_test(a, b)
            p = "—" if math.isnan(test.p_value) else f"{test.p_value:.3f}"
            measured = f"std ratio {fmt_interval(ratio, signed=False)}; Brown–Forsythe p = {p}"
            result = verdict(ratio, threshold=1.0, direction="less", min_n=MIN_SEEDS)
            scope = _scope(setting, base, runs.backbone, f"; {task}; best variant {best_name}")
            rows.append(_row(CLAIMS["PTP-3"], scope, measured, f"{len(a)} vs {len(b)} seeds", result))
        sharp_t, sharp_c = (
            runs.values(setting, best_name, "sharpness"),
            runs.values(setting, base, "sharpness"),
        )
        if sharp_t and sharp_c:
            interval = _paired_over_tasks(sharp_t, sharp_c, seed)
            scope = _scope(setting, base, runs.backbone, f"; best variant {best_name}")
            result = verdict(interval, direction="less", min_n=MIN_SEEDS)
            rows.append(
                _row(CLAIMS["PTP-4"], scope, fmt_interval(interval, 4), _n_pairs(sharp_t, sharp_c), result)
            )
        else:
            rows.append(_missing(CLAIMS["PTP-4"], f"landscapes of {base} and {best_name} in {setting}"))
        parts, verdicts = [], []
        for variant in variants:
            interval = _paired_over_tasks(runs.values(setting, variant), control, seed)
            parts.append(f"{variant.removeprefix(base + '-')}: {fmt_interval(interval)}")
            verdicts.append(verdict(interval))
        scope = _scope(setting, base, runs.backbone)
        rows.append(
            _row(CLAIMS["PTP-5"], scope, "; ".join(parts), _n_pairs(treat, control), combine(verdicts))
        )
    return rows


def init_spread(runs: Runs, setting: str, method: str) -> Scores:
    """Per task and seed, the std (ddof 1) of the report score across prompt inits: the main run's init
    and every variant run of the method that changes ``prompt_init`` (IP-3)."""
    rows = runs.ok[(runs.ok["setting"] == setting) & (runs.ok["method"] == method)]
    main_inits = set(rows[rows["variant"] == ""]["prompt_init"])
    rows = rows[(rows["variant"] == "") | ~rows["prompt_init"].isin(main_inits)]
    out: Scores = {}
    for (task, seed), group in rows.groupby(["task", "seed"]):
        if group["prompt_init"].nunique() >= 2 and len(group) == group["prompt_init"].nunique():
            out.setdefault(str(task), {})[int(seed)] = float(group["report_score"].std(ddof=1))
    return out


def infoprompt_rows(runs: Runs, mi_checks: dict[str, Any] | None, seed: int) -> list[ClaimRow]:
    rows: list[ClaimRow] = []
    scopes = [
        (setting, base, methods)
        for setting, base, methods in runs.scopes(lambda o: o.startswith(INFOPROMPT))
        if runs.has(setting, base)
    ]
    comparisons: list[tuple[str, str, Literal["greater", "less"], int]] = [
        ("IP-1", "report_score", "greater", 2),
        ("IP-2", "steps_to_90", "less", 1),
    ]
    for claim_id, column, direction, digits in comparisons:
        claim = CLAIMS[claim_id]
        found = False
        for setting, base, methods in scopes:
            full = f"{base}-{INFOPROMPT}"
            if full not in methods:
                continue
            found = True
            treat, control = runs.values(setting, full, column), runs.values(setting, base, column)
            interval = _paired_over_tasks(treat, control, seed)
            result = verdict(interval, direction=direction, min_n=MIN_SEEDS)
            scope = _scope(setting, base, runs.backbone)
            rows.append(_row(claim, scope, fmt_interval(interval, digits), _n_pairs(treat, control), result))
        if not found:
            rows.append(_missing(claim, "InfoPrompt and its base in the grid"))
    found = False
    for setting, base, methods in scopes:
        full = f"{base}-{INFOPROMPT}"
        treat, control = init_spread(runs, setting, full), init_spread(runs, setting, base)
        if full in methods and treat and control:
            found = True
            interval = _paired_over_tasks(treat, control, seed)
            result = verdict(interval, direction="less", min_n=MIN_SEEDS)
            scope = _scope(
                setting, base, runs.backbone, "; inits " + ", ".join(sorted(set(runs.ok["prompt_init"])))
            )
            rows.append(_row(CLAIMS["IP-3"], scope, fmt_interval(interval), _n_pairs(treat, control), result))
    if not found:
        rows.append(
            _missing(CLAIMS["IP-3"], "variant runs crossing prompt init with InfoPrompt and its base")
        )
    found = False
    for setting, base, methods in scopes:
        full = f"{base}-{INFOPROMPT}"
        ablations = [m for m in (f"{full}-head", f"{full}-rep") if m in methods]
        if full not in methods or len(ablations) < 2:
            continue
        found = True
        parts, verdicts = [], []
        for ablation in ablations:
            interval = _paired_over_tasks(runs.values(setting, full), runs.values(setting, ablation), seed)
            parts.append(f"vs {ablation.removeprefix(base + '-')}: {fmt_interval(interval)}")
            verdicts.append(verdict(interval, min_n=MIN_SEEDS))
        n = _n_pairs(runs.values(setting, full), runs.values(setting, ablations[0]))
        rows.append(
            _row(CLAIMS["IP-4"], _scope(setting, base, runs.backbone), "; ".join(parts), n, combine(verdicts))
        )
    if not found:
        rows.append(_missing(CLAIMS["IP-4"], "InfoPrompt and both ablations in the grid"))
    claim = CLAIMS["IP-5"]
    if mi_checks is None:
        rows.append(_missing(claim, "the MI-convergence study (prompttune mi-check)"))
    else:
        checks = mi_checks["checks"]
        as_expected = sum(c["passed"] == c["expected"] for c in checks)
        real = mi_checks.get("real", {}).get("settings", {})
        scope = f"synthetic convex problems; real: {real.get('backbone', 'skipped')}"
        result: Verdict = "reproduced" if checks and as_expected == len(checks) else "not reproduced"
        rows.append(
            _row(claim, scope, f"{as_expected} of {len(checks)} checks as expected", str(len(checks)), result)
        )
    return rows


def claim_rows(runs: pd.DataFrame, mi_checks: dict[str, Any] | None, seed: int = 0) -> list[ClaimRow]:
    """Every claim of CLAIMS.md, in its order, with one row per scope the runs cover."""
    indexed = Runs(runs)
    return ptp_rows(indexed, seed) + infoprompt_rows(indexed, mi_checks, seed)
