"""Seed-parallel training against the same seeds one after another: aggregate training throughput
(examples/s over all seeds, from the runs' own ``train_time_s``) and process wall time, through
``prompttune.train.train_seeds`` (S seeds in one process) and ``train_run`` (one seed at a time, as
one process per seed would, minus the process start, which is measured separately).

Defaults: embedded MiniLM (frozen), FewGLUE CB, method ``pt`` (cross-entropy: stacked), batch 16,
a length-16 prompt, backbone dropout off, fp32, S = 4, 10 steps with one selection pass at the end.

    python benchmarks/seed_parallel.py --seeds 4 --steps 10 --method pt
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig
from prompttune.data import MIRROR_ENV, fetch
from prompttune.splits import required_files
from prompttune.train import train_run, train_seeds

DEFAULT_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"
START = (  # what every training process pays before its first step
    "import time; t = time.perf_counter(); import prompttune.train; "
    "from prompttune.backbone import load_backbone; load_backbone('{backbone}'); "
    "print(time.perf_counter() - t)"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="S, the number of seeds")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--method", default="pt")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument(
        "--mode", default="stacked", choices=["stacked", "turns", "auto"], help="seed_parallel"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    mirror = Path(os.environ.get(MIRROR_ENV, DEFAULT_MIRROR))
    configs = [
        RunConfig(
            setting="fewglue",
            task="CB",
            method=args.method,
            seed=seed,
            backbone=args.backbone,
            prompt=PromptConfig(length=16),
            head=HeadConfig(pooling="mean", init="label_words"),
            train=TrainConfig(
                steps=args.steps,
                batch_size=args.batch_size,
                eval_every=args.steps,
                max_length=args.max_length,
                backbone_dropout=False,
                precision=args.precision,
                device=args.device,
                checkpoint_every=0,
                early_stopping=False,
                seed_parallel=args.mode,
            ),
        )
        for seed in range(1, args.seeds + 1)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        fetch(required_files("fewglue", "CB"), data, mirror=mirror)
        tick = time.perf_counter()
        together = train_seeds(configs, data, [Path(tmp) / "together" / f"seed{c.seed}" for c in configs])
        together_wall = time.perf_counter() - tick
        tick = time.perf_counter()
        alone = [train_run(c, data, Path(tmp) / "alone" / f"seed{c.seed}") for c in configs]
        alone_wall = time.perf_counter() - tick
    start = float(
        subprocess.run(
            [sys.executable, "-c", START.format(backbone=args.backbone)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    examples = args.seeds * args.steps * args.batch_size
    rate_together = examples / sum(m.train_time_s for m in together)
    rate_alone = examples / sum(m.train_time_s for m in alone)
    ratio = rate_together / rate_alone
    with_start = (alone_wall + args.seeds * start) / (together_wall + start)
    print(
        f"device {together[0].device}, threads {torch.get_num_threads()}, "
        f"{args.method} ({args.mode}), S = {args.seeds}"
    )
    print(f"training: together {rate_together:.1f} ex/s, one by one {rate_alone:.1f} ex/s, ratio {ratio:.2f}")
    print(f"in-process wall: together {together_wall:.1f} s, one by one {alone_wall:.1f} s")
    print(f"process start (imports + backbone): {start:.1f} s, once together, {args.seeds}x separately")
    print(
        f"wall with process starts: together {together_wall + start:.1f} s, "
        f"separate processes {alone_wall + args.seeds * start:.1f} s, ratio {with_start:.2f}"
    )


if __name__ == "__main__":
    main()
