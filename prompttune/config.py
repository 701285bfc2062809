"""Typed, self-validating configuration: params.yaml → the grid's stages → one resolved ``RunConfig`` per run.

A grid has three parts: ``grid`` (which runs: named blocks of cells × methods × seeds, each block optionally
crossed with named variants), ``run`` (how every run trains, with overrides per setting, per task, per cell
and per named variant, and every objective's options) and ``studies`` (the loss-landscape and MI-convergence
studies). ``profiles.yaml`` holds named presets of the three, each with its description. params.yaml names
the active one (``profile: NAME``) and may hold overrides of it: its ``grid``, ``run`` and ``studies`` merge
onto the preset's key by key (mappings merge, lists and values replace), so ``dvc exp run -S profile=smoke``
switches presets and ``dvc exp run -S "++grid.seeds=[3]"`` changes one key, neither rewriting a preset
(choice: DVC's and Snakemake's own override forms, with no generated file). A params.yaml that names no
profile holds all three parts itself. Everything is checked when the files are loaded, before any work:
unknown keys, wrong types, out-of-range values, unknown task, setting, cell, method, objective and variant
names, and every objective's options (typed by the objective's own config class), each a one-line error
naming the file and the key. ``prompttune configure`` then writes each stage's resolved config — every
default explicit — and the pipelines train from those files, never from params.yaml.

The schema (the dataclasses of every part and of a resolved run, and ``build``, which checks a mapping against
them) is ``prompttune.schema``, a leaf that the prompt bases, the objectives and the model import; this module
re-exports it and adds, above the registries, what needs them: names, objective options, which backbone runs
which method, and each stage's resolution. The registries and the backbone configs import torch, so the checks
import them where they run: a module that reads only the schema through this one (``results.py`` and
``paths.py``, which the report imports) imports no torch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import typing
from pathlib import Path
from typing import Any

from prompttune.errors import PromptTuneError
from prompttune.registry import load_plugins
from prompttune.schema import (
    PICK_SEEDS,
    SECTIONS,
    GridBlock,
    GridSection,
    HeadConfig,
    LandscapeStudy,
    MiCheckStudy,
    Overrides,
    Params,
    Profile,
    PromptConfig,
    RunConfig,
    RunSection,
    Stage,
    StageConfig,
    StudiesSection,
    TrainConfig,
    arm_name,
    build,
    coerce,
    deep_merge,
    landscape_pairs,
    read_yaml,
    split_cell,
    split_method,
)
from prompttune.splits import parse_setting
from prompttune.tasks import TASKS, get_task

__all__ = [
    "DEFAULT_PARAMS",
    "NAME",
    "PROFILES",
    "SECTIONS",
    "GridBlock",
    "GridSection",
    "HeadConfig",
    "LandscapeStudy",
    "MiCheckStudy",
    "Overrides",
    "Params",
    "Profile",
    "PromptConfig",
    "RunConfig",
    "RunSection",
    "Stage",
    "StageConfig",
    "StudiesSection",
    "TrainConfig",
    "arm_name",
    "arm_seeds_path",
    "build",
    "check_backbone",
    "check_cell",
    "check_method",
    "check_micro_batches",
    "deep_merge",
    "expand_stages",
    "landscape_pairs",
    "load_params",
    "load_profiles",
    "local_backbone_config",
    "params_from_dict",
    "read_stage_config",
    "read_yaml",
    "resolve_run",
    "split_cell",
    "split_method",
    "stage_config",
]

DEFAULT_PARAMS = Path("params.yaml")
PROFILES = "profiles.yaml"  # beside params.yaml
NAME = r"[A-Za-z0-9._-]+"


def _known(name: str, values: typing.Iterable[str]) -> str:
    return f"{name}; known: {', '.join(sorted(values)) or 'none'}"


def check_method(method: str, key: str) -> None:
    """A method names a registered base and objective."""
    from prompttune.bases import BASES
    from prompttune.objectives import OBJECTIVES

    base, objective = split_method(method)
    if base not in BASES:
        raise PromptTuneError(f"{key}: {method!r}: unknown prompt base {_known(repr(base), BASES.names())}")
    if objective not in OBJECTIVES:
        raise PromptTuneError(
            f"{key}: {method!r}: unknown objective {_known(repr(objective), OBJECTIVES.names())}"
        )


@functools.cache
def local_backbone_config(name: str) -> Any:
    """The backbone's config when it is on this machine (embedded, a local folder or the hub cache), else
    None: a hub id that is not cached is checked when the run loads it."""
    from prompttune.backbone import backbone_config, resolve_backbone

    if not Path(resolve_backbone(name)).exists():
        try:
            from transformers import AutoConfig

            return AutoConfig.from_pretrained(name, local_files_only=True)
        except OSError:
            return None
    return backbone_config(name)


def check_backbone(backbone: str, method: str, key: str) -> None:
    """The backbone runs the method's base and objective (``objectives.check_support``), where its config
    is on this machine."""
    from prompttune.objectives import check_support

    backbone_config = local_backbone_config(backbone)
    if backbone_config is not None:
        try:
            check_support(*split_method(method), backbone_config)
        except PromptTuneError as exc:
            raise PromptTuneError(f"{key}: {exc}") from exc


def check_micro_batches(train: TrainConfig, method: str, key: str) -> None:
    """Micro-batches only for objectives whose loss is a mean over examples (``Objective.separable``)."""
    from prompttune.objectives import OBJECTIVES

    objective = split_method(method)[1]
    if train.micro_batch_size and not OBJECTIVES.get(objective).separable:
        raise PromptTuneError(
            f"{key}: train.micro_batch_size: objective {objective!r} couples the examples of a batch "
            "(its loss is not a mean over them), so micro-batches would change it"
        )


def check_cell(cell: str, key: str) -> None:
    """A cell names a known setting and task (``<setting>.<task>``)."""
    try:
        setting, task = split_cell(cell)
        parse_setting(setting)
        get_task(task)
    except PromptTuneError as exc:
        raise PromptTuneError(f"{key}: {exc}") from exc


def _check_names(run: RunSection) -> None:
    """Every name a ``run`` override is keyed by exists, and every objective's options are valid."""
    from prompttune.objectives import OBJECTIVES

    for setting in run.settings:
        try:
            parse_setting(setting)
        except PromptTuneError as exc:
            raise PromptTuneError(f"run.settings.{setting}: {exc}") from exc
    for task in run.tasks:
        if task not in TASKS:
            raise PromptTuneError(f"run.tasks.{task}: unknown task {_known(repr(task), TASKS.names())}")
    for cell in run.cells:
        check_cell(cell, f"run.cells.{cell}")
    for name in run.variants:
        if not re.fullmatch(NAME, name):
            raise PromptTuneError(
                f"run.variants.{name}: a variant name may use letters, digits, '.', '_', '-'"
            )
    base = {
        k: v
        for k, v in dataclasses.asdict(run).items()
        if k not in ("settings", "tasks", "cells", "variants")
    }
    for kind in ("settings", "tasks", "cells", "variants"):
        for name, overrides in getattr(run, kind).items():
            build(RunSection, deep_merge(base, _set_fields(overrides)), f"run.{kind}.{name}")
    scopes = [("run", run.objectives)] + [
        (f"run.{kind}.{name}", overrides.objectives)
        for kind in ("settings", "tasks", "cells", "variants")
        for name, overrides in getattr(run, kind).items()
    ]
    for prefix, objectives in scopes:
        for name, options in objectives.items():
            if name not in OBJECTIVES:
                raise PromptTuneError(
                    f"{prefix}.objectives.{name}: unknown objective {_known(repr(name), OBJECTIVES.names())}"
                )
            build(OBJECTIVES.get(name).config_class, options, f"{prefix}.objectives.{name}")


def _validate(grid: GridSection, run: RunSection, studies: StudiesSection) -> None:
    """Cross-section checks: every name exists, every stage resolves, the studies cover trained runs."""
    _check_names(run)
    stages: dict[Stage, str] = {}
    for block_name, block in grid.blocks.items():
        key = f"grid.blocks.{block_name}"
        if not re.fullmatch(NAME, block_name):
            raise PromptTuneError(f"{key}: a block name may use letters, digits, '.', '_', '-'")
        for cell in block.cells:
            check_cell(cell, f"{key}.cells")
        for method in block.methods:
            check_method(method, f"{key}.methods")
        for variant in block.variants:
            if variant not in run.variants:
                raise PromptTuneError(f"{key}.variants: {_known(repr(variant), run.variants)} (run.variants)")
        for stage in _block_stages(block):
            if stage in stages:
                raise PromptTuneError(f"{key}: {stage.key} is also in grid.blocks.{stages[stage]}")
            stages[stage] = block_name
    for stage in stages:
        key = f"grid.blocks.{stages[stage]}: {stage.key}"
        merged = _merged_run(run, stage, f"grid.blocks.{stages[stage]}")
        check_backbone(merged.backbone, stage.method, key)
        check_micro_batches(merged.train, stage.method, key)
    arms = {stage.arm for stage in stages}
    for arm in grid.decide.pilot if grid.decide else []:
        if arm not in arms:
            raise PromptTuneError(f"grid.decide.pilot: {_known(repr(arm), arms)} (the grid's arms)")
    main = {
        (s.cell, s.method): _block_seeds(grid, grid.blocks[b]) for s, b in stages.items() if not s.variant
    }
    study = studies.landscape
    covered = landscape_pairs(study, main)
    for name, values, index in (("methods", study.methods, 1), ("cells", study.cells, 0)):
        for value in values:
            if not any(pair[index] == value for pair in covered):
                raise PromptTuneError(
                    f"studies.landscape.{name}: the grid trains no main run of {value} there"
                )
    if (grid.decide is None) != bool(study.seeds):
        raise PromptTuneError(
            "studies.landscape.seeds: "
            + ("must not be empty" if grid.decide is None else "none under grid.decide (every seed trained)")
        )
    for cell, method in covered if grid.decide is None else []:
        missing = sorted(set(study.seeds) - set(main[cell, method]))
        if missing:
            raise PromptTuneError(f"studies.landscape.seeds: {cell}/{method} has no seed {missing[0]}")
    cells = {s.cell for s in stages}
    if studies.mi_check.cell not in cells:
        raise PromptTuneError(f"studies.mi_check.cell: {_known(repr(studies.mi_check.cell), cells)}")


def _block_stages(block: GridBlock) -> list[Stage]:
    return [
        Stage(cell, method, variant)
        for cell in block.cells
        for method in block.methods
        for variant in (block.variants or [None])
    ]


def _block_seeds(grid: GridSection, block: GridBlock) -> list[int]:
    return block.seeds if block.seeds is not None else grid.seeds


def arm_seeds_path(params_path: Path) -> Path:
    """``seeds.yaml`` beside params.yaml: each arm's seed count under ``grid.decide``, which
    ``prompttune decide`` writes after every round (a tracked params file: the seeds are the result's
    parameters, so ``dvc repro`` and ``snakemake`` on it rebuild the same runs)."""
    return params_path.parent / "seeds.yaml"


def _arm_seeds(grid: GridSection, params_path: Path) -> dict[str, int]:
    """The ``seeds`` mapping of ``seeds.yaml`` (arm → seed count, within the design's cap: its last look +
    ``PICK_SEEDS``); {} when the file is absent or the grid has no ``decide``."""
    path = arm_seeds_path(params_path)
    if grid.decide is None or not path.is_file():
        return {}
    data = read_yaml(path)
    counts = coerce(data.get("seeds") or {}, dict[str, int], f"{path}: seeds")
    cap = grid.decide.looks[-1] + PICK_SEEDS
    for arm, count in counts.items():
        if not 1 <= count <= cap:
            raise PromptTuneError(
                f"{path}: seeds.{arm}: {count} is not in 1…{cap} (grid.decide.looks' last + {PICK_SEEDS}, "
                "the seeds that pick a best variant)"
            )
    return counts


def _stage_seeds(params: Params, block: GridBlock, stage: Stage) -> list[int]:
    """A stage's seeds: the block's (or the grid's), or under ``grid.decide`` seeds 1…n of its arm."""
    if params.grid.decide is None:
        return _block_seeds(params.grid, block)
    return list(range(1, params.arm_seeds.get(stage.arm, params.grid.decide.pilot_seeds(stage.arm)) + 1))


def _build_profile(name: str, preset: Any) -> Profile:
    if not isinstance(preset, dict) or set(preset) != {"description", *SECTIONS}:
        raise PromptTuneError(f"{name}: expected a mapping with exactly description, grid, run and studies")
    sections = [build(cls, preset[key], f"{name}.{key}") for key, cls in SECTIONS.items()]
    try:
        _validate(*sections)
    except PromptTuneError as exc:
        raise PromptTuneError(f"{name}: {exc}") from exc
    return Profile(str(preset["description"]), preset["grid"], preset["run"], preset["studies"])


def load_profiles(path: Path) -> dict[str, Profile]:
    """The presets of a profiles file (none when there is no file), each validated as params.yaml is;
    errors name ``<file>: <profile>.<key>``."""
    if not path.is_file():
        return {}
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise PromptTuneError(f"{path}: expected a mapping of profile names to presets")
    try:
        return {str(name): _build_profile(str(name), preset) for name, preset in data.items()}
    except PromptTuneError as exc:
        raise PromptTuneError(f"{path}: {exc}") from exc


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml (grid, run, studies) and the profiles beside it; errors name
    ``<file>: <key>``. The installed plugins load first, so a broken one is named as itself, not as the key
    that met it."""
    path = Path(path)
    load_plugins()
    profiles = load_profiles(path.with_name(PROFILES))  # its errors name its own file
    try:
        return params_from_dict(read_yaml(path), path, profiles)
    except PromptTuneError as exc:
        raise PromptTuneError(f"{path}: {exc}") from exc


def params_from_dict(data: dict[str, Any], path: Path, profiles: dict[str, Profile] | None = None) -> Params:
    """``load_params`` of an already-read mapping (Snakemake hands its merged ``config``): the named profile's
    grid, run and studies with the mapping's own merged onto them, or with no profile the mapping's own; the
    profiles are read from beside ``path`` unless given."""
    unknown = set(data) - {"profile", *SECTIONS}
    if unknown:
        raise PromptTuneError(_known(f"{sorted(unknown)[0]}: unknown key", {"profile", *SECTIONS}))
    if profiles is None:
        profiles = load_profiles(path.with_name(PROFILES))
    profile = str(data.get("profile") or "")
    if profile and profile not in profiles:
        raise PromptTuneError(f"profile: {_known(f'{profile!r} is not in {PROFILES} beside it', profiles)}")
    for key in SECTIONS:
        if not profile and key not in data:
            raise PromptTuneError(f"{key}: missing required key (or name a profile of {PROFILES})")
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise PromptTuneError(f"{key}: expected a mapping, got {type(data[key]).__name__}")
    preset = dataclasses.asdict(profiles[profile]) if profile else {}
    merged = {key: deep_merge(preset.get(key) or {}, data.get(key) or {}) for key in SECTIONS}
    sections = [build(cls, merged[key], key) for key, cls in SECTIONS.items()]
    _validate(*sections)
    grid, run, studies = sections
    return Params(
        profile=profile,
        grid=grid,
        run=run,
        studies=studies,
        profiles=profiles,
        path=path,
        arm_seeds=_arm_seeds(grid, path),
    )


def expand_stages(params: Params) -> list[StageConfig]:
    """Every training stage of the grid, resolved, in block order (cells, methods, variants)."""
    return [
        StageConfig(seeds=seeds, run=resolve_run(params, stage, seeds[0]))
        for block in params.grid.blocks.values()
        for stage in _block_stages(block)
        for seeds in [_stage_seeds(params, block, stage)]
    ]


def _merged_run(run: RunSection, stage: Stage, key: str) -> RunSection:
    """The ``run`` block with the stage's setting, task, cell and variant overrides applied, validated."""
    base = {
        name: value
        for name, value in dataclasses.asdict(run).items()
        if name not in ("settings", "tasks", "cells", "variants")
    }
    layers = [
        (f"run.settings.{stage.setting}", run.settings.get(stage.setting)),
        (f"run.tasks.{stage.task}", run.tasks.get(stage.task)),
        (f"run.cells.{stage.cell}", run.cells.get(stage.cell)),
        (f"run.variants.{stage.variant}", run.variants.get(stage.variant) if stage.variant else None),
    ]
    for _, overrides in layers:
        if overrides is not None:
            base = deep_merge(base, _set_fields(overrides))
    applied = ", ".join(name for name, overrides in layers if overrides is not None) or "run"
    return build(RunSection, base, f"{key} {stage.key} ({applied})")


def _set_fields(overrides: Overrides) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(overrides).items() if v not in (None, {})}


def resolve_run(params: Params, stage: Stage, seed: int) -> RunConfig:
    """One run's config: ``run``, then the setting's, task's, cell's and variant's overrides; the
    objective's options with every default explicit."""
    from prompttune.objectives import OBJECTIVES

    try:
        merged = _merged_run(params.run, stage, "run")
        objective = split_method(stage.method)[1]
        options = build(
            OBJECTIVES.get(objective).config_class,
            merged.objectives.get(objective, {}),
            f"run.objectives.{objective}",
        )
    except PromptTuneError as exc:
        raise PromptTuneError(f"{params.path}: {exc}") from exc
    return RunConfig(
        setting=stage.setting,
        task=stage.task,
        method=stage.method,
        seed=seed,
        variant=stage.variant,
        data_seed=merged.data_seed,
        backbone=merged.backbone,
        prompt=merged.prompt,
        head=merged.head,
        train=merged.train,
        objective_options=dataclasses.asdict(options),
    )


def stage_config(params: Params, stage: Stage) -> StageConfig:
    """The stage's resolved config, for a stage of the grid; any other is a one-line error."""
    for config in expand_stages(params):
        if config.stage == stage:
            return config
    raise PromptTuneError(f"{params.path}: the grid has no stage {stage.key}; `prompttune grid` lists them")


def read_stage_config(path: str | Path) -> StageConfig:
    """A stage config written by ``prompttune configure`` (``configs/train/<key>.json``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        seeds, run = data["seeds"], data["run"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PromptTuneError(f"{path}: not a stage config ({exc}); run `prompttune configure`") from exc
    config = StageConfig(
        seeds=coerce(seeds, list[int], f"{path}: seeds"), run=build(RunConfig, run, f"{path}: run")
    )
    check_method(config.run.method, f"{path}: run.method")
    return config
