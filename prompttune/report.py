"""Render the aggregated results into one self-contained HTML page (inline CSS, no network)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from prompttune.aggregate import read_json
from prompttune.config import Params, expand_grid
from prompttune.io import atomic_write_text


def params_hash(params: Params) -> str:
    """sha256 of the resolved ``grid`` and ``run`` blocks (what determines the results)."""
    import dataclasses

    blob = json.dumps(
        {"grid": dataclasses.asdict(params.grid), "run": dataclasses.asdict(params.run)}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cell_text(row: Any) -> str:
    if row.n_ok == 0:
        return "—"
    std = "" if pd.isna(row.std) else f" ± {row.std:.1f}"
    return f"{row.mean:.1f}{std}"


def results_tables(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Per setting: rows = methods, columns = tasks, cells = mean ± std with n."""
    tables = []
    for setting, part in summary.groupby("setting", sort=False):
        tasks = list(dict.fromkeys(part["task"]))
        methods = list(dict.fromkeys(part["method"]))
        cells = {(r.method, r.task): r for r in part.itertuples()}
        rows = []
        for method in methods:
            rows.append(
                {
                    "method": method,
                    "cells": [
                        {
                            "text": cell_text(cells[method, task]),
                            "n": f"{cells[method, task].n_ok} of {cells[method, task].n_runs}",
                        }
                        for task in tasks
                    ],
                }
            )
        majority = [f"{cells[methods[0], task].majority_score:.1f}" for task in tasks]
        splits = [cells[methods[0], task].report_split for task in tasks]
        tables.append(
            {"setting": setting, "tasks": tasks, "rows": rows, "majority": majority, "splits": splits}
        )
    return tables


def render_report(params: Params, results_dir: Path, out_path: Path, root: Path = Path(".")) -> Path:
    summary = pd.read_csv(results_dir / "summary.csv")
    runs = pd.read_csv(results_dir / "runs.csv", keep_default_na=False)
    first = expand_grid(params)[0]
    prov = read_json(root / first.run_dir / "provenance.json")
    data_sha: dict[str, str] = {}
    for cell in expand_grid(params):
        data_sha.update(read_json(root / cell.run_dir / "provenance.json")["data_sha256"])
    env = Environment(
        loader=PackageLoader("prompttune", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )
    html = env.get_template("report.html.j2").render(
        profile=params.profile or "custom",
        params_hash=params_hash(params),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        backbone=params.run.backbone,
        seeds=params.grid.seeds,
        tables=results_tables(summary),
        problems=runs[runs["status"] != "ok"].to_dict("records"),
        provenance=prov,
        data_sha=sorted(data_sha.items()),
    )
    atomic_write_text(out_path, html)
    return out_path
