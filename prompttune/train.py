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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prompttune.backbone import load_backbone
from prompttune.bases import BASES
from prompttune.batches import Features, eval_batches, train_batches
from prompttune.config import RunConfig
from prompttune.data import verify
from prompttune.io import atomic_directory, atomic_write_bytes
from prompttune.model import PromptModel
from prompttune.objectives import OBJECTIVES, build_objective
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
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


@torch.no_grad()
def predict(
    model: PromptModel, features: Sequence[Features], tokenizer, batch_size: int, device, precision: str
) -> list[int]:
    """Arg-max predictions, in order, with the model in evaluation mode."""
    was_training = model.training
    model.eval()
    preds: list[int] = []
    multiple_choice = model.task.kind == "multiple_choice"
    for batch in eval_batches(features, tokenizer, batch_size, multiple_choice):
        with autocast(device, precision):
            logits = model(to_device(batch, device)).logits
        preds.extend(logits.argmax(dim=-1).tolist())
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


def train_run(config: RunConfig, data_root: Path, out_dir: Path) -> RunMetrics:
    """Train and evaluate one grid cell; write its folder atomically; return its metrics."""
    started = time.perf_counter()
    seed_everything(config.seed)
    device = resolve_device(config.train.device)
    task = get_task(config.task)
    BASES.get(config.base), OBJECTIVES.get(config.objective)  # unknown names fail before any work
    splits = load_splits(data_root, config.setting, task, config.data_seed)
    data_sha = verify(data_root, splits.files)

    backbone, tokenizer = load_backbone(config.backbone)
    model = PromptModel.build(config, backbone, tokenizer, task).to(device)
    objective = build_objective(config.objective, config.objective_options, model).to(device)
    trainable = [p for p in [*model.parameters(), *objective.parameters()] if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)

    max_length = config.train.max_length
    train_features = encode_cached(splits.train, task, tokenizer, max_length)
    select_features = encode_cached(splits.select, task, tokenizer, max_length)
    report_features = encode_cached(splits.report, task, tokenizer, max_length)
    multiple_choice = task.kind == "multiple_choice"
    majority = majority_class(task, splits.train)

    steps = number_of_steps(config, len(train_features))
    warmup = round(config.train.warmup_ratio * steps)
    optimizer = torch.optim.AdamW(trainable, lr=config.train.lr, weight_decay=config.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, steps))
    eval_args = (tokenizer, config.train.eval_batch_size, device, config.train.precision)

    def evaluate_select() -> float:
        preds = predict(model, select_features, *eval_args)
        return task.score(task.compute_metrics(splits.select, preds))

    resume_path = resume_file(out_dir)
    saved = load_resume(resume_path, config)
    if saved is None:
        curve = [CurvePoint(0, float("nan"), 0.0, evaluate_select(), 0.0)]
        best_score, best_step = curve[0].select_score, 0
        best_state = {"model": model.trainable_state(), "objective": objective.state_dict()}
        losses: list[float] = []
        train_time, start = 0.0, 0
    else:
        model.load_state_dict(saved["model"], strict=False)
        objective.load_state_dict(saved["objective"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        curve = [CurvePoint(**point) for point in saved["curve"]]
        best_score, best_step, best_state = saved["best_score"], saved["best_step"], saved["best_state"]
        losses, train_time, start = saved["losses"], saved["train_time"], saved["step"]
        set_rng_state(saved["rng"])
    generator = torch.Generator().manual_seed(config.seed)
    batches = train_batches(
        train_features, tokenizer, config.train.batch_size, multiple_choice, generator, start
    )
    status, reason, step = "ok", None, start
    model.train()
    for step in range(start + 1, steps + 1):
        tick = time.perf_counter()
        batch = to_device(next(batches), device)
        with autocast(device, config.train.precision):
            loss, _ = objective.loss(model, batch)
        if not torch.isfinite(loss):
            status, reason = "failed", f"non-finite loss {loss.item()} at step {step}"
            break
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.train.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        train_time += time.perf_counter() - tick
        if step % config.train.eval_every == 0 or step == steps:
            score = evaluate_select()
            curve.append(
                CurvePoint(step, float(np.mean(losses)), scheduler.get_last_lr()[0], score, train_time)
            )
            losses = []
            if score >= best_score:
                best_score, best_step = score, step
                best_state = {"model": model.trainable_state(), "objective": objective.state_dict()}
        if config.train.checkpoint_every and step % config.train.checkpoint_every == 0 and step < steps:
            save_resume(
                resume_path,
                {
                    "config": config.to_dict(),
                    "step": step,
                    "model": model.trainable_state(),
                    "objective": objective.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "curve": [dataclasses.asdict(point) for point in curve],
                    "best_score": best_score,
                    "best_step": best_step,
                    "best_state": best_state,
                    "losses": losses,
                    "train_time": train_time,
                    "rng": get_rng_state(),
                },
            )

    select_result = report_result = None
    predictions: dict[str, list[int]] = {}
    if status == "ok":
        model.load_state_dict(best_state["model"], strict=False)
        objective.load_state_dict(best_state["objective"])
        predictions = {
            splits.select_name: predict(model, select_features, *eval_args),
            splits.report_name: predict(model, report_features, *eval_args),
        }
        select_result = split_result(
            task, splits.select_name, splits.select, predictions[splits.select_name], majority
        )
        report_result = split_result(
            task, splits.report_name, splits.report, predictions[splits.report_name], majority
        )
        if max(point.select_score for point in curve[1:]) <= select_result.majority_score:
            status, reason = "collapsed", "selection score never above the majority-class baseline"

    metrics = RunMetrics(
        schema_version=SCHEMA_VERSION,
        status=status,
        reason=reason,
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
        device=str(device),
        select=select_result,
        report=report_result,
        selected_step=best_step if status != "failed" else None,
        steps=step,
        n_train=len(train_features),
        trainable_params=n_trainable,
        wall_time_s=time.perf_counter() - started,
        train_time_s=train_time,
        train_examples_per_s=step * config.train.batch_size / train_time if train_time > 0 else 0.0,
        peak_memory_mb=peak_memory_mb(device),
    )
    write_run(out_dir, config, metrics, curve, predictions, splits, best_state, data_sha)
    shutil.rmtree(resume_path.parent, ignore_errors=True)
    return metrics


def resume_file(out_dir: Path) -> Path:
    """Where a run keeps its resume state: a sibling folder of the run folder, removed at the end."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + ".resume") / "state.pt"


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


def load_resume(path: Path, config: RunConfig) -> dict[str, Any] | None:
    """The saved state of an interrupted run with this very config, else ``None`` (start afresh)."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["config"] != config.to_dict():
        print(f"warning: {path} belongs to another configuration; starting afresh", file=sys.stderr)
        return None
    print(f"resuming {path.parent.name.removesuffix('.resume')} from step {state['step']}", file=sys.stderr)
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
