"""Collect the grid's runs into tables: one row per run (with its steps-to-90 % and, where the
landscape study covered it, its sharpness), the selection curves in long form, and mean ± std per
setting × task × method × variant.

Only runs with status ``ok`` enter means; failed and collapsed runs are counted (``n_ok`` of
``n_runs``) and listed. Scores are reported in percent. Standard deviations use ddof = 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from prompttune.config import Cell, Params, expand_grid
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_write_json, atomic_write_text
from prompttune.results import load_metrics
from prompttune.stats import steps_to_fraction

LANDSCAPES = Path("results/landscape")

RUN_COLUMNS = ["setting", "task", "method", "seed", "status", "reason", "select_score", "report_score"]


def read_curve(path: Path) -> pd.DataFrame:
    try:
        curve = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise PromptTuneError(f"{path}: cannot read ({exc})") from exc
    if not {"step", "select_score"} <= set(curve.columns):
        raise PromptTuneError(f"{path}: expected columns step and select_score")
    return curve


def run_sharpness(params: Params, cell: Cell, root: Path) -> float:
    """The run's sharpness from the landscape study, nan when the study does not cover the run."""
    study = params.studies.landscape
    if (
        cell.variant
        or cell.cell not in study.cells
        or cell.method not in study.methods
        or cell.seed not in study.seeds
    ):
        return float("nan")
    path = root / LANDSCAPES / cell.cell / cell.method / f"seed{cell.seed}" / "surface.json"
    if not path.is_file():
        raise PromptTuneError(f"{path}: missing; run `prompttune landscape` for {cell.cell} {cell.method}")
    return float(read_json(path)["sharpness"])


def run_tables(params: Params, root: Path = Path(".")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per run of the grid (every run must exist: a missing one is an error), and every run's
    selection curve (long form)."""
    rows: list[dict[str, Any]] = []
    curves: list[pd.DataFrame] = []
    for cell in expand_grid(params):
        path = root / cell.run_dir / "metrics.json"
        if not path.is_file():
            raise PromptTuneError(f"{path}: missing; run `prompttune train` for this cell first")
        m = load_metrics(path)
        curve = read_curve(root / cell.run_dir / "curve.csv")
        curves.append(
            curve[["step", "select_score"]].assign(
                setting=m.setting, task=m.task, method=m.method, variant=m.variant or "", seed=m.seed
            )
        )
        row: dict[str, Any] = {
            "setting": m.setting,
            "task": m.task,
            "task_version": m.task_version,
            "method": m.method,
            "base": m.base,
            "objective": m.objective,
            "variant": m.variant or "",
            "prompt_init": m.prompt_init,
            "seed": m.seed,
            "status": m.status,
            "reason": m.reason or "",
            "select_split": m.select.name if m.select else "",
            "select_score": 100 * m.select.score if m.select else float("nan"),
            "report_split": m.report.name if m.report else "",
            "report_score": 100 * m.report.score if m.report else float("nan"),
            "majority_score": 100 * m.report.majority_score if m.report else float("nan"),
            "selected_step": m.selected_step,
            "steps": m.steps,
            "steps_to_90": steps_to_fraction(curve["step"].tolist(), curve["select_score"].tolist(), 0.9),
            "sharpness": run_sharpness(params, cell, root),
            "trainable_params": m.trainable_params,
            "wall_time_s": m.wall_time_s,
            "train_examples_per_s": m.train_examples_per_s,
            "peak_memory_mb": m.peak_memory_mb,
            "backbone": m.backbone,
        }
        if m.report:
            row.update({f"report_{k}": 100 * v for k, v in m.report.metrics.items()})
        rows.append(row)
    curve_columns = ["setting", "task", "method", "variant", "seed", "step", "select_score"]
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)[curve_columns]


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting × task × method × variant, over the ``ok`` runs: mean and std (ddof = 1) of the
    report score, mean steps-to-90 % and mean sharpness."""
    keys = ["setting", "task", "method", "variant"]
    ok = runs[runs["status"] == "ok"]
    stats = ok.groupby(keys, sort=False).agg(
        mean=("report_score", "mean"),
        std=("report_score", "std"),
        n_ok=("report_score", "count"),
        steps_to_90=("steps_to_90", "mean"),
        sharpness=("sharpness", "mean"),
    )
    counts = runs.groupby(keys, sort=False).agg(
        n_runs=("seed", "count"),
        majority_score=("majority_score", "first"),
        report_split=("report_split", "first"),
        wall_time_s=("wall_time_s", "mean"),
        trainable_params=("trainable_params", "first"),
    )
    table = counts.join(stats, how="left").reset_index()
    table["n_ok"] = table["n_ok"].fillna(0).astype(int)
    return table


def write_aggregate(params: Params, out_dir: Path, root: Path = Path(".")) -> pd.DataFrame:
    runs, curves = run_tables(params, root)
    summary = summary_table(runs)
    atomic_write_text(out_dir / "runs.csv", runs.to_csv(index=False))
    atomic_write_text(out_dir / "curves.csv", curves.to_csv(index=False))
    atomic_write_text(out_dir / "summary.csv", summary.to_csv(index=False))
    nested: dict[str, Any] = {}
    for row in summary.itertuples():
        cell = nested.setdefault(f"{row.setting}.{row.task}", {})
        cell[f"{row.method}/{row.variant}" if row.variant else row.method] = {
            "mean": None if pd.isna(row.mean) else round(float(row.mean), 4),
            "std": None if pd.isna(row.std) else round(float(row.std), 4),
            "n_ok": int(row.n_ok),
            "n_runs": int(row.n_runs),
        }
    atomic_write_json(out_dir / "summary.json", nested)
    return summary


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PromptTuneError(f"{path}: cannot read ({exc})") from exc
