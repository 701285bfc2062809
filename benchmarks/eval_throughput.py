"""Evaluation throughput (examples/s) on the largest report split of the default profile (SST-2
validation, 872 sentences): ``prompttune.train.predict`` (batches formed by length) against the same
model in file order, no gradients, eval mode.

Defaults: embedded MiniLM (frozen), base ``pt`` with a length-16 prompt, batch 64, max length 128, fp32.

    python benchmarks/eval_throughput.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from prompttune.backbone import load_backbone
from prompttune.batches import eval_batches
from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig
from prompttune.data import MIRROR_ENV, fetch
from prompttune.model import PromptModel
from prompttune.splits import load_splits, required_files
from prompttune.tasks import get_task
from prompttune.tokens import encode_cached
from prompttune.train import predict, resolve_device, to_device

DEFAULT_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


@torch.no_grad()
def file_order(model: PromptModel, features, tokenizer, batch_size: int, device: torch.device) -> list[int]:
    model.eval()
    preds: list[int] = []
    for batch in eval_batches(features, tokenizer, batch_size, multiple_choice=False):
        preds.extend(model(to_device(batch, device)).logits.argmax(dim=-1).tolist())
    return preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", default="fewshot-256.SST-2")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    setting, task_name = args.cell.split(".")
    task, device = get_task(task_name), resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        fetch(
            required_files(setting, task_name),
            Path(tmp),
            mirror=Path(os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)),
        )
        splits = load_splits(Path(tmp), setting, task, 13)
    backbone, tokenizer = load_backbone(args.backbone)
    config = RunConfig(
        setting=setting,
        task=task_name,
        method="pt",
        seed=1,
        backbone=args.backbone,
        prompt=PromptConfig(length=16),
        head=HeadConfig(),
        train=TrainConfig(max_length=args.max_length),
    )
    torch.manual_seed(1)
    model = PromptModel.build(config, backbone, tokenizer, task).to(device)
    features = encode_cached(splits.report, task, tokenizer, args.max_length)
    runs = {
        "by length (predict)": lambda: predict(model, features, tokenizer, args.batch_size, device, "fp32"),
        "file order": lambda: file_order(model, features, tokenizer, args.batch_size, device),
    }
    print(
        f"{args.cell} {splits.report_name}: {len(features)} examples, batch {args.batch_size}, {device}, "
        f"{torch.get_num_threads()} threads"
    )
    results = {}
    for name, run in runs.items():
        run()  # warm-up
        tick = time.perf_counter()
        results[name] = run()
        print(f"{name}: {len(features) / (time.perf_counter() - tick):.1f} examples/s")
    same = sum(a == b for a, b in zip(*results.values(), strict=True))
    print(f"same prediction for {same} of {len(features)} examples")


if __name__ == "__main__":
    main()
