"""``prompttune configure``: params.yaml resolved into the files the pipelines run from.

Every later stage reads these records, never params.yaml:

- ``configs/train/<key>.json``: a training stage's seeds and resolved run config (every default
  explicit), one file per stage, rewritten only when its content changes — so Snakemake reruns exactly
  the jobs whose resolved config changed, and DVC's train step retrains only those stages' runs (it keeps
  every run finished under the same config, code and data);
- ``configs/landscape/<cell>/<method>.json`` and ``configs/mi_check.json``: the studies' settings;
- ``configs/cells.json``: the cells the grid trains (what DVC's fetch stage reads, so that only a change
  of cells reruns it);
- ``configs/grid.json``: the profile, its description, every stage with its seeds and folders, and the
  studies — what the aggregate and the report read.

No pipeline file is generated: ``dvc.yaml`` has one stage per step, each reading the whole folder of its
records (``configs/train``, ``configs/landscape``), so a change to the grid in params.yaml needs nothing
rewritten before DVC reads it (``dvc exp run -S`` and its queue included).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompttune import paths
from prompttune.config import expand_stages
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_write_text, read_json
from prompttune.schema import Params, Stage, StageConfig, landscape_pairs


@dataclass(frozen=True)
class StageRecord:
    """One training stage as the aggregate and report find it."""

    key: str
    cell: str
    method: str
    variant: str | None
    seeds: list[int]
    dir: str
    config: str
    headline: str
    curves: str


@dataclass(frozen=True)
class GridRecord:
    """``configs/grid.json``: the profile and every stage and study of the grid."""

    profile: str
    description: str
    stages: list[StageRecord]
    landscape: dict[str, Any]
    mi_check: dict[str, Any]
    decide: dict[str, Any] | None = None  # grid.decide (budget_min, looks, pilot), None for a fixed grid

    def run_dirs(self) -> list[tuple[StageRecord, int, Path]]:
        return [
            (stage, seed, Path(stage.dir) / f"seed{seed}") for stage in self.stages for seed in stage.seeds
        ]


def stage_record(config: StageConfig) -> StageRecord:
    stage = config.stage
    return StageRecord(
        key=stage.key,
        cell=stage.cell,
        method=stage.method,
        variant=stage.variant,
        seeds=config.seeds,
        dir=str(paths.method_dir(stage)),
        config=str(paths.stage_config(stage)),
        headline=str(paths.headline(stage)),
        curves=str(paths.curves(stage)),
    )


def landscape_configs(params: Params) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (cell, method) of the landscape study: its settings and the run folders it reads."""
    study = dataclasses.asdict(params.studies.landscape)
    trained = {(c.stage.cell, c.stage.method): c.seeds for c in expand_stages(params) if not c.stage.variant}
    seeds = {  # under grid.decide, every seed the method trained
        pair: trained[pair] if params.grid.decide else params.studies.landscape.seeds for pair in trained
    }
    return {
        (cell, method): {
            "cell": cell,
            "method": method,
            "runs": [str(paths.run_dir(Stage(cell, method), seed)) for seed in seeds[cell, method]],
            "out": str(paths.landscape_dir(cell, method)),
            **{k: v for k, v in study.items() if k not in ("cells", "methods")},
        }
        for cell, method in landscape_pairs(params.studies.landscape, trained)
    }


def grid_record(params: Params, stages: list[StageConfig]) -> GridRecord:
    mi = params.studies.mi_check
    return GridRecord(
        profile=params.profile,
        description=params.description,
        stages=[stage_record(config) for config in stages],
        landscape=dataclasses.asdict(params.studies.landscape),
        mi_check={**dataclasses.asdict(mi), "backbone": _mi_backbone(params, stages)},
        decide=dataclasses.asdict(params.grid.decide) if params.grid.decide else None,
    )


def _mi_backbone(params: Params, stages: list[StageConfig]) -> str:
    cell = params.studies.mi_check.cell
    return next(config.run.backbone for config in stages if config.stage.cell == cell)


def _write_if_changed(path: Path, text: str) -> bool:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    atomic_write_text(path, text)
    return True


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def records(
    params: Params,
) -> tuple[dict[str, str], dict[Stage, list[int]], dict[tuple[str, str], list[str]]]:
    """What ``configure`` writes (path → text), each training stage's seeds, and each landscape's (cell,
    method) with the run folders it reads — the Snakefile's view of the grid."""
    stages = expand_stages(params)
    texts = {str(paths.stage_config(config.stage)): _json(config.to_dict()) for config in stages}
    landscapes = landscape_configs(params)
    for (cell, method), spec in landscapes.items():
        texts[str(paths.landscape_config(cell, method))] = _json(spec)
    record = grid_record(params, stages)
    texts[str(paths.CELLS)] = _json(sorted({config.stage.cell for config in stages}))
    texts[str(paths.MI_CHECK_CONFIG)] = _json(record.mi_check)
    texts[str(paths.GRID_RECORD)] = _json(dataclasses.asdict(record))
    runs = {key: [f"{run}/prompt.pt" for run in spec["runs"]] for key, spec in landscapes.items()}
    return texts, {config.stage: config.seeds for config in stages}, runs


def configure(params: Params, root: Path = Path(".")) -> list[str]:
    """Write every record (module docstring) under ``root``, each only when its content changes, and remove
    stale ones; return the files that changed."""
    texts, _, _ = records(params)
    changed = [path for path, text in texts.items() if _write_if_changed(root / path, text)]
    configs = root / paths.CONFIGS
    for stale in sorted(configs.rglob("*.json")) if configs.is_dir() else []:
        if str(stale.relative_to(root)) not in texts:
            stale.unlink()
            changed.append(f"{stale.relative_to(root)} (removed)")
    return changed


def read_grid_record(path: str | Path = paths.GRID_RECORD) -> GridRecord:
    """``configs/grid.json``; a missing or malformed file is a one-line error."""
    data = read_json(Path(path))
    try:
        return GridRecord(
            profile=data["profile"],
            description=data["description"],
            stages=[StageRecord(**stage) for stage in data["stages"]],
            landscape=data["landscape"],
            mi_check=data["mi_check"],
            decide=data.get("decide"),
        )
    except (KeyError, TypeError) as exc:
        raise PromptTuneError(f"{path}: not a grid record ({exc}); run `prompttune configure`") from exc
