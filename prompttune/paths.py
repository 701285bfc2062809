"""Where every output lives (the one module that knows), relative to the project root.

- ``configs/train/<cell>/<method>[/<variant>].json``: a training stage's resolved config
  (``prompttune configure``); ``configs/landscape/<cell>/<method>.json``, ``configs/mi_check.json``,
  ``configs/grid.json`` (the stages, seeds and profile the aggregate and report read);
- ``runs/<cell>/<method>[@<variant>]/seed<N>/``: one run's folder (``runs/`` is DVC's train output;
  ``runs/<cell>/<method>[@<variant>]`` is a Snakemake job's);
- ``runs/<cell>/<method>[@<variant>].resume/``: resume states, beside the stage's run folders (never
  cached: ``.dvcignore``; ``train.resume_folder`` names them from the run folders);
- ``metrics/train/<cell>/<method>[@<variant>].json``: a stage's headline metrics (``dvc exp show`` lists
  them), ``metrics/curves/...``: its learning curves (``dvc plots``); ``metrics/claims.json``: every
  claim's verdict and estimate (``dvc exp show``, ``dvc metrics diff``);
- ``results/``: the aggregate (``runs.csv``, ``curves.csv``, ``summary.csv``, ``claims.csv``),
  ``results/landscape/<cell>/<method>/``, ``results/mi_check/``; ``reports/<profile>.html``;
- ``data/<cell>/``: the fetched files of one cell.

Outside the project, the machine's caches, shared by every workspace (queued experiments' temporary copies
and Snakemake jobs included): ``$PROMPTTUNE_CACHE/<name>``, by default ``~/.cache/prompttune/<name>``
(``tokens/``, ``plan.json``, and the run store ``runs/``, unless ``PROMPTTUNE_RUN_STORE`` names another).
"""

from __future__ import annotations

import os
from pathlib import Path

from prompttune.schema import Stage

CONFIGS = Path("configs")
RUNS = Path("runs")
METRICS = Path("metrics")
RESULTS = Path("results")
REPORTS = Path("reports")
DATA = Path("data")
VARIANT_SEP = "@"  # runs/<cell>/<method>@<variant>/seed<N>
TRAIN_CONFIGS = CONFIGS / "train"  # what the DVC stage `train` trains, every stage of the grid
LANDSCAPE_CONFIGS = CONFIGS / "landscape"
GRID_RECORD = CONFIGS / "grid.json"
CELLS = CONFIGS / "cells.json"  # the cells the grid trains
MI_CHECK_CONFIG = CONFIGS / "mi_check.json"
MI_CHECK_DIR = RESULTS / "mi_check"
LANDSCAPE_RESULTS = RESULTS / "landscape"
CLAIMS_METRICS = METRICS / "claims.json"


OFF = "off"  # PROMPTTUNE_CACHE=off (or PROMPTTUNE_RUN_STORE=off): no cache


def user_cache(name: str) -> Path | None:
    """``$PROMPTTUNE_CACHE/<name>`` (default ``~/.cache/prompttune/<name>``), or None when the variable is
    ``off``."""
    value = os.environ.get("PROMPTTUNE_CACHE", "")
    if value == OFF:
        return None
    return (Path(value) if value else Path.home() / ".cache" / "prompttune") / name


def run_store() -> Path | None:
    """The run store (``prompttune.run_store``): ``$PROMPTTUNE_RUN_STORE`` if set (``off``: none), else
    ``user_cache("runs")``."""
    value = os.environ.get("PROMPTTUNE_RUN_STORE", "")
    if value == OFF:
        return None
    return Path(value) if value else user_cache("runs")


def stage_config(stage: Stage) -> Path:
    return TRAIN_CONFIGS / f"{stage.key}.json"


def landscape_config(cell: str, method: str) -> Path:
    return LANDSCAPE_CONFIGS / cell / f"{method}.json"


def _name(stage: Stage) -> str:
    return f"{stage.method}{VARIANT_SEP}{stage.variant}" if stage.variant else stage.method


def method_dir(stage: Stage) -> Path:
    """``runs/<cell>/<method>[@<variant>]``: the folder of a stage's run folders (its pipeline output)."""
    return RUNS / stage.cell / _name(stage)


def run_dir(stage: Stage, seed: int) -> Path:
    return method_dir(stage) / f"seed{seed}"


def headline(stage: Stage) -> Path:
    return METRICS / "train" / stage.cell / f"{_name(stage)}.json"


def curves(stage: Stage) -> Path:
    return METRICS / "curves" / stage.cell / f"{_name(stage)}.csv"


def landscape_dir(cell: str, method: str) -> Path:
    return LANDSCAPE_RESULTS / cell / method


def data_dir(cell: str) -> Path:
    return DATA / cell


def report(profile: str) -> Path:
    return REPORTS / f"{profile or 'custom'}.html"
