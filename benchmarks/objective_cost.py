"""Cost of training objectives: mean wall time of one training step (forward + backward + gradient
clipping + AdamW step, as in ``prompttune.train``) on the real backbone and task data, as a ratio to
plain cross-entropy.

Defaults: embedded MiniLM (frozen), FewGLUE CB training examples, batch 16, base ``pt2`` with a
length-16 prompt, backbone dropout off, fp32. Every objective starts from the same prompt and sees the
same batches; each measurement is ``--warmup`` untimed steps, then ``--steps`` timed ones. With
``--repeats R`` the objectives are measured round-robin R times (less sensitive to drifting load).

    python benchmarks/objective_cost.py --objectives ce ptp-rn-emb ptp-adv-emb --steps 10 --base pt2
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

import prompttune.objectives
from prompttune.backbone import load_backbone
from prompttune.batches import Batch, collate, encode
from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig
from prompttune.data import MIRROR_ENV, fetch
from prompttune.model import PromptModel
from prompttune.objectives import OBJECTIVES, build_objective
from prompttune.precision import autocast
from prompttune.splits import load_splits, required_files
from prompttune.tasks import Task, get_task
from prompttune.train import resolve_device, seed_everything, to_device

DEFAULT_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


def register_all_objectives() -> None:
    """Import every module of ``prompttune.objectives`` so objectives not yet wired register too."""
    for module in pkgutil.iter_modules(prompttune.objectives.__path__):
        importlib.import_module(f"prompttune.objectives.{module.name}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objectives", nargs="+", default=None, help="names (default: every registered)")
    parser.add_argument("--options", default="{}", help='JSON: {"<objective>": {option: value}}')
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument("--repeats", type=int, default=1, help="round-robin measurements per objective")
    parser.add_argument("--base", default="pt2")
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--setting", default="fewglue")
    parser.add_argument("--task", default="CB")
    parser.add_argument("--data", type=Path, default=None, help="data root (default: fetch from the mirror)")
    parser.add_argument("--mirror", type=Path, default=Path(os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def run_config(args: argparse.Namespace, objective: str, options: dict) -> RunConfig:
    return RunConfig(
        setting=args.setting,
        task=args.task,
        method=f"{args.base}-{objective}" if objective != "ce" else args.base,
        seed=args.seed,
        backbone=args.backbone,
        prompt=PromptConfig(length=args.prompt_length),
        head=HeadConfig(pooling="mean", init="label_words"),
        train=TrainConfig(
            batch_size=args.batch_size,
            max_length=args.max_length,
            backbone_dropout=False,
            precision=args.precision,
            device=args.device,
        ),
        objective_options=options,
    )


def measure(
    args: argparse.Namespace,
    objective_name: str,
    options: dict,
    backbone: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    batches: list[Batch],
    device: torch.device,
) -> tuple[list[tuple[float, float]], dict[str, float]]:
    """(wall, CPU) seconds of each of ``--steps`` timed steps after ``--warmup`` untimed ones; the last
    step's logs."""
    config = run_config(args, objective_name, options)
    seed_everything(args.seed)
    model = PromptModel.build(config, backbone, tokenizer, task).to(device)
    objective = build_objective(objective_name, options, model).to(device)
    trainable = [p for p in [*model.parameters(), *objective.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.train.lr)
    model.train()
    times, logs = [], {}
    for i, batch in enumerate(batches):
        sync(device)
        tick, cpu_tick = time.perf_counter(), time.process_time()
        batch = to_device(batch, device)
        with autocast(device, args.precision):
            loss, logs = objective.loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.train.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i >= args.warmup:
            times.append((time.perf_counter() - tick, time.process_time() - cpu_tick))
    return times, logs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    args = parse_args()
    register_all_objectives()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.objectives or OBJECTIVES.names()
    for name in names:
        OBJECTIVES.get(name)
    options = json.loads(args.options)
    device = resolve_device(args.device)
    task = get_task(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp)
            fetch(required_files(args.setting, args.task), data, mirror=args.mirror)
        splits = load_splits(data, args.setting, task, 13)
    backbone, tokenizer = load_backbone(args.backbone)
    features = encode(splits.train, task, tokenizer, args.max_length)
    generator = torch.Generator().manual_seed(args.seed)
    n = args.warmup + args.steps
    batches = []
    while len(batches) < n:
        order = torch.randperm(len(features), generator=generator).tolist()
        for start in range(0, len(order) - args.batch_size + 1, args.batch_size):
            chosen = [features[i] for i in order[start : start + args.batch_size]]
            batches.append(collate(chosen, tokenizer, task.kind == "multiple_choice"))
    batches = batches[:n]
    tokens = statistics.mean(int(b["attention_mask"].sum()) / len(b["input_ids"]) for b in batches)

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    passes: dict[str, float] = {}
    for _ in range(args.repeats):
        for name in names:
            step_times, logs = measure(
                args, name, options.get(name, {}), backbone, tokenizer, task, batches, device
            )
            times[name].extend(step_times)
            if "extra_passes" in logs:
                passes[name] = logs["extra_passes"]

    reference = "ce" if "ce" in names else names[0]
    ref_wall = statistics.mean(wall for wall, _ in times[reference])
    ref_cpu = statistics.mean(cpu for _, cpu in times[reference])
    print(
        f"# {args.backbone}, {args.setting}.{args.task} train, batch {args.batch_size} "
        f"(mean {tokens:.0f} tokens/sequence), base {args.base} length {args.prompt_length}, "
        f"{args.precision}, dropout off, device {device}, torch threads {torch.get_num_threads()}, "
        f"{args.warmup} warm-up + {args.steps} timed steps × {args.repeats} repeat(s); "
        f"ratios to {reference}; CPU = process CPU time (all threads)"
    )
    header = ["objective", "wall ms/step", "std", "ratio", "CPU ms/step", "ratio", "extra_passes"]
    print(f"{header[0]:<16}" + "".join(f"{h:>13}" for h in header[1:]))
    for name in names:
        walls = [wall for wall, _ in times[name]]
        cpus = [cpu for _, cpu in times[name]]
        wall, cpu = statistics.mean(walls), statistics.mean(cpus)
        std = statistics.stdev(walls) if len(walls) > 1 else 0.0
        extra = f"{passes[name]:g}" if name in passes else ""
        cells = [f"{1e3 * wall:.1f}", f"{1e3 * std:.1f}", f"{wall / ref_wall:.2f}", f"{1e3 * cpu:.1f}"]
        cells += [f"{cpu / ref_cpu:.2f}", extra]
        print(f"{name:<16}" + "".join(f"{c:>13}" for c in cells))


if __name__ == "__main__":
    main()
