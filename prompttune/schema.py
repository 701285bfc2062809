"""The typed schema of params.yaml and of every resolved config, and the builder that checks a mapping
against it. A leaf: it imports no registry (and no torch), so the prompt bases, the objectives and the model
import their configs from here, and ``prompttune.config`` validates above them.

A grid has three parts: ``grid`` (which runs: named blocks of cells × methods × seeds, each block
optionally crossed with named variants), ``run`` (how every run trains, with overrides per setting, per
task, per cell and per named variant, and every objective's options) and ``studies`` (the loss-landscape and
MI-convergence studies); profiles.yaml holds named presets of the three (``Profile``), params.yaml names one
and overrides its keys (``prompttune.config``). Each part is a frozen
dataclass whose fields carry their defaults and ``help``; ``build`` turns a mapping into one, every problem
(unknown key, wrong type, out-of-range value) a one-line error naming the key. What needs the registries —
task, setting, cell, method, objective and variant names, every objective's options, whether a backbone runs
a method — is checked by ``prompttune.config``."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from prompttune.errors import PromptTuneError


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


PICK_SEEDS = 2  # the adaptive design: seeds that pick the best of a claim's variants, not tested (choice)


@dataclass(frozen=True)
class DecideSection:
    """``grid.decide``: the adaptive design (prompttune/decide.py). Every arm trains seeds 1…n, n its
    count in ``seeds.yaml`` (which ``prompttune decide`` writes round by round), else its pilot's
    (``pilot_seeds``); claims are judged at the looks with α-spending (prompttune/stats.py). A claim that
    tests the best of several variants reads the seeds after the ``PICK_SEEDS`` that picked it, so its arms
    train up to the last look + ``PICK_SEEDS``."""

    budget_min: float = field(
        metadata={"help": "minutes of wall time `prompttune decide` may spend, the pilot included"}
    )
    looks: list[int] = field(
        default_factory=lambda: [4, 7, 10, 15],
        metadata={
            "help": "seed counts at which a claim is judged, increasing; the last is the cap (a first "
            "look at 3 seeds crosses its level 2–2.4× as often on collapsed or discrete scores: "
            "benchmarks/first_look.py)"
        },
    )

    pilot: dict[str, int] = field(
        default_factory=dict,
        metadata={
            "help": "seeds an arm (<setting>/<method>[@variants], as in seeds.yaml) trains before the "
            "first round is planned, 1…the first look; an arm not named trains the first look's (choice: "
            "a PTP variant needs only the seeds that pick the best one, and its later seeds go where the "
            "planner sends them)"
        },
    )

    def __post_init__(self) -> None:
        _check(self.budget_min > 0, "budget_min must be > 0")
        _check(len(self.looks) > 0 and self.looks[0] >= 2, "looks must start at ≥ 2 seeds")
        _check(all(a < b for a, b in zip(self.looks, self.looks[1:], strict=False)), "looks must increase")
        for arm, seeds in self.pilot.items():
            _check(
                1 <= seeds <= self.looks[0],
                f"pilot.{arm}: {seeds} is not in 1…{self.looks[0]} (the first look)",
            )

    def pilot_seeds(self, arm: str) -> int:
        """The seeds ``arm`` trains before the first round is planned."""
        return self.pilot.get(arm, self.looks[0])


@dataclass(frozen=True)
class GridSection:
    """The ``grid`` block: named blocks and the seeds they default to; with ``decide``, the seeds come
    from the adaptive design instead."""

    blocks: dict[str, GridBlock]
    seeds: list[int] = field(default_factory=list, metadata={"help": "every block's, unless it has its own"})
    decide: DecideSection | None = field(
        default=None,
        metadata={"help": "the adaptive design: seeds per arm where the claims need them (default: none)"},
    )
    stack_seeds: bool = field(
        default=False,
        metadata={
            "help": "Snakemake: one job per cell × method trains all its seeds in one process "
            "(seed-parallel where the objective allows), as DVC's stages always do; false: one job "
            "per seed (more jobs for a cluster to spread); same results"
        },
    )

    @property
    def stacked_jobs(self) -> bool:
        """Snakemake's training jobs: one per stage (every seed), or one per seed — always under
        ``decide``, whose rounds add seeds to stages that have already trained."""
        return self.stack_seeds and self.decide is None

    def __post_init__(self) -> None:
        _check(len(set(self.seeds)) == len(self.seeds), "seeds has duplicates")
        _check(len(self.blocks) > 0, "blocks must not be empty")
        if self.decide is None:
            _check(len(self.seeds) > 0, "seeds must not be empty")
        else:
            given = [name for name, block in self.blocks.items() if block.seeds is not None]
            _check(
                not self.seeds and not given,
                "decide: the seeds come from seeds.yaml; remove "
                + (f"blocks.{given[0]}.seeds" if given else "seeds"),
            )


@dataclass(frozen=True)
class LandscapeStudy:
    """PTP-4: loss surfaces of finished main-grid runs (cells × methods × seeds); see landscape.py."""

    cells: list[str] = field(default_factory=list, metadata={"help": "cells of the grid"})
    methods: list[str] = field(
        default_factory=list, metadata={"help": "methods; each studied in the cells that train it"}
    )
    seeds: list[int] = field(
        default_factory=list,
        metadata={"help": "seeds those methods train (none under grid.decide: every seed they train)"},
    )
    radius: float = field(default=0.2, metadata={"help": "grid half-width, in rms(E)·√(coordinates)"})
    points: int = field(default=41, metadata={"help": "grid points per axis, odd (docs/methods.md: 41)"})
    rho: float = field(default=0.1, metadata={"help": "sharpness radius, ≤ radius"})
    n_examples: int = field(default=32, metadata={"help": "first N examples of the report split"})
    chunk: int = field(
        default=8,
        metadata={"help": "examples per pass, longest first (memory and padding only; same surface)"},
    )

    def __post_init__(self) -> None:
        for name in ("cells", "methods", "seeds"):
            values = getattr(self, name)
            _check(name == "seeds" or len(values) > 0, f"{name} must not be empty")
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
    """params.yaml validated; ``arm_seeds``: each arm's seed count from ``seeds.yaml`` (``grid.decide``)."""

    profile: str
    grid: GridSection
    run: RunSection
    studies: StudiesSection
    profiles: dict[str, Profile]
    path: Path
    arm_seeds: dict[str, int] = field(default_factory=dict)

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

    @property
    def arm(self) -> str:
        """The arm the stage's runs belong to (``arm_name``): what the adaptive design gives seeds to."""
        return arm_name(self.setting, self.method, self.variant is not None)


def arm_name(setting: str, method: str, variants: bool = False) -> str:
    """An arm of the claims: ``<setting>/<method>`` for the method's main runs in every task of the
    setting, ``<setting>/<method>@variants`` for its variant runs."""
    return f"{setting}/{method}" + ("@variants" if variants else "")


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


def landscape_pairs(
    study: LandscapeStudy, trained: typing.Container[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The (cell, method) pairs the landscape study covers: its cells × methods where the grid trains a
    main run of that method in that cell."""
    return [(cell, method) for cell in study.cells for method in study.methods if (cell, method) in trained]


# --- generic dict → dataclass with type checks -------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the type hint ``tp`` (unions, literals, lists, mappings, dataclasses,
    scalars; an integer where a float is expected becomes a float); a mismatch is a ``PromptTuneError``
    naming ``key``."""
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
                return coerce(value, option, key)
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
        return [coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise PromptTuneError(f"{key}: expected a mapping, got {type(value).__name__}")
        _, value_type = typing.get_args(tp)
        if value_type is Any:
            return copy.deepcopy(value)
        return {str(k): coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
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
            kwargs[f.name] = coerce(data[f.name], hints[f.name], f"{key}.{f.name}")
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
