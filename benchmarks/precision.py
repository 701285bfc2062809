"""bf16 autocast against fp32 on the same runs: training throughput, and whether the results agree
(per seed: selection and report scores, the selected step, and the share of report-split predictions
that are the same). The runs are the grid's own: ``params.yaml``'s resolved config for one cell ×
method and its seeds, trained in one process with ``prompttune.train.train_seeds``, once per precision.

    python benchmarks/precision.py --cell fewglue.CB --method pt2 --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch

from prompttune.config import Stage, load_params, split_cell, stage_config
from prompttune.data import MIRROR_ENV, fetch
from prompttune.splits import required_files
from prompttune.train import train_seeds

DEFAULT_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--cell", default="fewglue.CB")
    parser.add_argument("--method", default="pt2")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: grid.seeds")
    parser.add_argument("--steps", type=int, default=None, help="default: the profile's")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    return parser.parse_args()


def report_predictions(run_dir: Path, split: str) -> list[int]:
    rows = [
        json.loads(line) for line in (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return [row["prediction"] for row in rows if row["split"] == split]


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    setting, task = split_cell(args.cell)
    stage = stage_config(params, Stage(args.cell, args.method))
    configs = [dataclasses.replace(stage.run, seed=seed) for seed in args.seeds or stage.seeds]
    if args.steps:
        configs = [
            dataclasses.replace(c, train=dataclasses.replace(c.train, steps=args.steps)) for c in configs
        ]
    results, folders = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        fetch(required_files(setting, task), data, mirror=Path(os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)))
        for precision in ("fp32", "bf16"):
            runs = [
                dataclasses.replace(c, train=dataclasses.replace(c.train, precision=precision))
                for c in configs
            ]
            folders[precision] = [Path(tmp) / precision / f"seed{c.seed}" for c in runs]
            results[precision] = train_seeds(runs, data, folders[precision])
        split = results["fp32"][0].report.name
        same = [
            statistics.mean(
                a == b
                for a, b in zip(report_predictions(x, split), report_predictions(y, split), strict=True)
            )
            for x, y in zip(folders["fp32"], folders["bf16"], strict=True)
        ]
    first = configs[0]
    print(
        f"{args.cell} {args.method}, seeds {[c.seed for c in configs]}, "
        f"{first.train.steps} steps of {first.train.batch_size}, "
        f"{first.backbone}, threads {torch.get_num_threads()}"
    )
    print("precision  train ex/s  select (per seed)          report (per seed)          selected steps")
    for precision, metrics in results.items():
        rate = sum(m.train_examples_per_s for m in metrics) / len(metrics)
        select = " ".join(f"{100 * m.select.score:5.1f}" for m in metrics if m.select)
        report = " ".join(f"{100 * m.report.score:5.1f}" for m in metrics if m.report)
        steps = " ".join(str(m.selected_step) for m in metrics)
        print(f"{precision:9}  {rate:10.1f}  {select:25}  {report:25}  {steps}")
    fp32, bf16 = results["fp32"], results["bf16"]
    speed = statistics.mean(
        b.train_examples_per_s / a.train_examples_per_s for a, b in zip(fp32, bf16, strict=True)
    )
    gap = [
        100 * (b.report.score - a.report.score)
        for a, b in zip(fp32, bf16, strict=True)
        if a.report and b.report
    ]
    print(
        f"bf16 / fp32 throughput {speed:.2f}; report score bf16 − fp32 per seed (points): "
        + " ".join(f"{g:+.1f}" for g in gap)
        + f"; same report predictions per seed: {' '.join(f'{s:.3f}' for s in same)}"
    )


if __name__ == "__main__":
    main()
