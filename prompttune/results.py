"""The results contract: a typed, versioned ``metrics.json`` per run, and its provenance.

The aggregate, the report and the tests read runs only through ``load_metrics``; a file with another
schema version or missing keys is refused with a one-line error.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import torch

from prompttune.config import build
from prompttune.errors import PromptTuneError

SCHEMA_VERSION = 2  # 2: variant and prompt_init
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
class RunMetrics:
    schema_version: int
    status: Status
    reason: str | None
    setting: str
    task: str
    task_version: int
    method: str
    base: str
    objective: str
    seed: int
    variant: str | None  # the key of run.variants for variant runs
    prompt_init: str
    data_seed: int
    backbone: str
    backbone_dropout: bool
    precision: str
    device: str
    select: SplitResult | None
    report: SplitResult | None
    selected_step: int | None
    steps: int
    n_train: int
    trainable_params: int
    wall_time_s: float
    train_time_s: float
    train_examples_per_s: float
    peak_memory_mb: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def headline(self) -> dict[str, Any]:
        """Status, selected step, and the selection and report splits' scores: one seed's entry in
        ``<method>.metrics.json``, the file ``dvc metrics show`` and ``dvc exp show`` list."""
        out: dict[str, Any] = {"status": self.status, "selected_step": self.selected_step}
        for key, split in (("select", self.select), ("report", self.report)):
            if split is not None:
                out[key] = {"split": split.name, "score": split.score, **split.metrics}
        return out


def load_metrics(path: str | Path) -> RunMetrics:
    """Read a run's ``metrics.json``, checking its schema."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PromptTuneError(f"{path}: cannot read metrics ({exc})") from exc
    if data.get("schema_version") != SCHEMA_VERSION:
        raise PromptTuneError(
            f"{path}: schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}"
        )
    try:
        return build(RunMetrics, data, "metrics")
    except PromptTuneError as exc:
        raise PromptTuneError(f"{path}: {exc}") from exc


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


PACKAGES = ("prompttune", "torch", "transformers", "datasets", "numpy", "pandas", "dvc", "snakemake")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance(data_files: dict[str, str]) -> dict[str, Any]:
    """Git revision, package versions, hardware and the sha256 of every data file the run read."""
    return {
        "git_revision": _git_revision(),
        "packages": package_versions(),
        "hardware": hardware(),
        "data_sha256": data_files,
    }
