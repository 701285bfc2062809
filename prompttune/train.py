"""One stage of the grid, top to bottom: the seeds of one cell × method share the data and the frozen
backbone; each seed gets its own model (prompt, head), objective, optimiser, schedule, data order and RNG;
then the loop — batch, loss, backward (per micro-batch), clip, step, evaluate on the selection split every
N steps, keep the best checkpoint, stop once the convergence rule holds — and at the end the selected
checkpoint is evaluated once on the report split and every run folder is written atomically.

Checkpoint selection and early stopping use the selection split only (ties go to the later step:
choice); the report split is evaluated once, at the end. The pieces, in the order the loop uses them:
``prepare`` (what the seeds share), ``start`` (one seed's state), the two step strategies
(``turn_step``: one seed after another, each under its own RNG state; ``stacked_step``: one backbone
pass over every seed's batch), ``update`` (the non-finite policy and the optimiser step; a run that
crashes is a result too, see ``crash``), ``evaluate``
(the curve, the best checkpoint, the convergence rule), ``Resume`` (the state that lets a killed run
continue exactly) and ``finish`` / ``write_run`` (the outputs).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import random
import resource
import shutil
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from prompttune import convergence
from prompttune.backbone import load_backbone
from prompttune.bases import BASES
from prompttune.batches import Batch, Features, collate, eval_batches, length, train_order
from prompttune.config import RunConfig, TrainConfig
from prompttune.data import verify
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_directory, atomic_write_bytes
from prompttune.model import ModelOutput, PromptModel, StackedModel
from prompttune.objectives import OBJECTIVES, Objective, build_objective
from prompttune.precision import autocast, grad_scaler, resolve_precision
from prompttune.progress import Progress, silent
from prompttune.results import (
    SCHEMA_VERSION,
    Convergence,
    DataInfo,
    ObjectiveInfo,
    Precision,
    RunMetrics,
    SplitResult,
    provenance,
)
from prompttune.splits import Splits, load_splits
from prompttune.tasks import get_task
from prompttune.tasks.base import Example, Task
from prompttune.tokens import encode_cached

if TYPE_CHECKING:  # transformers' modeling module takes seconds to import: type hints only
    from transformers import PreTrainedModel


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move a batch; to a GPU through pinned memory, so the copy does not wait for the host."""
    if device.type == "cuda":
        return {key: value.pin_memory().to(device, non_blocking=True) for key, value in batch.items()}
    return {key: value.to(device) for key, value in batch.items()}


# --- what the seeds of a stage share ---------------------------------------------------------------------


@dataclass
class Setup:
    """Everything the seeds of one stage share: task, splits, device, precision, backbone, tokenised
    splits, the majority class, the step cap, the evaluation interval and the warm-up."""

    task: Task
    splits: Splits
    device: torch.device
    precision: Precision
    backbone: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    features: dict[str, list[Features]]  # "train", "select", "report"
    majority: int
    cap: int
    eval_every: int
    warmup: int
    data_sha: dict[str, str]
    data: DataInfo

    @property
    def multiple_choice(self) -> bool:
        return self.task.kind == "multiple_choice"

    def batch(self, features: Sequence[Features]) -> Batch:
        return to_device(collate(features, self.tokenizer, self.multiple_choice), self.device)


def number_of_steps(config: RunConfig, n_train: int) -> int:
    """The step cap: ``train.steps``, or ``ceil(epochs·n_train/batch)`` when ``train.epochs`` is set."""
    if config.train.epochs is None:
        return config.train.steps
    return max(1, math.ceil(config.train.epochs * n_train / config.train.batch_size))


def evaluation_interval(config: RunConfig, n_train: int) -> int:
    """``train.eval_every`` steps, or ``eval_every_epochs`` epochs in steps when that is set."""
    if config.train.eval_every_epochs is None:
        return config.train.eval_every
    return max(1, round(config.train.eval_every_epochs * n_train / config.train.batch_size))


def prepare(config: RunConfig, data_root: Path) -> Setup:
    """Read, check and tokenise the stage's splits; load the backbone once; resolve the precision."""
    task = get_task(config.task)
    BASES.get(config.base), OBJECTIVES.get(config.objective)  # unknown names fail before any work
    splits = load_splits(data_root, config.setting, task, config.data_seed)
    splits.require_labels()
    data_sha = verify(data_root, splits.files)
    device = resolve_device(config.train.device)
    if device.type == "cuda":  # TF32 matrix products for whatever runs in fp32 (choice; GPU only)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = config.train.tf32
    precision = resolve_precision(config.train.precision, device)
    backbone, tokenizer = load_backbone(config.backbone)
    backbone.to(device)
    if config.train.compile:
        backbone.compile(dynamic=True)
    examples = {"train": splits.train, "select": splits.select, "report": splits.report}
    max_length = config.train.max_length
    features = {name: encode_cached(split, task, tokenizer, max_length) for name, split in examples.items()}
    cap = number_of_steps(config, len(splits.train))
    data = DataInfo(
        sizes={name: len(split) for name, split in examples.items()},
        removed_overlap=splits.removed_overlap,
        truncated={name: truncated(split, task, tokenizer, max_length) for name, split in examples.items()},
    )
    return Setup(
        task=task,
        splits=splits,
        device=device,
        precision=precision,
        backbone=backbone,
        tokenizer=tokenizer,
        features=features,
        majority=majority_class(task, splits.train),
        cap=cap,
        eval_every=evaluation_interval(config, len(splits.train)),
        warmup=round(config.train.warmup_ratio * cap),
        data_sha=data_sha,
        data=data,
    )


def truncated(
    examples: Sequence[Example], task: Task, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> int:
    """How many examples ``max_length`` cuts (any of their sequences longer than it untruncated)."""
    count = 0
    for example in examples:
        pairs = (
            [(example.text_a, choice) for choice in example.choices]
            if task.kind == "multiple_choice"
            else [(example.text_a, example.text_b)]
        )
        count += any(len(tokenizer(a, b)["input_ids"]) > max_length for a, b in pairs)
    return count


def majority_class(task: Task, train: Sequence[Example]) -> int:
    """The most frequent training label (smallest index on ties); choice 0 for multiple choice."""
    if task.kind == "multiple_choice":
        return 0
    counts = Counter(example.label for example in train)
    return max(sorted(counts), key=lambda label: counts[label])


class FeatureHead(nn.Module):
    """Base ``head`` with a loss that reads only the model's logits and the backbone frozen and without
    dropout: the pooled features never change, so they are computed once per split (``table``: each
    example's (choices, d) features, by its index in the split) and the head trains on them — a linear
    probe need not run the backbone every step. Gives the model's own logits."""

    def __init__(self, model: PromptModel, table: list[torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.table = table
        self.task = model.task

    def forward(self, batch: Batch) -> ModelOutput:
        rows = [self.table[i] for i in batch["example_index"].tolist()]
        choice_mask = batch.get("choice_mask")
        if choice_mask is None:
            pooled = torch.stack([row[0] for row in rows])
        else:
            width = choice_mask.shape[1]
            pooled = torch.cat([torch.cat([row, row[:1].expand(width - len(row), -1)]) for row in rows])
        return ModelOutput(logits=self.model.scores(pooled, choice_mask), pooled=pooled)

    def seed_means(self, per_example: torch.Tensor) -> torch.Tensor:
        return per_example.mean()


@torch.no_grad()
def feature_tables(model: PromptModel, setup: Setup, batch_size: int) -> dict[str, list[torch.Tensor]]:
    """The pooled features of every example of every split, (choices, d) each, in evaluation mode."""
    model.eval()
    tables = {}
    for name, features in setup.features.items():
        rows: list[torch.Tensor] = [torch.empty(0)] * len(features)
        order = sorted(range(len(features)), key=lambda i: -length(features[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = setup.batch([features[i] for i in chunk])
            with autocast(setup.device, setup.precision.used):
                pooled = model.encode(batch).float()
            per_example = pooled.view(len(chunk), -1, pooled.shape[-1])
            for i, index in enumerate(chunk):
                rows[index] = per_example[i, : len(features[index].sequences)]
        tables[name] = rows
    model.train()
    return tables


# --- one seed -------------------------------------------------------------------------------------------


@dataclass
class CurvePoint:
    step: int
    train_loss: float
    lr: float
    select_score: float
    elapsed_s: float


@dataclass
class SeedRun:
    """The training state of one seed: its model (prompt, head), the model its objective trains
    (``trained``: the model itself, or a ``FeatureHead`` over cached features), objective, optimiser,
    schedule, gradient scaler, data order, global-RNG state between its steps, curve, best checkpoint,
    and where the convergence rule stands."""

    config: RunConfig
    out_dir: Path
    model: PromptModel
    trained: nn.Module
    objective: Objective
    trainable: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    rng: dict[str, Any]
    tables: dict[str, list[torch.Tensor]] | None = None
    order: Iterator[list[Features]] = field(default_factory=lambda: iter(()))
    curve: list[CurvePoint] = field(default_factory=list)
    best_score: float = -math.inf
    best_step: int = 0
    best_state: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    train_time: float = 0.0
    step: int = 0
    status: str = "ok"
    reason: str | None = None
    converged_at: int | None = None

    @property
    def active(self) -> bool:
        return self.status == "ok" and not (
            self.converged_at is not None and self.config.train.early_stopping
        )

    def snapshot(self) -> dict[str, Any]:
        return {"model": self.model.trainable_state(), "objective": self.objective.state_dict()}

    def state(self) -> dict[str, Any]:
        """Everything needed to continue this seed exactly where it is."""
        fields = ("best_score", "best_step", "best_state", "losses", "train_time", "step", "status", "reason")
        return {
            "model": self.model.trainable_state(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "curve": [dataclasses.asdict(point) for point in self.curve],
            "rng": self.rng,
            "converged_at": self.converged_at,
            **{name: getattr(self, name) for name in fields},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state.pop("model"), strict=False)
        self.objective.load_state_dict(state.pop("objective"))
        self.optimizer.load_state_dict(state.pop("optimizer"))
        self.scheduler.load_state_dict(state.pop("scheduler"))
        self.scaler.load_state_dict(state.pop("scaler"))
        self.curve = [CurvePoint(**point) for point in state.pop("curve")]
        for name, value in state.items():
            setattr(self, name, value)


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up to the peak, then linear decay to 0 at the step cap (P-tuning v2 / HF ``linear``)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def start(
    config: RunConfig, setup: Setup, out_dir: Path, tables: dict[str, list[torch.Tensor]] | None
) -> SeedRun:
    """One seed's model, objective, optimiser, schedule and scaler, built under its own seed."""
    seed_everything(config.seed)
    model = PromptModel.build(config, setup.backbone, setup.tokenizer, setup.task).to(setup.device)
    objective = build_objective(config.objective, config.objective_options, model).to(setup.device)
    trainable = [p for p in [*model.parameters(), *objective.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.train.lr, weight_decay=config.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(setup.warmup, setup.cap))
    trained = FeatureHead(model, tables["train"]) if tables is not None else model
    scaler = grad_scaler(setup.device, setup.precision.used)
    rng = get_rng_state()
    return SeedRun(
        config, out_dir, model, trained, objective, trainable, optimizer, scheduler, scaler, rng, tables
    )


def uses_feature_cache(config: RunConfig) -> bool:
    return (
        config.base == "head"
        and OBJECTIVES.get(config.objective).features_only
        and not config.train.backbone_dropout
    )


# --- evaluation ------------------------------------------------------------------------------------------


@torch.no_grad()
def predict(
    model: nn.Module,
    features: Sequence[Features],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    device: torch.device,
    precision: str,
) -> list[int]:
    """Arg-max predictions, in the order of ``features``, with the model in evaluation mode. Examples
    are batched by length (longest first) so that each batch pads little (choice)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(features)), key=lambda i: -length(features[i]))
    preds = [0] * len(features)
    multiple_choice = model.task.kind == "multiple_choice"
    batches = eval_batches([features[i] for i in order], tokenizer, batch_size, multiple_choice)
    for start_at, batch in zip(range(0, len(order), batch_size), batches, strict=True):
        with autocast(device, precision):
            logits = model(to_device(batch, device)).logits
        for i, pred in zip(
            order[start_at : start_at + batch_size], logits.argmax(dim=-1).tolist(), strict=True
        ):
            preds[i] = pred
    model.train(was_training)
    return preds


def scorer(run: SeedRun, split: str) -> nn.Module:
    """The model that scores ``split`` for this seed (over that split's cached features, if any)."""
    return FeatureHead(run.model, run.tables[split]) if run.tables is not None else run.model


def predict_split(run: SeedRun, setup: Setup, split: str) -> list[int]:
    """The seed's predictions on one of the stage's splits."""
    args = (setup.tokenizer, run.config.train.eval_batch_size, setup.device, setup.precision.used)
    return predict(scorer(run, split), setup.features[split], *args)


def evaluate(run: SeedRun, setup: Setup, step: int) -> float:
    """Score the selection split, add the curve point, keep the checkpoint when it is the best so far
    (ties: the later step), and apply the convergence rule."""
    train = run.config.train
    preds = predict_split(run, setup, "select")
    score = setup.task.score(setup.task.compute_metrics(setup.splits.select, preds))
    train_loss = float(np.mean(run.losses)) if run.losses else float("nan")
    lr = run.scheduler.get_last_lr()[0] if step else 0.0
    run.curve.append(CurvePoint(step, train_loss, lr, score, run.train_time))
    run.losses = []
    if score >= run.best_score:
        run.best_score, run.best_step, run.best_state = score, step, run.snapshot()
    if run.converged_at is None:
        steps, scores = [p.step for p in run.curve], [p.select_score for p in run.curve]
        run.converged_at = convergence.plateau_step(steps, scores, train.patience, train.min_delta)
    return score


# --- the two step strategies and the update --------------------------------------------------------------


def micro_batches(features: list[Features], size: int) -> list[list[Features]]:
    """The batch in micro-batches of ``size`` examples (gradient accumulation); 0: the whole batch."""
    size = size or len(features)
    return [features[i : i + size] for i in range(0, len(features), size)]


def crash(run: SeedRun, exc: Exception, where: str) -> None:
    """A run that raises (out of memory, a bug) is a result: status ``failed`` with the reason, and its
    traceback on stderr; the stage goes on with its other seeds (choice)."""
    traceback.print_exception(exc, file=sys.stderr)
    run.status, run.reason = (
        "failed",
        f"crashed {where}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
    )
    run.optimizer.zero_grad(set_to_none=True)


def turn_step(active: Sequence[SeedRun], batches: Sequence[list[Features]], setup: Setup) -> list[float]:
    """One seed after another, each under its own RNG state: forward and backward of every micro-batch
    (its loss weighted by its share of the batch); returns each seed's loss (non-finite: it stops there)."""
    values = []
    for run, features in zip(active, batches, strict=True):
        set_rng_state(run.rng)
        total = 0.0
        try:
            for chunk in micro_batches(features, run.config.train.micro_batch_size):
                with autocast(setup.device, setup.precision.used):
                    loss = run.objective.loss(run.trained, setup.batch(chunk))[0] * (
                        len(chunk) / len(features)
                    )
                if not torch.isfinite(loss):
                    total = loss.item()
                    break
                run.scaler.scale(loss).backward()
                total += loss.item()
        except PromptTuneError:
            raise
        except Exception as exc:  # noqa: BLE001 — a crash is a result (see ``crash``)
            crash(run, exc, "in a training step")
        run.rng = get_rng_state()
        values.append(total)
    return values


def stacked_step(active: Sequence[SeedRun], batches: Sequence[list[Features]], setup: Setup) -> list[float]:
    """One backbone pass over every active seed's (micro-)batch (stackable objectives: no random draws, no
    coupling between examples); returns each seed's loss."""
    if len(active) == 1:
        return turn_step(active, batches, setup)
    model = StackedModel([run.model for run in active])
    size = active[0].config.train.micro_batch_size or len(batches[0])
    totals = [0.0] * len(active)
    try:
        for begin in range(0, len(batches[0]), size):
            chunks = [features[begin : begin + size] for features in batches]
            with autocast(setup.device, setup.precision.used):
                losses = active[0].objective.loss(model, setup.batch([f for c in chunks for f in c]))[0]
                losses = losses * (len(chunks[0]) / len(batches[0]))
            # each seed's loss reaches only its own parameters, so a non-finite one spoils nobody else's
            sum(active[i].scaler.scale(loss) for i, loss in enumerate(losses.unbind())).backward()
            totals = [total + loss for total, loss in zip(totals, losses.tolist(), strict=True)]
    except PromptTuneError:
        raise
    except Exception as exc:  # noqa: BLE001 — a crash is a result (see ``crash``)
        for run in active:
            crash(run, exc, "in a stacked training step")
    return totals


def update(active: Sequence[SeedRun], losses: Sequence[float], step: int, seconds: float) -> None:
    """A seed whose loss is not finite fails alone (status ``failed`` with the reason); the others clip and
    step. A stacked step's time is split evenly between its seeds."""
    for run, loss in zip(active, losses, strict=True):
        run.step = step
        run.train_time += seconds / len(active)
        if run.status != "ok":
            continue
        if not math.isfinite(loss):
            run.status, run.reason = "failed", f"non-finite loss {loss} at step {step}"
            run.optimizer.zero_grad(set_to_none=True)
            continue
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.trainable, run.config.train.max_grad_norm)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
        run.losses.append(loss)


def stacks(configs: Sequence[RunConfig], device: torch.device) -> bool:
    """Whether the seeds share one backbone pass (``train.seed_parallel``; auto: on a GPU only)."""
    first = configs[0]
    mode = first.train.seed_parallel
    return (
        len(configs) > 1
        and OBJECTIVES.get(first.objective).stackable
        and not first.train.backbone_dropout
        and not uses_feature_cache(first)
        and (mode == "stacked" or (mode == "auto" and device.type != "cpu"))
    )


# --- resume ----------------------------------------------------------------------------------------------


@dataclass
class Resume:
    """The resume state of seeds trained together (``state.pt`` in ``folder``), saved atomically every
    ``train.checkpoint_every`` steps and removed when the stage ends. A state saved under other configs is
    ignored with a warning."""

    folder: Path
    configs: list[dict[str, Any]]

    @property
    def path(self) -> Path:
        return self.folder / "state.pt"

    @staticmethod
    def due(step: int, saved_at: float, train: TrainConfig) -> bool:
        """Every ``checkpoint_every`` steps, or every ``checkpoint_minutes`` of wall time."""
        by_steps = bool(train.checkpoint_every) and step % train.checkpoint_every == 0
        by_time = (
            train.checkpoint_minutes is not None
            and time.monotonic() - saved_at >= 60 * train.checkpoint_minutes
        )
        return by_steps or by_time

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("configs") != self.configs:
            print(f"warning: {self.path} belongs to another configuration; starting afresh", file=sys.stderr)
            return None
        print(f"resuming {self.folder.name} from step {state['step']}", file=sys.stderr)
        return state

    def save(self, step: int, runs: Sequence[SeedRun]) -> None:
        buffer = io.BytesIO()
        torch.save({"configs": self.configs, "step": step, "runs": [run.state() for run in runs]}, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())

    def remove(self) -> None:
        """Delete this group's state, and the ``.resume`` folder once no group is left in it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.folder.parent.rmdir()


class Termination:
    """SIGTERM (SLURM's kill at a time limit, a cancel or a pre-emption, KillWait seconds before SIGKILL,
    or its ``--signal`` warning) lets the step under way finish, then the loop saves the resume state and
    exits with status 143: the next attempt resumes from that step, not from the last periodic save.
    Installed only in the main thread (where Python runs signal handlers); the previous handler is
    restored on leaving."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> Termination:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def resume_folder(out_dirs: Sequence[Path]) -> Path:
    """``<parent>.resume/seed1+2+3`` beside the folder that holds the run folders — outside the folder a
    Snakemake job declares as its output (which Snakemake deletes before running the job again); DVC
    neither caches nor hashes it (``.dvcignore``)."""
    dirs = [Path(d).absolute() for d in out_dirs]
    name = "+".join([dirs[0].name, *(d.name.removeprefix("seed") for d in dirs[1:])])
    parent = dirs[0].parent
    return parent.with_name(parent.name + ".resume") / name


def get_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


# --- the stage ------------------------------------------------------------------------------------------


def train_run(
    config: RunConfig, data_root: Path, out_dir: Path, progress: Progress | None = None
) -> RunMetrics:
    """Train and evaluate one run; write its folder atomically; return its metrics."""
    return train_seeds([config], data_root, [out_dir], progress)[0]


def open_runs(
    configs: Sequence[RunConfig], data_root: Path, out_dirs: Sequence[Path]
) -> tuple[Setup, list[SeedRun]]:
    """The stage's data, backbone and tokenised splits (``prepare``, from the first config), the head's
    cached features where the objective allows them, and one fresh run per config (``start``)."""
    first = configs[0]
    setup = prepare(first, Path(data_root))
    tables = None
    if uses_feature_cache(first):
        seed_everything(first.seed)
        probe = PromptModel.build(first, setup.backbone, setup.tokenizer, setup.task).to(setup.device)
        tables = feature_tables(probe, setup, first.train.eval_batch_size)
    return setup, [start(c, setup, Path(d), tables) for c, d in zip(configs, out_dirs, strict=True)]


def train_seeds(
    configs: Sequence[RunConfig], data_root: Path, out_dirs: Sequence[Path], progress: Progress | None = None
) -> list[RunMetrics]:
    """Train several seeds of one stage in one process (configs equal but for the seed); every seed ends
    exactly as a run of its own would (up to floating-point summation order when stacked)."""
    started = time.perf_counter()
    first = configs[0]
    if any(dataclasses.replace(c, seed=first.seed) != first for c in configs) or len(configs) != len(
        out_dirs
    ):
        raise ValueError("train_seeds: the configs must differ only in their seed, one output folder each")
    setup, runs = open_runs(configs, data_root, out_dirs)
    resume = Resume(resume_folder(out_dirs), [c.to_dict() for c in configs])
    saved = resume.load()
    for run, state in zip(runs, saved["runs"] if saved else [None] * len(runs), strict=True):
        if state is None:
            evaluate(run, setup, 0)
        else:
            run.restore(state)
    step0 = saved["step"] if saved else 0
    for run in runs:
        group = first.train.group_by_length
        generator = torch.Generator().manual_seed(run.config.seed)
        run.order = train_order(setup.features["train"], first.train.batch_size, generator, step0, group)
        run.trained.train()
    step_of = stacked_step if stacks(configs, setup.device) else turn_step
    report = progress or silent
    saved_at = time.monotonic()
    loop_started = time.perf_counter()
    with Termination() as termination:
        for step in range(step0 + 1, setup.cap + 1):
            active = [run for run in runs if run.active]
            if not active:
                break
            batches = [next(run.order) for run in active]
            tick = time.perf_counter()
            losses = step_of(active, batches, setup)
            update(active, losses, step, time.perf_counter() - tick)
            for run in active:
                if run.status == "ok" and (step % setup.eval_every == 0 or step == setup.cap):
                    try:
                        evaluate(run, setup, step)
                    except PromptTuneError:
                        raise
                    except Exception as exc:  # noqa: BLE001 — a crash is a result
                        crash(run, exc, f"evaluating step {step}")
                        continue
                    eta = stage_eta(loop_started, step0, step, setup.cap)
                    report(progress_line(run, setup, started, eta))
            if step < setup.cap and (termination.requested or resume.due(step, saved_at, first.train)):
                resume.save(step, runs)
                saved_at = time.monotonic()
                if termination.requested:
                    print(f"SIGTERM: resume state saved at step {step}; stopping", file=sys.stderr)
                    raise SystemExit(128 + signal.SIGTERM)
    results = []
    for run in runs:
        metrics, predictions = finish(run, setup)
        metrics = dataclasses.replace(  # a process's time, split evenly between its seeds
            metrics,
            wall_time_s=(time.perf_counter() - started) / len(runs),
            peak_memory_mb=peak_memory_mb(setup.device),
        )
        write_run(run, metrics, predictions, setup)
        results.append(metrics)
    resume.remove()
    return results


def stage_eta(loop_started: float, step0: int, step: int, cap: int) -> float:
    """Seconds until the stage's last step: the wall time per step so far (every seed it trains, their
    evaluations included) times the steps left — an upper bound, since seeds that stop early drop out."""
    return (time.perf_counter() - loop_started) / max(1, step - step0) * (cap - step)


def progress_line(run: SeedRun, setup: Setup, started: float, eta: float) -> str:
    """``<cell>/<method> seed N: step s/cap, loss, selection score (best @ step), elapsed, ETA`` — the ETA
    is the whole stage's (``stage_eta``)."""
    c = run.config
    point = run.curve[-1]
    elapsed = time.perf_counter() - started
    state = " converged" if run.converged_at is not None else ""
    return (
        f"{c.stage.key} seed {c.seed}: step {point.step}/{setup.cap} loss {point.train_loss:.3f} "
        f"select {100 * point.select_score:.1f} (best {100 * run.best_score:.1f} @ {run.best_step}){state} "
        f"· {elapsed:.0f}s, stage ETA ≤ {eta:.0f}s"
    )


# --- outputs --------------------------------------------------------------------------------------------


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prediction_names(task: Task, predictions: Sequence[int]) -> list[str]:
    return [task.labels[p] if task.kind == "classification" else f"choice{p}" for p in predictions]


def split_result(
    task: Task, name: str, examples: Sequence[Example], predictions: Sequence[int], majority: int
) -> SplitResult:
    metrics = task.compute_metrics(examples, predictions)
    baseline = task.compute_metrics(examples, [majority] * len(examples))
    counts = Counter(prediction_names(task, predictions))
    names = list(task.labels) if task.kind == "classification" else sorted(counts)
    return SplitResult(
        name=name,
        n_examples=len(examples),
        score=task.score(metrics),
        metrics=metrics,
        prediction_share={label: counts.get(label, 0) / len(predictions) for label in names},
        majority_score=task.score(baseline),
    )


def finish(run: SeedRun, setup: Setup) -> tuple[RunMetrics, dict[str, list[int]]]:
    """Evaluate a seed's selected checkpoint on the selection and report splits (not for a failed run),
    mark a run that never beat the majority class ``collapsed``, apply the convergence rule, and gather
    its metrics."""
    config, splits, task = run.config, setup.splits, setup.task
    select_result = report_result = conv = None
    predictions: dict[str, list[int]] = {}
    if run.status != "failed":
        run.model.load_state_dict(run.best_state["model"], strict=False)
        run.objective.load_state_dict(run.best_state["objective"])
        predictions = {
            splits.select_name: predict_split(run, setup, "select"),
            splits.report_name: predict_split(run, setup, "report"),
        }
        select_result = split_result(
            task, splits.select_name, splits.select, predictions[splits.select_name], setup.majority
        )
        report_result = split_result(
            task, splits.report_name, splits.report, predictions[splits.report_name], setup.majority
        )
        steps, scores = [p.step for p in run.curve], [p.select_score for p in run.curve]
        if max(scores[1:], default=-math.inf) <= select_result.majority_score:
            run.status, run.reason = "collapsed", "selection score never above the majority-class baseline"
        conv = Convergence(
            rule=convergence.rule_text(config.train.patience, config.train.min_delta),
            converged=run.converged_at is not None,
            step=run.converged_at,
            learned=convergence.learned(scores, select_result.majority_score),
            learning_area=convergence.learning_area(
                steps, scores, select_result.majority_score, setup.cap, setup.eval_every
            ),
        )
    objective = OBJECTIVES.get(config.objective)
    metrics = RunMetrics(
        schema_version=SCHEMA_VERSION,
        status=run.status,  # type: ignore[arg-type]
        reason=run.reason,
        config=config,
        objective=ObjectiveInfo(objective.name, objective.family, objective.ablation_of),
        task_version=task.version,
        device=str(setup.device),
        precision=setup.precision,
        select=select_result,
        report=report_result,
        selected_step=run.best_step if run.status != "failed" else None,
        steps=run.step,
        step_cap=setup.cap,
        eval_every=setup.eval_every,
        convergence=conv,
        data=setup.data,
        trainable_params=sum(p.numel() for p in run.trainable),
        wall_time_s=0.0,
        train_time_s=run.train_time,
        train_examples_per_s=run.step * config.train.batch_size / run.train_time
        if run.train_time > 0
        else 0.0,
        peak_memory_mb=0.0,
    )
    return metrics, predictions


def _curve_csv(curve: Sequence[CurvePoint]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", "train_loss", "lr", "select_score", "elapsed_s"])
    for p in curve:
        writer.writerow(
            [p.step, f"{p.train_loss:.6g}", f"{p.lr:.6g}", f"{p.select_score:.6f}", f"{p.elapsed_s:.3f}"]
        )
    return buffer.getvalue()


def write_run(run: SeedRun, metrics: RunMetrics, predictions: dict[str, list[int]], setup: Setup) -> None:
    """Write the run folder in one piece: a crash leaves no half-written folder that looks complete."""
    splits = setup.splits
    examples = {splits.select_name: splits.select, splits.report_name: splits.report}
    lines = [
        json.dumps({"split": split, "guid": ex.guid, "label": ex.label, "prediction": pred})
        for split, preds in predictions.items()
        for ex, pred in zip(examples[split], preds, strict=True)
    ]
    state = {part: {k: v.cpu() for k, v in tensors.items()} for part, tensors in run.best_state.items()}
    write_folder(run.out_dir, metrics, setup.data_sha, _curve_csv(run.curve), lines, state)


def write_folder(
    out_dir: Path,
    metrics: RunMetrics,
    data_sha: dict[str, str],
    curve: str,
    predictions: Sequence[str],
    state: dict[str, dict[str, torch.Tensor]],
) -> None:
    """The run folder's six files, written atomically."""
    with atomic_directory(out_dir) as tmp:
        (tmp / "config.json").write_text(json.dumps(metrics.config.to_dict(), indent=2) + "\n")
        (tmp / "provenance.json").write_text(json.dumps(provenance(data_sha), indent=2) + "\n")
        (tmp / "curve.csv").write_text(curve)
        (tmp / "predictions.jsonl").write_text("".join(line + "\n" for line in predictions))
        torch.save(state, tmp / "prompt.pt")
        (tmp / "metrics.json").write_text(json.dumps(metrics.to_dict(), indent=2, allow_nan=False) + "\n")


def write_unstarted(config: RunConfig, data_root: Path, out_dir: Path, reason: str) -> RunMetrics:
    """A run its jobs could not train (killed for memory: prompttune.scheduler) as a ``failed`` run folder
    with the reason, from the data and the config alone: no backbone is loaded, since the memory that takes
    is what ran out. Its prompt file holds no tensors, its curve and predictions are empty, and
    ``trainable_params`` is 0 (no model was built)."""
    task = get_task(config.task)
    splits = load_splits(data_root, config.setting, task, config.data_seed)
    device = resolve_device(config.train.device)
    n_train = len(splits.train)
    objective = OBJECTIVES.get(config.objective)
    metrics = RunMetrics(
        schema_version=SCHEMA_VERSION,
        status="failed",
        reason=reason,
        config=config,
        objective=ObjectiveInfo(objective.name, objective.family, objective.ablation_of),
        task_version=task.version,
        device=str(device),
        precision=resolve_precision(config.train.precision, device),
        select=None,
        report=None,
        selected_step=None,
        steps=0,
        step_cap=number_of_steps(config, n_train),
        eval_every=evaluation_interval(config, n_train),
        convergence=None,
        data=DataInfo(
            sizes={"train": n_train, "select": len(splits.select), "report": len(splits.report)},
            removed_overlap=splits.removed_overlap,
            truncated={},
        ),
        trainable_params=0,
        wall_time_s=0.0,
        train_time_s=0.0,
        train_examples_per_s=0.0,
        peak_memory_mb=0.0,
    )
    write_folder(out_dir, metrics, verify(data_root, splits.files), _curve_csv([]), [], {})
    return metrics
