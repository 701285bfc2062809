"""Render the aggregated results into one self-contained HTML page (inline CSS and PNG figures, no
network): claims first, then results per setting, stability, convergence, landscapes, the MI checks,
excluded runs, cost, method details and provenance. The data behind every table sits next to the page
(results/*.csv, results/claims.csv)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from prompttune import figures, paper_numbers
from prompttune.aggregate import LANDSCAPES, read_json
from prompttune.claims import MIN_SEEDS, N_RESAMPLES, claim_rows
from prompttune.config import Params, build, expand_grid, resolve_run, split_method
from prompttune.io import atomic_write_text
from prompttune.landscape import surfaces_figure
from prompttune.objectives import OBJECTIVES
from prompttune.stats import bootstrap_ci, variance_test

MI_CHECKS = Path("results/mi_check")
TEXT_COLUMNS = ["variant", "reason", "select_split", "report_split", "prompt_init"]


def params_hash(params: Params) -> str:
    """sha256 of the resolved ``grid``, ``run`` and ``studies`` blocks (what determines the results)."""
    blob = json.dumps(
        {name: dataclasses.asdict(getattr(params, name)) for name in ("grid", "run", "studies")},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def read_runs(path: Path) -> pd.DataFrame:
    runs = pd.read_csv(path)
    for column in TEXT_COLUMNS:
        runs[column] = runs[column].fillna("").astype(str)
    return runs


def mean_std(values: pd.Series, digits: int = 1) -> str:
    values = values.dropna()
    if values.empty:
        return "—"
    std = f" ± {values.std(ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{values.mean():.{digits}f}{std}"


def results_tables(params: Params, runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per setting: method × task cells (mean ± std, n of m, 95 % CI, paper number, difference) and the
    papers' average column (mean over tasks of the per-task means, when every task has ok runs)."""
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
                ok = group[group["status"] == "ok"]["report_score"]
                interval = bootstrap_ci(ok.tolist(), n_resamples=N_RESAMPLES)
                published = paper_numbers.score(setting, params.run.backbone, method, task)
                cells.append(
                    {
                        "score": mean_std(ok),
                        "n": f"{len(ok)} of {len(group)}",
                        "ci": "—"
                        if math.isnan(interval.low)
                        else f"[{interval.low:.1f}, {interval.high:.1f}]",
                        "paper": "—" if published is None else f"{published[0]:.1f}",
                        "paper_source": "" if published is None else published[1],
                        "diff": "—" if published is None or ok.empty else f"{ok.mean() - published[0]:+.1f}",
                    }
                )
                means.append(ok.mean() if len(ok) else math.nan)
            average = "—" if any(math.isnan(m) for m in means) else f"{np.mean(means):.1f}"
            rows.append({"method": method, "cells": cells, "average": average})
        split = {task: sub[sub["task"] == task]["report_split"].iloc[0] for task in tasks}
        majority = {task: f"{sub[sub['task'] == task]['majority_score'].iloc[0]:.1f}" for task in tasks}
        tables.append(
            {"setting": setting, "tasks": tasks, "split": split, "majority": majority, "rows": rows}
        )
    return tables


def variant_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Variant runs next to the main run of the same method: mean ± std per cell × method × variant."""
    rows = []
    for (setting, task, method), group in runs.groupby(["setting", "task", "method"], sort=False):
        if (group["variant"] == "").all():
            continue
        for variant, sub in group.groupby("variant", sort=False):
            ok = sub[sub["status"] == "ok"]
            rows.append(
                {
                    "cell": f"{setting}.{task}",
                    "method": method,
                    "variant": variant or "(main grid)",
                    "init": ", ".join(sorted(set(sub["prompt_init"]))),
                    "score": mean_std(ok["report_score"]),
                    "n": f"{len(ok)} of {len(sub)}",
                }
            )
    return rows


def stability(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Per setting × task: the std across seeds of every method and a Brown–Forsythe test of equal
    variances across all methods."""
    out = []
    ok = runs[(runs["status"] == "ok") & (runs["variant"] == "")]
    for (setting, task), group in ok.groupby(["setting", "task"], sort=False):
        by_method = {m: g["report_score"].tolist() for m, g in group.groupby("method", sort=False)}
        test = variance_test(*by_method.values()) if len(by_method) >= 2 else None
        out.append(
            {
                "cell": f"{setting}.{task}",
                "stds": {
                    m: (f"{np.std(v, ddof=1):.2f}" if len(v) > 1 else "—") for m, v in by_method.items()
                },
                "test": "—"
                if test is None or math.isnan(test.p_value)
                else f"F = {test.statistic:.2f}, p = {test.p_value:.3f}",
            }
        )
    return out


def steps_table(runs: pd.DataFrame) -> list[dict[str, Any]]:
    ok = runs[(runs["status"] == "ok") & (runs["variant"] == "")]
    return [
        {
            "cell": f"{s}.{t}",
            "method": m,
            "steps": mean_std(g["steps_to_90"], 0),
            "total": int(g["steps"].max()),
        }
        for (s, t, m), g in ok.groupby(["setting", "task", "method"], sort=False)
    ]


def landscapes(params: Params, runs: pd.DataFrame, root: Path) -> list[dict[str, Any]]:
    """Per cell: the first landscape seed's surface of every studied method on one colour scale, and
    sharpness mean ± std over seeds."""
    study = params.studies.landscape
    out = []
    for cell in study.cells:
        paths = [
            root / LANDSCAPES / cell / m / f"seed{study.seeds[0]}" / "surface.json" for m in study.methods
        ]
        if not all(path.is_file() for path in paths):
            continue
        surfaces = [read_json(path) for path in paths]
        setting, task = cell.split(".", 1)
        sub = runs[(runs["setting"] == setting) & (runs["task"] == task) & (runs["variant"] == "")]
        sharp = [
            {"method": m, "sharpness": mean_std(sub[sub["method"] == m]["sharpness"], 4)}
            for m in study.methods
        ]
        figure = figures.figure_uri(surfaces_figure(surfaces, list(study.methods)))
        out.append({"cell": cell, "figure": figure, "sharpness": sharp})
    return out


def mi_section(root: Path) -> dict[str, Any] | None:
    path = root / MI_CHECKS / "checks.json"
    if not path.is_file():
        return None
    result = read_json(path)
    images = [
        figures.file_uri(p)
        for p in (root / MI_CHECKS / n for n in ("synthetic.png", "real.png"))
        if p.is_file()
    ]
    checks = [
        {
            "name": c["name"],
            "expected": "pass" if c["expected"] else "fail",
            "outcome": "pass" if c["passed"] else "fail",
            "as_expected": c["passed"] == c["expected"],
            "measured": json.dumps(c.get("measured", {}), default=str),
        }
        for c in result["checks"]
    ]
    return {"result": result, "checks": checks, "images": images}


def cost_rows(runs: pd.DataFrame) -> list[dict[str, Any]]:
    ok = runs[runs["variant"] == ""]
    return [
        {
            "cell": f"{s}.{t}",
            "method": m,
            "params": f"{int(g['trainable_params'].iloc[0]):,}",
            "wall": mean_std(g["wall_time_s"], 0),
            "throughput": mean_std(g["train_examples_per_s"], 1),
            "memory": f"{g['peak_memory_mb'].max():.0f}",
        }
        for (s, t, m), g in ok.groupby(["setting", "task", "method"], sort=False)
    ]


def _fields(obj: Any, prefix: str) -> list[dict[str, str]]:
    return [
        {"key": f"{prefix}.{f.name}", "value": str(getattr(obj, f.name)), "help": f.metadata.get("help", "")}
        for f in dataclasses.fields(obj)
        if f.init
    ]


def method_details(params: Params) -> list[dict[str, str]]:
    """Every setting a run of this profile used (the first run's resolved config; per-task overrides are
    in params.yaml), every objective's options, the studies and the statistics."""
    first = resolve_run(params, expand_grid(params)[0])
    rows = [
        {
            "key": "run.backbone",
            "value": first.backbone,
            "help": "frozen; only prompts, head and objective train",
        }
    ]
    for obj, prefix in ((first.prompt, "prompt"), (first.head, "head"), (first.train, "train")):
        rows += _fields(obj, prefix)
    objectives = sorted({split_method(cell.method)[1] for cell in expand_grid(params)})
    for name in objectives:
        config_class = OBJECTIVES.get(name).config_class
        options = params.run.objectives.get(name, {})
        rows += _fields(build(config_class, options, f"run.objectives.{name}"), f"objectives.{name}")
    rows += _fields(params.studies.landscape, "studies.landscape")
    rows += _fields(params.studies.mi_check, "studies.mi_check")
    rows += [
        {
            "key": "claims.ci",
            "value": f"95 % percentile bootstrap, {N_RESAMPLES} resamples, seed 0",
            "help": "choice",
        },
        {
            "key": "claims.min_seeds",
            "value": str(MIN_SEEDS),
            "help": "fewer paired seeds: inconclusive (choice)",
        },
        {"key": "claims.best_variant", "value": "highest mean selection-split score", "help": "choice"},
    ]
    return rows


def render_report(params: Params, results_dir: Path, out_path: Path, root: Path = Path(".")) -> Path:
    runs = read_runs(results_dir / "runs.csv")
    curves = pd.read_csv(results_dir / "curves.csv").fillna({"variant": ""})
    mi = mi_section(root)
    claims = claim_rows(runs, mi["result"] if mi else None)
    atomic_write_text(
        results_dir / "claims.csv", pd.DataFrame([dataclasses.asdict(c) for c in claims]).to_csv(index=False)
    )
    first = expand_grid(params)[0]
    prov = read_json(root / first.run_dir / "provenance.json")
    data_sha: dict[str, str] = {}
    for cell in expand_grid(params):
        data_sha.update(read_json(root / cell.run_dir / "provenance.json")["data_sha256"])
    settings = list(dict.fromkeys(runs["setting"]))
    main_methods = list(dict.fromkeys(runs[runs["variant"] == ""]["method"]))
    env = Environment(
        loader=PackageLoader("prompttune", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )
    html = env.get_template("report.html.j2").render(
        profile=params.profile or "custom",
        description=params.profiles.get(params.profile, {}).get("description", ""),
        params_hash=params_hash(params),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        backbone=params.run.backbone,
        seeds=params.grid.seeds,
        claims=claims,
        results=results_tables(params, runs),
        variants=variant_rows(runs),
        strips=[{"setting": s, "figure": figures.seed_strip(runs, s)} for s in settings],
        stability=stability(runs),
        curves=[{"setting": s, "figure": figures.convergence(curves, s, main_methods)} for s in settings],
        steps=steps_table(runs),
        landscapes=landscapes(params, runs, root),
        mi=mi,
        problems=runs[runs["status"] != "ok"].to_dict("records"),
        cost=cost_rows(runs),
        details=method_details(params),
        provenance=prov,
        data_sha=sorted(data_sha.items()),
    )
    atomic_write_text(out_path, html)
    return out_path
