"""Render the aggregated results into one self-contained HTML page (inline CSS, SVG figures and a little
script for sorting and filtering; no network): claims first, then results per setting, stability,
convergence, landscapes, the MI checks, every run, excluded runs, cost, method details and provenance.

The page reads only records: ``configs/grid.json`` (the profile and its stages), ``results/*.csv`` (the
aggregate), each run's ``metrics.json`` / ``provenance.json`` and the studies' outputs — never
params.yaml. The data behind every table sits next to the page (results/*.csv, results/claims.csv).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined

from prompttune import claims as claims_module
from prompttune import figures, paper_numbers, paths
from prompttune.claims import CLAIMS, claim_rows, claims_table
from prompttune.config import arm_seeds_path
from prompttune.decide import annotate, design_of, read_state
from prompttune.io import atomic_write_json, atomic_write_text, read_json
from prompttune.landscape_plots import surfaces_figure
from prompttune.pipeline import GridRecord
from prompttune.results import code_provenance, load_metrics, read_runs
from prompttune.stats import ALPHA, POWER, mean_interval


def mean_sd(values: pd.Series, digits: int = 1) -> str:
    values = values.dropna()
    if values.empty:
        return "—"
    sd = f" ± {values.std(ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{values.mean():.{digits}f}{sd}"


def _usable(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] != "failed"]


def _counts(group: pd.DataFrame) -> str:
    usable = _usable(group)
    collapsed = int((group["status"] == "collapsed").sum())
    failed = len(group) - len(usable)
    notes = [f"{count} {text}" for count, text in ((collapsed, "collapsed"), (failed, "failed")) if count]
    return f"{len(usable)} of {len(group)}" + (f" ({', '.join(notes)})" if notes else "")


def results_tables(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per setting: method × task cells (mean ± sd over the runs that did not fail — collapsed runs count —,
    n, the Student 95 % interval of the mean, paper number, difference) and the papers' average column."""
    tables = []
    main = runs[runs["variant"] == ""]
    for setting in dict.fromkeys(main["setting"]):
        sub = main[main["setting"] == setting]
        tasks = list(dict.fromkeys(sub["task"]))
        rows = []
        for method in dict.fromkeys(sub["method"]):
            cells, means = [], []
            for task in tasks:
                group = sub[(sub["task"] == task) & (sub["method"] == method)]
                if group.empty:
                    cells.append(None)
                    means.append(math.nan)
                    continue
                scores = _usable(group)["report_score"]
                low, high = mean_interval(scores.tolist())
                published = paper_numbers.score(setting, group["backbone"].iloc[0], method, task)
                cells.append(
                    {
                        "score": mean_sd(scores),
                        "n": _counts(group),
                        "ci": "—" if math.isnan(low) else f"[{low:.1f}, {high:.1f}]",
                        "paper": "—" if published is None else f"{published[0]:.1f}",
                        "paper_source": "" if published is None else published[1],
                        "diff": "—"
                        if published is None or scores.empty
                        else f"{scores.mean() - published[0]:+.1f}",
                        "sort": "" if scores.empty else f"{scores.mean():.3f}",
                    }
                )
                means.append(scores.mean() if len(scores) else math.nan)
            average = "—" if any(math.isnan(m) for m in means) else f"{np.mean(means):.1f}"
            rows.append({"method": method, "cells": cells, "average": average})
        split = {task: sub[sub["task"] == task]["report_split"].iloc[0] for task in tasks}
        majority = {
            task: f"{sub[sub['task'] == task]['majority_score'].dropna().iloc[0]:.1f}" for task in tasks
        }
        tables.append(
            {"setting": setting, "tasks": tasks, "split": split, "majority": majority, "rows": rows}
        )
    return tables


def variant_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Variant runs next to the main run of the same method: mean ± sd per cell × method × variant."""
    rows = []
    for (setting, task, method), group in runs.groupby(["setting", "task", "method"], sort=False):
        if (group["variant"] == "").all():
            continue
        for variant, sub in group.groupby("variant", sort=False):
            rows.append(
                {
                    "cell": f"{setting}.{task}",
                    "method": method,
                    "variant": variant or "(main grid)",
                    "init": ", ".join(sorted(set(sub["prompt_init"]))),
                    "score": mean_sd(_usable(sub)["report_score"]),
                    "n": _counts(sub),
                }
            )
    return rows


def stability(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per cell: the sd across seeds of every method's report score, collapsed runs included."""
    out = []
    main = _usable(runs[runs["variant"] == ""])
    for (setting, task), group in main.groupby(["setting", "task"], sort=False):
        by_method = {m: g["report_score"].tolist() for m, g in group.groupby("method", sort=False)}
        collapsed = {
            m: int((g["status"] == "collapsed").sum()) for m, g in group.groupby("method", sort=False)
        }
        out.append(
            {
                "cell": f"{setting}.{task}",
                "rows": [
                    {
                        "method": m,
                        "sd": f"{np.std(v, ddof=1):.2f}" if len(v) > 1 else "—",
                        "n": len(v),
                        "collapsed": collapsed[m],
                    }
                    for m, v in by_method.items()
                ],
            }
        )
    return out


def convergence_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per cell × method: the learning-curve area in points above the majority class (a fraction in
    runs.csv), mean ± sd over seeds, how many seeds learned and converged, and the steps trained."""
    main = _usable(runs[runs["variant"] == ""])
    return [
        {
            "cell": f"{s}.{t}",
            "method": m,
            "learning_area": mean_sd(g["learning_area"]),
            "learned": f"{int(g['learned'].sum())} of {len(g)}",
            "converged": f"{int(g['converged'].sum())} of {len(g)}",
            "steps": mean_sd(g["steps"].astype(float), 0),
            "cap": int(g["step_cap"].max()),
        }
        for (s, t, m), g in main.groupby(["setting", "task", "method"], sort=False)
    ]


def landscapes(grid: GridRecord, runs: pd.DataFrame, root: Path) -> list[dict[str, Any]]:
    """Per cell: the first landscape seed's surface of every studied method on one colour scale, and the
    calibrated sharpness mean ± sd over seeds."""
    study = grid.landscape
    first = study["seeds"][0] if study["seeds"] else 1  # under grid.decide every arm trains seeds 1…n
    out = []
    for cell in study["cells"]:
        methods = [m for m in study["methods"] if (root / paths.landscape_dir(cell, m)).is_dir()]
        if not methods:
            continue
        surfaces = [
            read_json(root / paths.landscape_dir(cell, m) / f"seed{first}" / "surface.json") for m in methods
        ]
        methods = [m for m, surface in zip(methods, surfaces, strict=True) if "axis" in surface]
        surfaces = [surface for surface in surfaces if "axis" in surface]
        if not surfaces:
            continue
        setting, task = cell.split(".", 1)
        sub = runs[(runs["setting"] == setting) & (runs["task"] == task) & (runs["variant"] == "")]
        sharp = [
            {"method": m, "sharpness": mean_sd(sub[sub["method"] == m]["sharpness"], 4)} for m in methods
        ]
        out.append(
            {"cell": cell, "figure": figures.svg(surfaces_figure(surfaces, methods)), "sharpness": sharp}
        )
    return out


def mi_section(root: Path) -> dict[str, Any] | None:
    path = root / paths.MI_CHECK_DIR / "checks.json"
    if not path.is_file():
        return None
    result = read_json(path)
    images = [
        figures.file_uri(p)
        for p in (root / paths.MI_CHECK_DIR / n for n in ("synthetic.png", "real.png"))
        if p.is_file()
    ]
    checks = [
        {
            "name": c["name"],
            "role": c["role"],
            "outcome": "pass" if c["passed"] else "fail",
            "as_expected": c["passed"] == (c["role"] == "check"),
            "steps": c["steps"],
            "measured": json.dumps(c.get("measured", {}), default=str),
        }
        for c in result["checks"]
    ]
    return {"result": result, "checks": checks, "images": images}


def cost_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    main = runs[runs["variant"] == ""]
    return [
        {
            "cell": f"{s}.{t}",
            "method": m,
            "params": f"{int(g['trainable_params'].iloc[0]):,}",
            "wall": mean_sd(g["wall_time_s"], 0),
            "throughput": mean_sd(g["train_examples_per_s"], 1),
            "memory": f"{g['peak_memory_mb'].max():.0f}",
            "precision": ", ".join(sorted(set(g["precision"]))),
        }
        for (s, t, m), g in main.groupby(["setting", "task", "method"], sort=False)
    ]


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(f"{prefix}.{key}", item).items()}
    return {prefix: value}


def _help(key: str, objective: str) -> str:
    """The meaning of a config key, from the dataclass field's help (objective options from the
    objective's config class)."""
    from prompttune import config as config_module
    from prompttune.objectives import OBJECTIVES  # imports torch: when a page is rendered, not on import

    section, _, name = key.partition(".")
    classes = {
        "prompt": config_module.PromptConfig,
        "head": config_module.HeadConfig,
        "train": config_module.TrainConfig,
    }
    cls = OBJECTIVES.get(objective).config_class if section == "objective_options" else classes.get(section)
    if cls is None:
        return ""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    return ""


def method_details(grid: GridRecord, root: Path) -> dict[str, Any]:
    """Every setting each stage ran with, from its runs' own records (``metrics.json`` embeds the resolved
    config): keys every stage shares once, the others per stage."""
    stage_configs = {}
    for stage in grid.stages:
        config = load_metrics(root / stage.dir / f"seed{stage.seeds[0]}" / "metrics.json").config
        flat = _flat("", dataclasses.asdict(config))
        for identity in (".setting", ".task", ".method", ".seed", ".variant"):
            flat.pop(identity)
        stage_configs[stage.key] = ({k.lstrip("."): v for k, v in flat.items()}, config.objective)
    keys = sorted({k for flat, _ in stage_configs.values() for k in flat})
    shared, differing = [], []
    for key in keys:
        values = {stage: flat.get(key, "—") for stage, (flat, _) in stage_configs.items()}
        objective = next((obj for flat, obj in stage_configs.values() if key in flat), "ce")
        row = {"key": key, "help": _help(key, objective)}
        if len({json.dumps(v, default=str) for v in values.values()}) == 1 and not key.startswith(
            "objective_options"
        ):
            shared.append({**row, "value": str(next(iter(values.values())))})
        else:
            differing.append({**row, "values": {stage: str(v) for stage, v in values.items()}})
    return {"shared": shared, "differing": differing, "stages": list(stage_configs)}


def data_rows(grid: GridRecord, root: Path) -> list[dict[str, Any]]:
    """Per cell, from its runs' records: split sizes, examples dropped because their text is in a later
    split (or repeats one), and examples ``max_length`` cuts."""
    rows, seen = [], set()
    for stage in grid.stages:
        if stage.cell in seen:
            continue
        seen.add(stage.cell)
        metrics = load_metrics(root / stage.dir / f"seed{stage.seeds[0]}" / "metrics.json")
        data, train = metrics.data, metrics.config.train
        rows.append({
            "cell": stage.cell,
            "sizes": ", ".join(f"{k} {v}" for k, v in data.sizes.items()),
            "removed": ", ".join(f"{k} {v}" for k, v in data.removed_overlap.items()) or "—",
            "truncated": ", ".join(f"{k} {v}" for k, v in data.truncated.items()) or "—",
            "max_length": train.max_length,
        })  # fmt: skip
    return rows


def calibration() -> dict[str, Any]:
    """The calibration benchmark's measured maximum false-verdict rate (``data/calibration.json``, written
    by ``benchmarks/verdict_calibration.py --record``): what the page quotes as the error rate."""
    with files("prompttune.data").joinpath("calibration.json").open(encoding="utf-8") as handle:
        return json.load(handle)


def statistics_details() -> list[dict[str, str]]:
    measured = calibration()
    profiles = measured["profiles"].values()
    counts = sorted({entry["replicates"] for entry in profiles})
    replicates = f"{counts[0]}–{counts[-1]}" if len(counts) > 1 else f"{counts[0]}"
    dates = ", ".join(sorted({entry["date"] for entry in profiles}))
    rows = [
        {"key": "α per side", "value": f"{ALPHA:g}", "help": "the level each test is run at"},
        {
            "key": "largest false-verdict rate measured",
            "value": f"{measured['max_false_verdict_rate']:.4f}",
            "help": f"per side, over every profile (the adaptive design's whole loop included) and null "
            f"family ({replicates} replicates per scenario; {dates}; benchmarks/verdict_calibration.py)",
        },
        {"key": "power", "value": f"{POWER:.0%}", "help": "the 'detectable' and 'seeds needed' columns"},
        {
            "key": "best PTP variant",
            "value": "highest mean selection-split score",
            "help": "picked from k variants, so its rows test at α/k (Bonferroni)",
        },
    ]
    for claim in CLAIMS.values():
        if not math.isnan(claim.reference):
            unit = claims_module.RELATIVE.get(claim.id, "points")
            rows.append(
                {
                    "key": f"reference effect {claim.id}",
                    "value": f"{claim.reference:g} ({unit})",
                    "help": claim.reference_source,
                }
            )
    return rows


def verdict_counts(rows: list[claims_module.ClaimRow]) -> list[dict[str, Any]]:
    """How many rows got each verdict, in the verdicts' order (the summary above the claims table)."""
    counts = {verdict: sum(row.verdict == verdict for row in rows) for verdict in claims_module.VERDICTS}
    return [{"verdict": verdict, "count": count} for verdict, count in counts.items() if count]


def claims_metrics(rows: list[claims_module.ClaimRow]) -> dict[str, dict[str, Any]]:
    """Every claim's verdict, estimate and interval (at ``level``, the level of the look its row reports),
    keyed by claim and scope: the DVC metric (``metrics/claims.json``) through which ``dvc exp show`` and
    ``dvc metrics diff`` compare verdicts."""

    def number(value: float) -> float | None:
        return round(value, 6) if math.isfinite(value) else None

    return {
        (f"{row.id} {row.setting}/{row.base}" if row.setting else row.id): {
            "verdict": row.verdict,
            "estimate": number(row.estimate),
            "low": number(row.low),
            "high": number(row.high),
            "level": number(row.level),
            "seeds": row.n_seeds,
        }
        for row in rows
    }


def verdict_lines(claims_csv: Path) -> list[str]:
    """The claims table as a terminal prints it: claim, scope, verdict and measured effect per row."""
    table = pd.read_csv(claims_csv, keep_default_na=False)
    scopes = [f"{row.setting}/{row.base}" if row.setting else "—" for row in table.itertuples()]
    width = max(len(scope) for scope in scopes)
    lines = [f"{'claim':6}  {'scope':{width}}  {'verdict':20}  measured"]
    for row, scope in zip(table.itertuples(), scopes, strict=True):
        lines.append(f"{row.id:6}  {scope:{width}}  {row.verdict:20}  {row.measured}")
    return lines


def params_hash(grid_path: Path) -> str:
    return hashlib.sha256(grid_path.read_bytes()).hexdigest() if grid_path.is_file() else "unknown"


def run_table(runs: pd.DataFrame, out_path: Path, root: Path) -> list[dict[str, Any]]:
    """Every run, for the page's per-seed view, with a link to its folder relative to the page."""
    base = out_path.resolve().parent
    rows = []
    for row in runs.itertuples():
        rows.append(
            {
                "cell": f"{row.setting}.{row.task}",
                "method": row.method,
                "variant": row.variant,
                "seed": row.seed,
                "status": row.status,
                "converged": "yes" if row.converged else "no",
                "select": "—" if math.isnan(row.select_score) else f"{row.select_score:.1f}",
                "report": "—" if math.isnan(row.report_score) else f"{row.report_score:.1f}",
                "step": "—" if math.isnan(row.selected_step) else f"{int(row.selected_step)}",
                "steps": row.steps,
                "link": os.path.relpath((root / row.run_dir).resolve(), base),
            }
        )
    return rows


def render_report(grid: GridRecord, results_dir: Path, out_path: Path, root: Path = Path(".")) -> Path:
    runs = read_runs(results_dir / "runs.csv")
    curves = pd.read_csv(results_dir / "curves.csv", keep_default_na=False, na_values={"train_loss": [""]})
    mi = mi_section(root)
    rows = claim_rows(runs, mi["result"] if mi else None, design=design_of(grid.decide))
    loop = read_state(arm_seeds_path(root / "params.yaml")) if grid.decide else None
    if loop is not None:
        rows = annotate(rows, runs, loop)
    computed_by = code_provenance()
    atomic_write_text(results_dir / "claims.csv", claims_table(rows, computed_by).to_csv(index=False))
    atomic_write_json(root / paths.CLAIMS_METRICS, claims_metrics(rows))
    first = grid.stages[0]
    prov = read_json(root / first.dir / f"seed{first.seeds[0]}" / "provenance.json")
    data_sha: dict[str, str] = {}
    for stage in grid.stages:
        data_sha.update(
            read_json(root / stage.dir / f"seed{stage.seeds[0]}" / "provenance.json")["data_sha256"]
        )
    settings = list(dict.fromkeys(runs["setting"]))
    env = Environment(
        loader=PackageLoader("prompttune", "templates"), autoescape=True, undefined=StrictUndefined
    )
    html = env.get_template("report.html.j2").render(
        profile=grid.profile or "custom",
        description=grid.description,
        params_hash=params_hash(root / paths.GRID_RECORD),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        backbones=", ".join(sorted(set(runs["backbone"]))),
        seeds=", ".join(str(n) for n in sorted({len(stage.seeds) for stage in grid.stages})),
        claims=rows,
        results=results_tables(runs),
        variants=variant_rows(runs),
        strips=[{"setting": s, "figure": figures.seed_strip(runs, s)} for s in settings],
        stability=stability(runs),
        curves=[{"setting": s, "figure": figures.convergence(curves, s)} for s in settings],
        convergence=convergence_rows(runs),
        landscapes=landscapes(grid, runs, root),
        mi=mi,
        runs=run_table(runs, out_path, root),
        failed=runs[runs["status"] == "failed"].to_dict("records"),
        collapsed=runs[runs["status"] == "collapsed"].to_dict("records"),
        cost=cost_rows(runs),
        details=method_details(grid, root),
        data=data_rows(grid, root),
        statistics=statistics_details(),
        error_rate=calibration()["max_false_verdict_rate"],
        verdict_counts=verdict_counts(rows),
        forest=figures.forest(rows),
        trajectories=figures.trajectories(rows),
        decide=grid.decide,
        rounds=loop["rounds"] if loop else [],
        computed_by=computed_by,
        provenance=prov,
        data_sha=sorted(data_sha.items()),
    )
    atomic_write_text(out_path, html)
    return out_path
