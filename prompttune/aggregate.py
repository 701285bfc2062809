"""Collect the grid's runs from their records into tables: one typed row per run (``results.RunRow``, with
its sharpness where the landscape study covered it), the selection curves in long form, and per setting ×
task × method × variant the mean ± sd of the report score.

The grid is read from ``configs/grid.json`` and each run from its own ``metrics.json`` (which embeds the
config it ran), never from params.yaml. Runs that ``failed`` are counted and listed but enter no mean;
``collapsed`` runs are results and count. Scores and the learning-curve area are in points.
Standard deviations use ddof = 1.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from prompttune import paths
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_write_text, read_json
from prompttune.pipeline import GridRecord
from prompttune.results import RunRow, load_metrics, run_row, runs_frame

CURVE_COLUMNS = ["setting", "task", "method", "variant", "seed", "step", "select_score", "train_loss"]


def read_curve(path: Path) -> pd.DataFrame:
    try:
        curve = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise PromptTuneError(f"{path}: cannot read ({exc})") from exc
    if not {"step", "select_score", "train_loss"} <= set(curve.columns):
        raise PromptTuneError(f"{path}: expected columns step, select_score and train_loss")
    return curve


def run_sharpness(
    grid: GridRecord, cell: str, method: str, variant: str | None, seed: int, root: Path
) -> float:
    """The run's calibrated sharpness from the landscape study, nan when the study does not cover it
    (under ``grid.decide`` it covers every seed of its methods)."""
    study = grid.landscape
    seeds_covered = grid.decide is not None or seed in study["seeds"]
    if variant or cell not in study["cells"] or method not in study["methods"] or not seeds_covered:
        return math.nan
    path = root / paths.landscape_dir(cell, method) / f"seed{seed}" / "surface.json"
    if not path.is_file():
        raise PromptTuneError(f"{path}: missing; run `prompttune landscape` for {cell} {method}")
    value = read_json(path)["sharpness"]
    return math.nan if value is None else float(value)  # None: the run failed, nothing to measure


def run_tables(grid: GridRecord, root: Path = Path(".")) -> tuple[list[RunRow], pd.DataFrame]:
    """One row per run of the grid (every run must exist: a missing one is an error), and every run's
    selection curve in points (long form)."""
    rows: list[RunRow] = []
    curves: list[pd.DataFrame] = []
    for stage, seed, run_dir in grid.run_dirs():
        path = root / run_dir / "metrics.json"
        if not path.is_file():
            raise PromptTuneError(f"{path}: missing; train stage {stage.key} first")
        m = load_metrics(path)
        sharp = run_sharpness(grid, stage.cell, stage.method, stage.variant, seed, root)
        rows.append(run_row(m, run_dir, sharp))
        curve = read_curve(root / run_dir / "curve.csv")
        c = m.config
        curves.append(
            curve[["step", "train_loss"]].assign(
                select_score=100 * curve["select_score"],
                setting=c.setting,
                task=c.task,
                method=c.method,
                variant=c.variant or "",
                seed=c.seed,
            )
        )
    return rows, pd.concat(curves, ignore_index=True)[CURVE_COLUMNS]


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting × task × method × variant, over the runs that did not fail: mean and sd (ddof = 1) of
    the report score, the mean learning-curve area and sharpness, and how many runs there are, failed,
    collapsed and converged."""
    keys = ["setting", "task", "method", "variant"]
    usable = runs[runs["status"] != "failed"]
    stats = usable.groupby(keys, sort=False).agg(
        mean=("report_score", "mean"),
        sd=("report_score", "std"),
        n=("report_score", "count"),
        converged=("converged", "sum"),
        learning_area=("learning_area", "mean"),
        sharpness=("sharpness", "mean"),
    )
    counts = runs.groupby(keys, sort=False).agg(
        runs=("seed", "count"),
        failed=("status", lambda s: int((s == "failed").sum())),
        collapsed=("status", lambda s: int((s == "collapsed").sum())),
        majority_score=("majority_score", "first"),
        report_split=("report_split", "first"),
        wall_time_s=("wall_time_s", "mean"),
        trainable_params=("trainable_params", "first"),
    )
    table = counts.join(stats, how="left").reset_index()
    for column in ("n", "converged"):
        table[column] = table[column].fillna(0).astype(int)
    return table


def write_aggregate(grid: GridRecord, out_dir: Path, root: Path = Path(".")) -> pd.DataFrame:
    rows, curves = run_tables(grid, root)
    runs = runs_frame(rows)
    summary = summary_table(runs)
    atomic_write_text(out_dir / "runs.csv", runs.to_csv(index=False))
    atomic_write_text(out_dir / "curves.csv", curves.to_csv(index=False))
    atomic_write_text(out_dir / "summary.csv", summary.to_csv(index=False))
    return summary
