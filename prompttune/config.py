"""Typed, self-validating configuration: params.yaml → the grid's stages → one resolved ``RunConfig`` per run.

params.yaml has four parts: ``grid`` (which runs: named blocks of cells × methods × seeds, each block
optionally crossed with named variants), ``run`` (how every run trains, with overrides per setting, per
task, per cell and per named variant, and every objective's options), ``studies`` (the loss-landscape and
MI-convergence studies) and ``profiles`` (named presets of the three; ``prompttune profile NAME`` copies
one into place). Everything is checked when the file is loaded, before any work: unknown keys, wrong
types, out-of-range values, unknown task, setting, cell, method, objective and variant names, and every
objective's options (typed by the objective's own config class), each a one-line error naming the file
and the key. ``prompttune configure`` then writes each stage's resolved config — every default explicit —
and the pipelines train from those files, never from params.yaml.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from prompttune.errors import PromptTuneError

DEFAULT_PARAMS = Path("params.yaml")
NAME = r"[A-Za-z0-9._-]+"


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
    """Optimisation, evaluation and the convergence rule (AdamW, linear warm-up then linear decay to the
    step cap, gradient clipping; the selection split is evaluated every ``eval_every`` steps)."""

    steps: int = field(
        default=100, metadata={"help": "step cap: optimiser steps at most (ignored when epochs is set)"}
    )
    epochs: float | None = field(
        default=None, metadata={"help": "if set, the step cap is ceil(epochs·n_train/batch)"}
    )
    batch_size: int = 16
    lr: float = 1e-2
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    eval_every: int = field(default=25, metadata={"help": "evaluate on the selection split every N steps"})
    eval_every_epochs: float | None = field(
        default=None,
        metadata={"help": "if set, eval_every = max(1, round(eval_every_epochs·n_train/batch)) (per epoch)"},
    )
    patience: int = field(
        default=5,
        metadata={
            "help": "convergence rule (choice): a run has converged once its best selection score has not "
            "improved by more than min_delta for `patience` evaluations in a row; reaching the step cap "
            "first means not converged"
        },
    )
    min_delta: float = field(
        default=0.0, metadata={"help": "improvement of the selection score (fraction) that resets patience"}
    )
    early_stopping: bool = field(
        default=True, metadata={"help": "stop a run once it has converged (the selection split decides)"}
    )
    eval_batch_size: int = 64
    checkpoint_every: int = field(
        default=25,
        metadata={"help": "save a resume state every N steps (0: never)"},
    )
    checkpoint_minutes: float | None = field(
        default=None, metadata={"help": "also save a resume state every this many minutes of wall time"}
    )
    micro_batch_size: int = field(
        default=0,
        metadata={
            "help": "examples per forward/backward pass, gradients accumulated over the batch (0: the whole "
            "batch); for objectives whose loss is a mean over examples (memory: a multiple-choice example "
            "is all its choices)"
        },
    )
    tf32: bool = field(default=True, metadata={"help": "GPU: TF32 matrix products where fp32 runs"})
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
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto",
        metadata={
            "help": "auto: bf16 where the device computes it natively (a GPU with bf16, a CPU whose oneDNN "
            "and ATen kernels use AVX-512 BF16/AMX), fp16 with a gradient scaler on a GPU without bf16, "
            "fp32 otherwise; each run records what it used and why"
        },
    )
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
        _check(self.eval_every_epochs is None or self.eval_every_epochs > 0, "eval_every_epochs must be > 0")
        _check(self.patience >= 1, "patience must be ≥ 1")
        _check(self.min_delta >= 0, "min_delta must be ≥ 0")
        _check(self.checkpoint_every >= 0, "checkpoint_every must be ≥ 0")
        _check(
            self.checkpoint_minutes is None or self.checkpoint_minutes > 0, "checkpoint_minutes must be > 0"
        )
        _check(self.micro_batch_size >= 0, "micro_batch_size must be ≥ 0")
        _check(self.max_length >= 8, "max_length must be ≥ 8")
        _check(self.group_by_length >= 0, "group_by_length must be ≥ 0")


@dataclass(frozen=True)
class Overrides:
    """What a setting, task, cell or variant may override of the ``run`` block (deep-merged)."""

    backbone: str | None = None
    data_seed: int | None = None
    prompt: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    objectives: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSection:
    """The ``run`` block of params.yaml: shared by every run, then overridden per setting, per task, per
    cell and per variant, in that order."""

    backbone: str = field(default="minilm", metadata={"help": "minilm (embedded), a hub id or a local path"})
    data_seed: int = field(default=13, metadata={"help": "seeds data sampling, apart from the training seed"})
    prompt: PromptConfig = field(default_factory=PromptConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    objectives: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata={"help": "options per objective name, typed by its config class"}
    )
    settings: dict[str, Overrides] = field(default_factory=dict, metadata={"help": "per setting"})
    tasks: dict[str, Overrides] = field(default_factory=dict, metadata={"help": "per task"})
    cells: dict[str, Overrides] = field(default_factory=dict, metadata={"help": "per <setting>.<task>"})
    variants: dict[str, Overrides] = field(
        default_factory=dict,
        metadata={"help": "named overrides (e.g. prompt init, PTP's σ) for variant runs"},
    )


@dataclass(frozen=True)
class GridBlock:
    """One block of the grid: cells × methods × seeds, each run once per variant when ``variants`` is
    given (keys of ``run.variants``: runs that change one thing against the main runs), else main runs."""

    cells: list[str]
    methods: list[str]
    variants: list[str] = field(default_factory=list)
    seeds: list[int] | None = field(default=None, metadata={"help": "default: grid.seeds"})

    def __post_init__(self) -> None:
        for name in ("cells", "methods", "variants", "seeds"):
            values = getattr(self, name) or []
            _check(name in ("variants", "seeds") or len(values) > 0, f"{name} must not be empty")
            _check(len(set(values)) == len(values), f"{name} has duplicates")
        _check(self.seeds is None or len(self.seeds) > 0, "seeds must not be empty")


@dataclass(frozen=True)
class GridSection:
    """The ``grid`` block: named blocks and the seeds they default to."""

    seeds: list[int]
    blocks: dict[str, GridBlock]
    stack_seeds: bool = field(
        default=False,
        metadata={
            "help": "Snakemake: one job per cell × method trains all its seeds in one process "
            "(seed-parallel where the objective allows), as DVC's stages always do; false: one job "
            "per seed (more jobs for a cluster to spread); same results"
        },
    )

    def __post_init__(self) -> None:
        _check(len(self.seeds) > 0, "seeds must not be empty")
        _check(len(set(self.seeds)) == len(self.seeds), "seeds has duplicates")
        _check(len(self.blocks) > 0, "blocks must not be empty")


@dataclass(frozen=True)
class LandscapeStudy:
    """PTP-4: loss surfaces of finished main-grid runs (cells × methods × seeds); see landscape.py."""

    cells: list[str] = field(default_factory=list, metadata={"help": "cells of the grid"})
    methods: list[str] = field(
        default_factory=list, metadata={"help": "methods; each studied in the cells that train it"}
    )
    seeds: list[int] = field(default_factory=list, metadata={"help": "seeds those methods train"})
    radius: float = field(default=0.2, metadata={"help": "grid half-width, in rms(E)·√(coordinates)"})
    points: int = field(default=41, metadata={"help": "grid points per axis, odd (METHODS.md: 41)"})
    rho: float = field(default=0.1, metadata={"help": "sharpness radius, ≤ radius"})
    n_examples: int = field(default=32, metadata={"help": "first N examples of the report split"})
    chunk: int = field(
        default=8,
        metadata={"help": "examples per pass, longest first (memory and padding only; same surface)"},
    )

    def __post_init__(self) -> None:
        for name in ("cells", "methods", "seeds"):
            values = getattr(self, name)
            _check(len(values) > 0, f"{name} must not be empty")
            _check(len(set(values)) == len(values), f"{name} has duplicates")
        _check(self.radius > 0, "radius must be > 0")
        _check(self.points >= 3 and self.points % 2 == 1, "points must be odd and ≥ 3")
        _check(0 < self.rho <= self.radius, "rho must be in (0, radius]")
        _check(self.n_examples >= 1, "n_examples must be ≥ 1")
        _check(self.chunk >= 1, "chunk must be ≥ 1")


@dataclass(frozen=True)
class MiCheckStudy:
    """IP-5: the empirical check of InfoPrompt's gradient-descent claim; see mi_check.py."""

    cell: str = field(
        default="fewglue.CB",
        metadata={"help": "grid cell: GD runs on its training split, held-out checks on its selection split"},
    )
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "real-model seeds"})
    steps: int = field(default=60, metadata={"help": "full-batch GD steps of the real-model part"})
    quick: bool = field(default=False, metadata={"help": "one synthetic problem, 8 real examples (tests)"})

    def __post_init__(self) -> None:
        _check(len(self.seeds) > 0 and len(set(self.seeds)) == len(self.seeds), "seeds: non-empty, unique")
        _check(self.steps >= 2, "steps must be ≥ 2")


@dataclass(frozen=True)
class StudiesSection:
    """The ``studies`` block (both pipelines run both studies)."""

    landscape: LandscapeStudy
    mi_check: MiCheckStudy


@dataclass(frozen=True)
class Profile:
    description: str
    grid: dict[str, Any]
    run: dict[str, Any]
    studies: dict[str, Any]


@dataclass(frozen=True)
class Params:
    profile: str
    grid: GridSection
    run: RunSection
    studies: StudiesSection
    profiles: dict[str, Profile]
    path: Path

    @property
    def description(self) -> str:
        preset = self.profiles.get(self.profile)
        return preset.description if preset else ""


# --- the grid's runs and stages -----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Stage:
    """One training stage: a cell × method (× variant), every seed of it in one process."""

    cell: str
    method: str
    variant: str | None = None

    @property
    def setting(self) -> str:
        return split_cell(self.cell)[0]

    @property
    def task(self) -> str:
        return split_cell(self.cell)[1]

    @property
    def key(self) -> str:
        """The stage's name in both pipelines: ``<cell>/<method>[/<variant>]``."""
        return f"{self.cell}/{self.method}" + (f"/{self.variant}" if self.variant else "")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs, resolved, every default explicit (objective options included); written
    next to its outputs as ``config.json`` and embedded in ``metrics.json``."""

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

    @property
    def stage(self) -> Stage:
        return Stage(f"{self.setting}.{self.task}", self.method, self.variant)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StageConfig:
    """A training stage resolved: its seeds and the run config they share (``run.seed`` is the first
    seed; ``runs`` gives every seed's). ``prompttune configure`` writes it to ``configs/train/<key>.json``."""

    seeds: list[int]
    run: RunConfig

    @property
    def stage(self) -> Stage:
        return self.run.stage

    def runs(self) -> list[RunConfig]:
        return [dataclasses.replace(self.run, seed=seed) for seed in self.seeds]

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage.key, "seeds": self.seeds, "run": self.run.to_dict()}


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
        _, value_type = typing.get_args(tp)
        if value_type is Any:
            return copy.deepcopy(value)
        return {str(k): _coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise PromptTuneError(f"{key}: expected a mapping, got {type(value).__name__}")
        return build(tp, value, key)
    if tp is Any:
        return copy.deepcopy(value)
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
    """Build dataclass ``cls`` from ``data``; every problem is a ``PromptTuneError`` naming ``key``. A field
    that the class fixes (``init=False``, e.g. an ablation's zero weight) may appear with its fixed value,
    as ``dataclasses.asdict`` writes it."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in data.items():
        f = fields.get(name)
        if f is None:
            known = ", ".join(sorted(n for n, f in fields.items() if f.init))
            raise PromptTuneError(f"{key}.{name}: unknown key; known: {known}")
        if not f.init and value != f.default:
            raise PromptTuneError(f"{key}.{name}: fixed at {f.default!r} by {cls.__name__}")
    kwargs = {}
    for f in fields.values():
        if not f.init:
            continue
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
    """The backbone runs the method's base and objective (``bases.base.check_support``), where its config
    is on this machine."""
    from prompttune.bases.base import check_support

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
    from prompttune.splits import parse_setting
    from prompttune.tasks import get_task

    try:
        setting, task = split_cell(cell)
        parse_setting(setting)
        get_task(task)
    except PromptTuneError as exc:
        raise PromptTuneError(f"{key}: {exc}") from exc


def _check_names(run: RunSection) -> None:
    """Every name a ``run`` override is keyed by exists, and every objective's options are valid."""
    from prompttune.objectives import OBJECTIVES
    from prompttune.splits import parse_setting
    from prompttune.tasks import TASKS

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
    for cell, method in covered:
        missing = sorted(set(study.seeds) - set(main[cell, method]))
        if missing:
            raise PromptTuneError(f"studies.landscape.seeds: {cell}/{method} has no seed {missing[0]}")
    cells = {s.cell for s in stages}
    if studies.mi_check.cell not in cells:
        raise PromptTuneError(f"studies.mi_check.cell: {_known(repr(studies.mi_check.cell), cells)}")


def landscape_pairs(
    study: LandscapeStudy, trained: typing.Container[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The (cell, method) pairs the landscape study covers: its cells × methods where the grid trains a
    main run of that method in that cell."""
    return [(cell, method) for cell in study.cells for method in study.methods if (cell, method) in trained]


def _block_stages(block: GridBlock) -> list[Stage]:
    return [
        Stage(cell, method, variant)
        for cell in block.cells
        for method in block.methods
        for variant in (block.variants or [None])
    ]


def _block_seeds(grid: GridSection, block: GridBlock) -> list[int]:
    return block.seeds if block.seeds is not None else grid.seeds


def _build_profile(name: str, preset: Any) -> Profile:
    if not isinstance(preset, dict) or set(preset) != {"description", *SECTIONS}:
        raise PromptTuneError(
            f"profiles.{name}: expected a mapping with exactly description, grid, run and studies"
        )
    sections = [build(cls, preset[key], f"profiles.{name}.{key}") for key, cls in SECTIONS.items()]
    try:
        _validate(*sections)
    except PromptTuneError as exc:
        raise PromptTuneError(f"profiles.{name}: {exc}") from exc
    return Profile(str(preset["description"]), preset["grid"], preset["run"], preset["studies"])


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml (grid, run, studies, profiles); errors name ``<file>: <key>``."""
    path = Path(path)
    try:
        return params_from_dict(read_yaml(path), path)
    except PromptTuneError as exc:
        raise PromptTuneError(f"{path}: {exc}") from exc


def params_from_dict(data: dict[str, Any], path: Path) -> Params:
    """``load_params`` of an already-read mapping (Snakemake hands its merged ``config``)."""
    for key in SECTIONS:
        if key not in data:
            raise PromptTuneError(f"{key}: missing required key")
    unknown = set(data) - {"profile", "profiles", *SECTIONS}
    if unknown:
        raise PromptTuneError(
            _known(f"{sorted(unknown)[0]}: unknown key", {"profile", "profiles", *SECTIONS})
        )
    profiles = {name: _build_profile(name, preset) for name, preset in (data.get("profiles") or {}).items()}
    sections = [build(cls, data[key], key) for key, cls in SECTIONS.items()]
    _validate(*sections)
    grid, run, studies = sections
    profile = str(data.get("profile") or "")
    if profile and profile not in profiles:
        raise PromptTuneError(f"profile: {_known(repr(profile), profiles)}")
    return Params(profile=profile, grid=grid, run=run, studies=studies, profiles=profiles, path=path)


def expand_stages(params: Params) -> list[StageConfig]:
    """Every training stage of the grid, resolved, in block order (cells, methods, variants)."""
    return [
        StageConfig(seeds=list(seeds), run=resolve_run(params, stage, seeds[0]))
        for block in params.grid.blocks.values()
        for seeds in [_block_seeds(params.grid, block)]
        for stage in _block_stages(block)
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
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        seeds, run = data["seeds"], data["run"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PromptTuneError(f"{path}: not a stage config ({exc}); run `prompttune configure`") from exc
    config = StageConfig(
        seeds=_coerce(seeds, list[int], f"{path}: seeds"), run=build(RunConfig, run, f"{path}: run")
    )
    check_method(config.run.method, f"{path}: run.method")
    return config
