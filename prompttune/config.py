"""Typed, self-validating configuration: params.yaml → grid → one resolved ``RunConfig`` per cell.

params.yaml has four parts: ``grid`` (which runs: the main cells × methods × seeds, plus optional
variant runs), ``run`` (how every run trains, with per-task overrides and named variants),
``studies`` (the loss-landscape and MI-convergence studies) and ``profiles`` (named presets of the
three; ``prompttune profile NAME`` copies one into place). DVC and Snakemake both read ``grid`` and
``studies``; ``prompttune`` reads all of it. Every key is
checked against the dataclasses below: an unknown key, a wrong type or an out-of-range value is a
one-line error naming the file and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from prompttune.errors import PromptTuneError

DEFAULT_PARAMS = Path("params.yaml")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class PromptConfig:
    """The trainable prompt (bases ``pt`` and ``pt2``; ignored by ``head``)."""

    length: int = field(default=16, metadata={"help": "number of prompt tokens / prefix positions"})
    init: Literal["random", "vocab", "text"] = field(
        default="random",
        metadata={"help": "random: N(0, init_std²); vocab: random vocabulary tokens; text: task description"},
    )
    init_std: float | None = field(
        default=None,
        metadata={"help": "std of `random` init; None: rms of the word embeddings (pt), 1.0 (pt2, code)"},
    )
    reparam: bool = field(default=False, metadata={"help": "pt2: MLP reparameterisation of the prefix"})
    reparam_hidden: int = field(default=512, metadata={"help": "pt2: hidden size of that MLP"})
    position: Literal["after_first", "start"] = field(
        default="after_first",
        metadata={
            "help": "pt: insert the prompt after the first token ([CLS]/<s>; choice) or before every token "
            "(Lester et al.; as PEFT, so token types are dropped); ignored by pt2"
        },
    )

    def __post_init__(self) -> None:
        _check(self.length >= 1, "must be ≥ 1")
        _check(self.init_std is None or self.init_std > 0, "init_std must be > 0")
        _check(self.reparam_hidden >= 1, "reparam_hidden must be ≥ 1")


@dataclass(frozen=True)
class HeadConfig:
    """The linear task head on the pooled final hidden states (all bases)."""

    pooling: Literal["cls", "mean"] = field(
        default="mean", metadata={"help": "cls: first token (P-tuning v2); mean: non-pad, non-prompt tokens"}
    )
    init: Literal["label_words", "random"] = field(
        default="label_words",
        metadata={"help": "rows from label-word embeddings (InfoPrompt code) or random"},
    )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and evaluation (AdamW, linear warm-up then linear decay, gradient clipping)."""

    steps: int = field(default=100, metadata={"help": "optimiser steps (ignored when epochs is set)"})
    epochs: float | None = field(
        default=None, metadata={"help": "if set: steps = ceil(epochs·n_train/batch)"}
    )
    batch_size: int = 16
    lr: float = 1e-2
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    eval_every: int = field(default=25, metadata={"help": "evaluate on the selection split every N steps"})
    eval_batch_size: int = 64
    checkpoint_every: int = field(
        default=25,
        metadata={"help": "save a resume state every N steps (0: never)"},
    )
    max_length: int = field(default=128, metadata={"help": "max tokens of the input text (prompts extra)"})
    group_by_length: int = field(
        default=0,
        metadata={
            "help": "G > 0: training batches formed from length-sorted windows of G batches of each "
            "epoch's shuffled order, in shuffled order (less padding); 0: plain shuffled batches"
        },
    )
    backbone_dropout: bool = field(
        default=False, metadata={"help": "frozen backbone's dropout active in training (P-tuning v2: on)"}
    )
    seed_parallel: Literal["auto", "stacked", "turns"] = field(
        default="auto",
        metadata={
            "help": "seeds trained in one process: stacked = one backbone pass over every seed's batch "
            "(stackable objectives, dropout off), turns = one seed after another; auto: stacked on a "
            "GPU, turns on a CPU (whose cores one seed's batch already fills; stacking pads every seed's "
            "batch to the longest)"
        },
    )
    precision: Literal["fp32", "bf16"] = field(default="fp32", metadata={"help": "bf16: autocast"})
    compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile the frozen backbone (dynamic shapes): a GPU option; on a 2-core CPU the "
            "first step paid 27 s of compilation and later steps were no faster (benchmarks/README.md)"
        },
    )
    device: str = field(default="auto", metadata={"help": "auto: cuda when available, else cpu"})

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "steps must be ≥ 1")
        _check(self.epochs is None or self.epochs > 0, "epochs must be > 0")
        _check(self.batch_size >= 1 and self.eval_batch_size >= 1, "batch sizes must be ≥ 1")
        _check(self.lr > 0, "lr must be > 0")
        _check(self.weight_decay >= 0, "weight_decay must be ≥ 0")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        _check(self.max_grad_norm > 0, "max_grad_norm must be > 0")
        _check(self.eval_every >= 1, "eval_every must be ≥ 1")
        _check(self.checkpoint_every >= 0, "checkpoint_every must be ≥ 0")
        _check(self.max_length >= 8, "max_length must be ≥ 8")
        _check(self.group_by_length >= 0, "group_by_length must be ≥ 0")


@dataclass(frozen=True)
class RunSection:
    """The ``run`` block of params.yaml: shared by every cell, with per-task overrides."""

    backbone: str = field(default="minilm", metadata={"help": "minilm (embedded), a hub id or a local path"})
    data_seed: int = field(default=13, metadata={"help": "seeds data sampling, apart from the training seed"})
    prompt: PromptConfig = field(default_factory=PromptConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    objectives: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata={"help": "options per objective name, checked by its config"}
    )
    tasks: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata={"help": "per-task overrides of backbone/prompt/head/train"}
    )
    variants: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "named overrides of this block (e.g. prompt init, PTP's σ) for grid.variants"},
    )


def _check_axes(section: Any, names: tuple[str, ...], allow_empty: bool) -> None:
    for name in names:
        values = getattr(section, name)
        _check(allow_empty or len(values) > 0, f"{name} must not be empty")
        _check(len(set(values)) == len(values), f"{name} has duplicates")


@dataclass(frozen=True)
class VariantGrid:
    """``grid.variants``: cells × methods × variant names (keys of ``run.variants``) × seeds — runs that
    change one thing against the main grid (IP-3's prompt init, PTP's sensitivity sweep). Any empty
    list: no variant runs."""

    cells: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_axes(self, ("cells", "methods", "names", "seeds"), allow_empty=True)


@dataclass(frozen=True)
class GridSection:
    """The ``grid`` block: cells (``<setting>.<task>``) × methods (``<base>[-<objective>]``) × seeds, and
    the variant runs."""

    cells: list[str]
    methods: list[str]
    seeds: list[int]
    variants: VariantGrid
    stack_seeds: bool = field(
        default=False,
        metadata={
            "help": "Snakemake: one job per cell × method trains all its seeds in one process "
            "(seed-parallel where the objective allows), as DVC's stages always do; false: one job "
            "per seed (more jobs for a cluster to spread); same results"
        },
    )

    def __post_init__(self) -> None:
        _check_axes(self, ("cells", "methods", "seeds"), allow_empty=False)


@dataclass(frozen=True)
class LandscapeStudy:
    """PTP-4: loss surfaces of finished main-grid runs (cells × methods × seeds); see landscape.py."""

    cells: list[str] = field(default_factory=list, metadata={"help": "a subset of grid.cells"})
    methods: list[str] = field(default_factory=list, metadata={"help": "a subset of grid.methods"})
    seeds: list[int] = field(default_factory=list, metadata={"help": "a subset of grid.seeds"})
    radius: float = field(default=0.2, metadata={"help": "grid half-width, in rms(E)·√(coordinates)"})
    points: int = field(default=41, metadata={"help": "grid points per axis, odd (METHODS.md: 41)"})
    rho: float = field(default=0.1, metadata={"help": "sharpness radius, ≤ radius"})
    n_examples: int = field(default=16, metadata={"help": "first N examples of the report split"})

    def __post_init__(self) -> None:
        _check_axes(self, ("cells", "methods", "seeds"), allow_empty=False)
        _check(self.radius > 0, "radius must be > 0")
        _check(self.points >= 3 and self.points % 2 == 1, "points must be odd and ≥ 3")
        _check(0 < self.rho <= self.radius, "rho must be in (0, radius]")
        _check(self.n_examples >= 1, "n_examples must be ≥ 1")


@dataclass(frozen=True)
class MiCheckStudy:
    """IP-5: the empirical check of InfoPrompt's gradient-descent claim; see mi_check.py."""

    cell: str = field(
        default="fewglue.CB", metadata={"help": "grid cell whose training set the real part uses"}
    )
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "real-model seeds"})
    steps: int = field(default=60, metadata={"help": "full-batch GD steps of the real-model part"})
    quick: bool = field(default=False, metadata={"help": "one synthetic problem, 8 real examples (tests)"})

    def __post_init__(self) -> None:
        _check_axes(self, ("seeds",), allow_empty=False)
        _check(self.steps >= 2, "steps must be ≥ 2")


@dataclass(frozen=True)
class StudiesSection:
    """The ``studies`` block."""

    landscape: LandscapeStudy = field(default_factory=LandscapeStudy)
    mi_check: MiCheckStudy = field(default_factory=MiCheckStudy)


@dataclass(frozen=True)
class Params:
    profile: str
    grid: GridSection
    run: RunSection
    studies: StudiesSection
    profiles: dict[str, dict[str, Any]]
    path: Path


VARIANT_SEP = "@"  # runs/<cell>/<method>@<variant>/seed<N>


@dataclass(frozen=True)
class Cell:
    """One run of the grid: (setting, task, method, seed), and the variant for variant runs."""

    setting: str
    task: str
    method: str
    seed: int
    variant: str | None = None

    @property
    def cell(self) -> str:
        return f"{self.setting}.{self.task}"

    @property
    def method_dir(self) -> Path:
        """``runs/<cell>/<method>``, or ``runs/<cell>/<method>@<variant>`` for a variant run: the folder
        of the seeds' run folders (one DVC output per cell × method, so variants live beside it)."""
        name = f"{self.method}{VARIANT_SEP}{self.variant}" if self.variant else self.method
        return Path("runs") / self.cell / name

    @property
    def run_dir(self) -> Path:
        return self.method_dir / f"seed{self.seed}"

    @property
    def seeds_metrics(self) -> Path:
        """``<method_dir>.metrics.json``: every seed's headline metrics, written by ``train --grid-seeds``."""
        return self.method_dir.with_name(self.method_dir.name + ".metrics.json")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs, resolved; written next to its outputs as ``config.json``."""

    setting: str
    task: str
    method: str  # <base>[-<objective>]
    seed: int
    backbone: str
    variant: str | None = None  # the key of run.variants applied, if any
    data_seed: int = 13
    prompt: PromptConfig = field(default_factory=PromptConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    objective_options: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return split_method(self.method)[0]

    @property
    def objective(self) -> str:
        return split_method(self.method)[1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def split_cell(cell: str) -> tuple[str, str]:
    """``"fewshot-256.SST-2"`` → ``("fewshot-256", "SST-2")``."""
    setting, sep, task = cell.partition(".")
    if not sep or not setting or not task:
        raise PromptTuneError(f"grid cell {cell!r} must look like '<setting>.<task>', e.g. 'fewglue.CB'")
    return setting, task


def split_method(method: str) -> tuple[str, str]:
    """``"pt2"`` → ``("pt2", "ce")``; ``"pt-infoprompt"`` → ``("pt", "infoprompt")``."""
    base, sep, objective = method.partition("-")
    return base, objective if sep else "ce"


# --- generic dict → dataclass with type checks -------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except PromptTuneError as exc:
                errors.append(str(exc))
        raise PromptTuneError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise PromptTuneError(f"{key}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise PromptTuneError(f"{key}: expected a list, got {type(value).__name__}")
        (item_type,) = typing.get_args(tp)
        return [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise PromptTuneError(f"{key}: expected a mapping, got {type(value).__name__}")
        return copy.deepcopy(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise PromptTuneError(f"{key}: expected a mapping, got {type(value).__name__}")
        return build(tp, value, key)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PromptTuneError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PromptTuneError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise PromptTuneError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise PromptTuneError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {_type_name(tp)} at {key}")


def build(cls: type, data: dict[str, Any], key: str) -> Any:
    """Build dataclass ``cls`` from ``data``; every problem is a ``PromptTuneError`` naming ``key``."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    for name in data:
        if name not in known:
            raise PromptTuneError(f"{key}.{name}: unknown key; known: {', '.join(sorted(known))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f"{key}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise PromptTuneError(f"{key}.{f.name}: missing required key")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise PromptTuneError(f"{key}: {exc}") from exc


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# --- params.yaml ------------------------------------------------------------------------------


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PromptTuneError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise PromptTuneError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict):
        raise PromptTuneError(f"{path}: expected a mapping at the top level")
    return data


SECTIONS = {"grid": GridSection, "run": RunSection, "studies": StudiesSection}


def _validate(grid: GridSection, run: RunSection, studies: StudiesSection) -> None:
    """Cross-section checks: what the pipelines reference must exist."""
    for cell in grid.cells + grid.variants.cells:
        split_cell(cell)
    for name, values, allowed in (
        ("grid.variants.cells", grid.variants.cells, grid.cells),
        ("grid.variants.names", grid.variants.names, list(run.variants)),
        ("studies.landscape.cells", studies.landscape.cells, grid.cells),
        ("studies.landscape.methods", studies.landscape.methods, grid.methods),
        ("studies.landscape.seeds", studies.landscape.seeds, grid.seeds),
        ("studies.mi_check.cell", [studies.mi_check.cell], grid.cells),
    ):
        for value in values:
            if value not in allowed:
                raise PromptTuneError(f"{name}: {value!r} is not in {', '.join(map(str, allowed)) or '[]'}")
    base = {k: v for k, v in dataclasses.asdict(run).items() if k not in ("tasks", "variants")}
    for name, override in run.variants.items():
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise PromptTuneError(
                f"run.variants.{name}: a variant name may use letters, digits, '.', '_', '-'"
            )
        build(RunSection, deep_merge(base, override), f"run.variants.{name}")
    for name, override in run.tasks.items():
        build(RunSection, deep_merge(base, override), f"run.tasks.{name}")


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml (grid, run, studies, profiles); errors name ``<file>: <key>``."""
    path = Path(path)
    data = read_yaml(path)
    try:
        for key in SECTIONS:
            if key not in data:
                raise PromptTuneError(f"{key}: missing required key")
        unknown = set(data) - {"profile", "profiles", *SECTIONS}
        if unknown:
            known = ", ".join(sorted({"profile", "profiles", *SECTIONS}))
            raise PromptTuneError(f"{sorted(unknown)[0]}: unknown key; known: {known}")
        profiles = data.get("profiles") or {}
        for name, preset in profiles.items():
            if not isinstance(preset, dict) or set(preset) != {"description", *SECTIONS}:
                raise PromptTuneError(
                    f"profiles.{name}: expected a mapping with exactly description, grid, run and studies"
                )
            _validate(*(build(cls, preset[key], f"profiles.{name}.{key}") for key, cls in SECTIONS.items()))
        sections = [build(cls, data[key], key) for key, cls in SECTIONS.items()]
        _validate(*sections)
    except PromptTuneError as exc:
        raise PromptTuneError(f"{path}: {exc}") from exc
    grid, run, studies = sections
    return Params(
        profile=str(data.get("profile", "")),
        grid=grid,
        run=run,
        studies=studies,
        profiles=profiles,
        path=path,
    )


def expand_grid(params: Params) -> list[Cell]:
    """The runs of the grid in a fixed order: the main grid (cells, then methods, then seeds), then the
    variant runs (cells, methods, variant names, seeds)."""
    grid, variants = params.grid, params.grid.variants
    runs = [
        Cell(*split_cell(cell), method, seed)
        for cell in grid.cells
        for method in grid.methods
        for seed in grid.seeds
    ]
    runs += [
        Cell(*split_cell(cell), method, seed, variant)
        for cell in variants.cells
        for method in variants.methods
        for variant in variants.names
        for seed in variants.seeds
    ]
    return runs


def resolve_run(params: Params, cell: Cell) -> RunConfig:
    """The shared ``run`` block, then the task's overrides, then the variant's, validated for one run."""
    run = dataclasses.asdict(params.run)
    tasks, variants = run.pop("tasks"), run.pop("variants")
    if cell.variant is not None and cell.variant not in variants:
        known = ", ".join(sorted(variants)) or "none"
        raise PromptTuneError(f"{params.path}: run.variants.{cell.variant}: unknown variant; known: {known}")
    key = f"run.variants.{cell.variant}" if cell.variant else f"run.tasks.{cell.task}"
    merged_dict = deep_merge(run, tasks.get(cell.task, {}))
    if cell.variant:
        merged_dict = deep_merge(merged_dict, variants[cell.variant])
    try:
        merged = build(RunSection, merged_dict, key)
    except PromptTuneError as exc:
        raise PromptTuneError(f"{params.path}: {exc}") from exc
    return RunConfig(
        setting=cell.setting,
        task=cell.task,
        method=cell.method,
        seed=cell.seed,
        variant=cell.variant,
        data_seed=merged.data_seed,
        backbone=merged.backbone,
        prompt=merged.prompt,
        head=merged.head,
        train=merged.train,
        objective_options=dict(merged.objectives.get(split_method(cell.method)[1], {})),
    )
