"""One run, top to bottom: data → model → optimiser → loop (batch, loss, backward, clip, step,
evaluate on the selection split every N steps, keep the best) → final evaluation of the selected
checkpoint on the report split → outputs written atomically into the run folder.

Checkpoint selection uses the selection split only (ties go to the later step: choice); the report
split is evaluated once, at the end.
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
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prompttune.backbone import load_backbone
from prompttune.bases import BASES
from prompttune.batches import Batch, Features, collate, eval_batches, length, train_order
from prompttune.config import RunConfig
from prompttune.data import verify
from prompttune.io import atomic_directory, atomic_write_bytes
from prompttune.model import PromptModel, StackedModel
from prompttune.objectives import OBJECTIVES, Objective, build_objective
from prompttune.results import SCHEMA_VERSION, RunMetrics, SplitResult, provenance
from prompttune.splits import load_splits
from prompttune.tasks import get_task
from prompttune.tasks.base import Example, Task
from prompttune.tokens import encode_cached


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move a batch; to a GPU through pinned memory, so the copy does not wait for the host."""
    if device.type == "cuda":
        return {key: value.pin_memory().to(device, non_blocking=True) for key, value in batch.items()}
    return {key: value.to(device) for key, value in batch.items()}


@torch.no_grad()
def predict(
    model: PromptModel, features: Sequence[Features], tokenizer, batch_size: int, device, precision: str
) -> list[int]:
    """Arg-max predictions, in the order of ``features``, with the model in evaluation mode. Examples
    are batched by length (longest first) so that each batch pads little (choice)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(features)), key=lambda i: -length(features[i]))
    preds = [0] * len(features)
    multiple_choice = model.task.kind == "multiple_choice"
    batches = eval_batches([features[i] for i in order], tokenizer, batch_size, multiple_choice)
    for start, batch in zip(range(0, len(order), batch_size), batches, strict=True):
        with autocast(device, precision):
            logits = model(to_device(batch, device)).logits
        for i, pred in zip(order[start : start + batch_size], logits.argmax(dim=-1).tolist(), strict=True):
            preds[i] = pred
    model.train(was_training)
    return preds


def prediction_names(task: Task, predictions: Sequence[int]) -> list[str]:
    return [task.labels[p] if task.kind == "classification" else f"choice{p}" for p in predictions]


def majority_class(task: Task, train: Sequence[Example]) -> int:
    """The most frequent training label (smallest index on ties); choice 0 for multiple choice."""
    if task.kind == "multiple_choice":
        return 0
    counts = Counter(example.label for example in train)
    return max(sorted(counts), key=lambda label: counts[label])


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


@dataclass
class CurvePoint:
    step: int
    train_loss: float
    lr: float
    select_score: float
    elapsed_s: float


def number_of_steps(config: RunConfig, n_train: int) -> int:
    if config.train.epochs is None:
        return config.train.steps
    return max(1, math.ceil(config.train.epochs * n_train / config.train.batch_size))


def lr_lambda(warmup: int, total: int):
    """Linear warm-up to the peak, then linear decay to 0 (P-tuning v2 / HF ``linear`` schedule)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class SeedRun:
    """The training state of one seed: its own model (prompt, head), objective, optimiser, scheduler,
    data order, global-RNG state between its steps, curve and best checkpoint so far."""

    config: RunConfig
    out_dir: Path
    model: PromptModel
    objective: Objective
    trainable: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    rng: dict[str, Any]
    curve: list[CurvePoint] = field(default_factory=list)
    best_score: float = -math.inf
    best_step: int = 0
    best_state: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    train_time: float = 0.0
    step: int = 0
    status: str = "ok"
    reason: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {"model": self.model.trainable_state(), "objective": self.objective.state_dict()}

    def record(self, step: int, score: float) -> None:
        """A point of the curve; the checkpoint is kept when its selection score is the best so far."""
        train_loss = float(np.mean(self.losses)) if self.losses else float("nan")
        lr = self.scheduler.get_last_lr()[0] if step else 0.0
        self.curve.append(CurvePoint(step, train_loss, lr, score, self.train_time))
        self.losses = []
        if score >= self.best_score:
            self.best_score, self.best_step, self.best_state = score, step, self.snapshot()

    def state(self) -> dict[str, Any]:
        """Everything needed to continue this seed exactly where it is."""
        fields = ("best_score", "best_step", "best_state", "losses", "train_time", "step", "status", "reason")
        return {
            "model": self.model.trainable_state(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "curve": [dataclasses.asdict(point) for point in self.curve],
            "rng": self.rng,
            **{name: getattr(self, name) for name in fields},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state.pop("model"), strict=False)
        self.objective.load_state_dict(state.pop("objective"))
        self.optimizer.load_state_dict(state.pop("optimizer"))
        self.scheduler.load_state_dict(state.pop("scheduler"))
        self.curve = [CurvePoint(**point) for point in state.pop("curve")]
        for name, value in state.items():
            setattr(self, name, value)


def train_run(config: RunConfig, data_root: Path, out_dir: Path) -> RunMetrics:
    """Train and evaluate one grid cell; write its folder atomically; return its metrics."""
    return train_seeds([config], data_root, [out_dir])[0]


def train_seeds(configs: Sequence[RunConfig], data_root: Path, out_dirs: Sequence[Path]) -> list[RunMetrics]:
    """Train several seeds of one grid cell in one process (configs equal but for the seed): the
    backbone, data and tokenisation are shared; each seed keeps its own prompt, head, optimiser,
    data order and RNG, so every seed ends exactly as a run of its own would (up to floating-point
    summation order when stacked). Seed-parallel (``stacked``): with a ``stackable`` objective,
    backbone dropout off and ``train.seed_parallel`` stacked (auto: on a GPU), one backbone pass takes
    every seed's batch; otherwise the seeds take turns, each step under its own RNG state. Each run
    folder is written atomically."""
    started = time.perf_counter()
    first = configs[0]
    if any(dataclasses.replace(c, seed=first.seed) != first for c in configs) or len(configs) != len(
        out_dirs
    ):
        raise ValueError("train_seeds: the configs must differ only in their seed, one output folder each")
    device = resolve_device(first.train.device)
    task = get_task(first.task)
    BASES.get(first.base), OBJECTIVES.get(first.objective)  # unknown names fail before any work
    splits = load_splits(data_root, first.setting, task, first.data_seed)
    splits.require_labels()
    data_sha = verify(data_root, splits.files)
    backbone, tokenizer = load_backbone(first.backbone)
    backbone.to(device)
    if first.train.compile:
        backbone.compile(dynamic=True)

    max_length = first.train.max_length
    train_features = encode_cached(splits.train, task, tokenizer, max_length)
    select_features = encode_cached(splits.select, task, tokenizer, max_length)
    report_features = encode_cached(splits.report, task, tokenizer, max_length)
    multiple_choice = task.kind == "multiple_choice"
    majority = majority_class(task, splits.train)
    steps = number_of_steps(first, len(train_features))
    warmup = round(first.train.warmup_ratio * steps)
    eval_args = (tokenizer, first.train.eval_batch_size, device, first.train.precision)
    mode = first.train.seed_parallel
    stacked = (
        len(configs) > 1
        and OBJECTIVES.get(first.objective).stackable
        and not first.train.backbone_dropout
        and (mode == "stacked" or (mode == "auto" and device.type != "cpu"))
    )

    def evaluate_select(run: SeedRun) -> float:
        preds = predict(run.model, select_features, *eval_args)
        return task.score(task.compute_metrics(splits.select, preds))

    runs = []
    for config, out_dir in zip(configs, out_dirs, strict=True):
        seed_everything(config.seed)
        model = PromptModel.build(config, backbone, tokenizer, task).to(device)
        objective = build_objective(config.objective, config.objective_options, model).to(device)
        trainable = [p for p in [*model.parameters(), *objective.parameters()] if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.train.lr, weight_decay=config.train.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, steps))
        runs.append(
            SeedRun(config, Path(out_dir), model, objective, trainable, optimizer, scheduler, get_rng_state())
        )

    resume_path = resume_file(out_dirs)
    saved = load_resume(resume_path, configs)
    if saved is None:
        for run in runs:
            run.record(0, evaluate_select(run))
    else:
        for run, state in zip(runs, saved["runs"], strict=True):
            run.restore(state)
    start = min(run.step for run in runs)
    orders = [
        train_order(
            train_features,
            first.train.batch_size,
            torch.Generator().manual_seed(run.config.seed),
            start,
            first.train.group_by_length,
        )
        for run in runs
    ]

    def to_batch(features: list[Features]) -> Batch:
        return to_device(collate(features, tokenizer, multiple_choice), device)

    for run in runs:
        run.model.train()
    for step in range(start + 1, steps + 1):
        active = [(run, next(order)) for run, order in zip(runs, orders, strict=True) if run.status == "ok"]
        if not active:
            break
        tick = time.perf_counter()
        if stacked and len(active) > 1:
            model = StackedModel([run.model for run, _ in active])
            batch = to_batch([f for _, features in active for f in features])
            with autocast(device, first.train.precision):
                losses = list(active[0][0].objective.loss(model, batch)[0].unbind())
        else:
            losses = []
            for run, features in active:
                set_rng_state(run.rng)
                with autocast(device, first.train.precision):
                    losses.append(run.objective.loss(run.model, to_batch(features))[0])
                run.rng = get_rng_state()
        finite = []
        for (run, _), loss in zip(active, losses, strict=True):
            run.step = step
            if torch.isfinite(loss):
                finite.append((run, loss))
            else:
                run.status, run.reason = "failed", f"non-finite loss {loss.item()} at step {step}"
        if finite:
            torch.stack([loss for _, loss in finite]).sum().backward()
        for run, loss in finite:
            torch.nn.utils.clip_grad_norm_(run.trainable, run.config.train.max_grad_norm)
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
            run.losses.append(loss.item())
        share = (time.perf_counter() - tick) / len(active)  # a stacked step's time, split evenly
        for run, _ in active:
            run.train_time += share
        for run, _ in finite:
            if step % first.train.eval_every == 0 or step == steps:
                run.record(step, evaluate_select(run))
        if first.train.checkpoint_every and step % first.train.checkpoint_every == 0 and step < steps:
            save_resume(
                resume_path,
                {"configs": [c.to_dict() for c in configs], "step": step, "runs": [r.state() for r in runs]},
            )

    results = []
    for run in runs:
        metrics, predictions = finish(
            run, task, splits, majority, select_features, report_features, eval_args
        )
        metrics = dataclasses.replace(  # a process's time, split evenly between its seeds
            metrics,
            wall_time_s=(time.perf_counter() - started) / len(runs),
            peak_memory_mb=peak_memory_mb(device),
        )
        write_run(run.out_dir, run.config, metrics, run.curve, predictions, splits, run.best_state, data_sha)
        results.append(metrics)
    remove_resume(resume_path)
    return results


def finish(
    run: SeedRun, task: Task, splits, majority: int, select_features, report_features, eval_args
) -> tuple[RunMetrics, dict[str, list[int]]]:
    """Evaluate a seed's selected checkpoint on the selection and report splits (not for a failed
    run), mark a run that never beat the majority class ``collapsed``, and gather its metrics."""
    config = run.config
    select_result = report_result = None
    predictions: dict[str, list[int]] = {}
    if run.status == "ok":
        run.model.load_state_dict(run.best_state["model"], strict=False)
        run.objective.load_state_dict(run.best_state["objective"])
        predictions = {
            splits.select_name: predict(run.model, select_features, *eval_args),
            splits.report_name: predict(run.model, report_features, *eval_args),
        }
        select_result = split_result(
            task, splits.select_name, splits.select, predictions[splits.select_name], majority
        )
        report_result = split_result(
            task, splits.report_name, splits.report, predictions[splits.report_name], majority
        )
        if max(point.select_score for point in run.curve[1:]) <= select_result.majority_score:
            run.status, run.reason = "collapsed", "selection score never above the majority-class baseline"
    n_trainable = sum(p.numel() for p in run.trainable)
    metrics = RunMetrics(
        schema_version=SCHEMA_VERSION,
        status=run.status,
        reason=run.reason,
        setting=config.setting,
        task=task.name,
        task_version=task.version,
        method=config.method,
        base=config.base,
        objective=config.objective,
        seed=config.seed,
        variant=config.variant,
        prompt_init=config.prompt.init,
        data_seed=config.data_seed,
        backbone=config.backbone,
        backbone_dropout=config.train.backbone_dropout,
        precision=config.train.precision,
        device=str(eval_args[2]),
        select=select_result,
        report=report_result,
        selected_step=run.best_step if run.status != "failed" else None,
        steps=run.step,
        n_train=len(splits.train),
        trainable_params=n_trainable,
        wall_time_s=0.0,
        train_time_s=run.train_time,
        train_examples_per_s=run.step * config.train.batch_size / run.train_time
        if run.train_time > 0
        else 0.0,
        peak_memory_mb=0.0,
    )
    return metrics, predictions


def resume_file(out_dirs: Sequence[Path]) -> Path:
    """Where runs keep their resume state, removed at the end: ``<parent>.resume/<runs>/state.pt`` beside
    the folder that holds the run folders, e.g. ``runs/<cell>/<method>.resume/seed1+2+3/`` — outside the
    folder a DVC stage declares as its output (which DVC deletes before running the stage again)."""
    dirs = [Path(d).absolute() for d in out_dirs]
    name = "+".join([dirs[0].name, *(d.name.removeprefix("seed") for d in dirs[1:])])
    parent = dirs[0].parent
    return parent.with_name(parent.name + ".resume") / name / "state.pt"


def remove_resume(path: Path) -> None:
    """Delete a finished group's resume state, and the ``.resume`` folder once no group is left in it."""
    shutil.rmtree(path.parent, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.parent.rmdir()


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


def save_resume(path: Path, state: dict[str, Any]) -> None:
    """Everything needed to continue exactly where the run is, written atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_resume(path: Path, configs: Sequence[RunConfig]) -> dict[str, Any] | None:
    """The saved state of interrupted runs with these very configs, else ``None`` (start afresh)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("configs") != [config.to_dict() for config in configs]:
        print(f"warning: {path} belongs to another configuration; starting afresh", file=sys.stderr)
        return None
    print(f"resuming {path.parent.name} from step {state['step']}", file=sys.stderr)
    return state


def _curve_csv(curve: Sequence[CurvePoint]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", "train_loss", "lr", "select_score", "elapsed_s"])
    for p in curve:
        writer.writerow(
            [p.step, f"{p.train_loss:.6g}", f"{p.lr:.6g}", f"{p.select_score:.6f}", f"{p.elapsed_s:.3f}"]
        )
    return buffer.getvalue()


def write_run(out_dir, config, metrics, curve, predictions, splits, state, data_sha) -> None:
    """Write the run folder in one piece: a crash leaves no half-written folder that looks complete."""
    examples = {splits.select_name: splits.select, splits.report_name: splits.report}
    with atomic_directory(out_dir) as tmp:
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        (tmp / "provenance.json").write_text(json.dumps(provenance(data_sha), indent=2) + "\n")
        (tmp / "curve.csv").write_text(_curve_csv(curve))
        lines = [
            json.dumps({"split": split, "guid": ex.guid, "label": ex.label, "prediction": pred})
            for split, preds in predictions.items()
            for ex, pred in zip(examples[split], preds, strict=True)
        ]
        (tmp / "predictions.jsonl").write_text("".join(line + "\n" for line in lines))
        torch.save(
            {part: {k: v.cpu() for k, v in tensors.items()} for part, tensors in state.items()},
            tmp / "prompt.pt",
        )
        (tmp / "metrics.json").write_text(json.dumps(metrics.to_dict(), indent=2, allow_nan=False) + "\n")
