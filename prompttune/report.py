"""Render the aggregated results into one self-contained HTML page (inline CSS, no network)."""

from __future__ import annotations

import dataclasses
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
    blob = json.dumps(
        {"grid": dataclasses.asdict(params.grid), "run": dataclasses.asdict(params.run)}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cell_text(row: Any) -> str:
    if row.n_ok == 0:
        return "—"
    std = "" if pd.isna(row.std) else f" ± {row.std:.1f}"
    return f"{row.mean:.1f}{std}"


def results_rows(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per setting × task × method: mean ± std over the ``ok`` runs, with n and the baseline."""
    return [
        {
            "setting": r.setting,
            "task": r.task,
            "split": r.report_split,
            "method": f"{r.method} / {r.variant}" if r.variant else r.method,
            "score": cell_text(r),
            "n": f"{r.n_ok} of {r.n_runs}",
            "majority": f"{r.majority_score:.1f}",
            "params": f"{int(r.trainable_params):,}",
            "wall": f"{r.wall_time_s:.0f}",
        }
        for r in summary.itertuples()
    ]


def render_report(params: Params, results_dir: Path, out_path: Path, root: Path = Path(".")) -> Path:
    summary = pd.read_csv(results_dir / "summary.csv", dtype={"variant": str}).fillna({"variant": ""})
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
        rows=results_rows(summary),
        problems=runs[runs["status"] != "ok"].to_dict("records"),
        provenance=prov,
        data_sha=sorted(data_sha.items()),
    )
    atomic_write_text(out_path, html)
    return out_path
