"""Accuracy and time to accuracy of the project's ``pt2`` against PEFT's prefix tuning, on the same frozen
backbone, data, batches and budget: the active profile's ``fewglue.CB`` / ``pt2`` stage (its resolved
config: batch, lr, schedule, step cap, evaluation cadence, max_length, data order per seed).

- project: ``prompttune.train.train_seeds`` on that stage config, exactly as ``dvc repro`` runs it
  (early stopping by the plateau rule on the selection split);
- PEFT: PEFT's own recipe for sequence classification, ``AutoModelForSequenceClassification`` +
  ``PrefixTuningConfig(task_type="SEQ_CLS")`` (the prefix and PEFT's classifier train; backbone dropout
  as PEFT leaves it, i.e. on), AdamW and the same linear schedule, the same batches in the same order,
  evaluated on the selection split at the same steps, for the whole step cap (no early stopping).

Both keep the checkpoint of their best selection score (ties: the later step) and report its accuracy
on the report split (CB validation); the selection split is never the one reported. Time to accuracy
per seed: the training time (evaluation excluded, on both sides) until each first reaches the lower
of the two best selection scores; the ratio printed is PEFT's total over the seeds / the project's.

    python benchmarks/peft_accuracy.py --threads 2
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import PrefixTuningConfig, get_peft_model
from torch import nn
from transformers import AutoModelForSequenceClassification

from prompttune import paths
from prompttune.backbone import resolve_backbone
from prompttune.batches import Features, eval_batches, train_order
from prompttune.config import Stage, load_params, stage_config
from prompttune.precision import autocast
from prompttune.results import cpu_info
from prompttune.train import Setup, lr_lambda, prepare, seed_everything, to_device, train_seeds

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class Side:
    """One implementation's seed: its curve (step, training seconds, selection score) and its report
    accuracy at the best selection step."""

    curve: list[tuple[int, float, float]]
    accuracy: float

    def best(self) -> float:
        return max(score for _, _, score in self.curve)

    def seconds_to(self, target: float) -> float:
        return next(seconds for _, seconds, score in self.curve if score >= target - 1e-12)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--cell", default="fewglue.CB")
    parser.add_argument("--seeds", type=int, nargs="*", default=None, help="default: the stage's seeds")
    parser.add_argument("--data-root", default=None, help="default: data/<cell> (run `prompttune fetch`)")
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args()


def project(configs, data_root: Path, seeds: list[int]) -> list[Side]:
    """The project's runs, in a scratch folder; curve and report accuracy from their records."""
    with tempfile.TemporaryDirectory() as tmp:
        out_dirs = [Path(tmp) / f"seed{seed}" for seed in seeds]
        metrics = train_seeds(configs, data_root, out_dirs)
        sides = []
        for out_dir, result in zip(out_dirs, metrics, strict=True):
            with (out_dir / "curve.csv").open() as file:
                rows = list(csv.DictReader(file))
            curve = [(int(r["step"]), float(r["elapsed_s"]), float(r["select_score"])) for r in rows]
            sides.append(Side(curve, result.report.metrics["acc"]))
        return sides


def forward(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """PEFT's logits for a project batch (its model takes the tokenizer's fields only)."""
    return model(**{key: batch[key] for key in INPUTS if key in batch}).logits


@torch.no_grad()
def peft_predictions(
    model: nn.Module, features: list[Features], setup: Setup, batch_size: int, precision: str
) -> list[int]:
    model.eval()
    preds: list[int] = []
    for batch in eval_batches(features, setup.tokenizer, batch_size, False):
        batch = to_device(batch, setup.device)
        with autocast(setup.device, precision):
            preds += forward(model, batch).argmax(-1).tolist()
    model.train()
    return preds


def peft_seed(config, setup: Setup) -> Side:
    """PEFT prefix tuning for one seed, on the project's batches (same order as the project's run)."""
    seed_everything(config.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_backbone(config.backbone), num_labels=setup.task.num_classes
    )
    model = get_peft_model(
        model, PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=config.prompt.length)
    ).to(setup.device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    train = config.train
    optimizer = torch.optim.AdamW(trainable, lr=train.lr, weight_decay=train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(setup.warmup, setup.cap))
    generator = torch.Generator().manual_seed(config.seed)
    order = train_order(setup.features["train"], train.batch_size, generator, 0, train.group_by_length)
    precision = setup.precision.used

    def score(split: str) -> tuple[float, list[int]]:
        preds = peft_predictions(model, setup.features[split], setup, train.eval_batch_size, precision)
        examples = setup.splits.select if split == "select" else setup.splits.report
        return setup.task.score(setup.task.compute_metrics(examples, preds)), preds

    def report_accuracy() -> float:
        return setup.task.compute_metrics(setup.splits.report, score("report")[1])["acc"]

    seconds, curve = 0.0, [(0, 0.0, score("select")[0])]
    best, accuracy = curve[0][2], report_accuracy()
    for step in range(1, setup.cap + 1):
        batch = to_device(setup.batch(next(order)), setup.device)
        tick = time.perf_counter()
        with autocast(setup.device, precision):
            loss = F.cross_entropy(forward(model, batch).float(), batch["labels"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, train.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - tick
        if step % setup.eval_every == 0 or step == setup.cap:
            select = score("select")[0]
            curve.append((step, seconds, select))
            if select >= best:
                best, accuracy = select, report_accuracy()
    return Side(curve, accuracy)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    stage = stage_config(params, Stage(args.cell, "pt2"))
    seeds = args.seeds or list(stage.seeds)
    configs = [dataclasses.replace(stage.run, seed=seed) for seed in seeds]
    data_root = Path(args.data_root) if args.data_root else paths.data_dir(args.cell)
    cpu = cpu_info()
    flags = " ".join(flag for flag in cpu["flags"].split() if "avx" in flag or "amx" in flag)
    print(f"# {cpu['model']}; flags: {flags}; torch threads {torch.get_num_threads()}")
    print(f"# profile {params.profile}, {args.cell} pt2, seeds {seeds}")
    ours = project(configs, data_root, seeds)
    setup = prepare(configs[0], data_root)
    train = configs[0].train
    print(
        f"# batch {train.batch_size}, lr {train.lr}, cap {setup.cap}, evaluation every {setup.eval_every}"
        f" steps, precision {setup.precision.used}, prompt length {configs[0].prompt.length}"
    )
    theirs = [peft_seed(config, setup) for config in configs]
    print(f"{'seed':>4} {'project acc':>11} {'PEFT acc':>9} {'target':>7} {'project s':>9} {'PEFT s':>7}")
    ratio_num = ratio_den = 0.0
    for seed, a, b in zip(seeds, ours, theirs, strict=True):
        target = min(a.best(), b.best())
        sa, sb = a.seconds_to(target), b.seconds_to(target)
        ratio_num, ratio_den = ratio_num + sb, ratio_den + sa
        row = f"{100 * a.accuracy:11.1f} {100 * b.accuracy:9.1f} {100 * target:7.1f} {sa:9.1f} {sb:7.1f}"
        print(f"{seed:4d} {row}")
    for name, sides in (("project", ours), ("PEFT", theirs)):
        acc = [100 * side.accuracy for side in sides]
        spread = statistics.stdev(acc) if len(acc) > 1 else float("nan")
        print(f"{name} accuracy: {statistics.mean(acc):.1f} ± {spread:.1f} (sd over {len(acc)} seeds)")
    gap = 100 * (statistics.mean(a.accuracy for a in ours) - statistics.mean(b.accuracy for b in theirs))
    print(f"project − PEFT accuracy: {gap:+.1f} points")
    print(f"time-to-accuracy ratio (PEFT / project): {ratio_num / max(ratio_den, 1e-9):.2f}")


if __name__ == "__main__":
    main()
