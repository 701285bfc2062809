"""The report's figures, drawn with matplotlib (Agg) and inlined as ``data:`` URIs so the page needs no
other file and no network."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=90)
    return data_uri(buffer.getvalue())


def file_uri(path: Path) -> str:
    return data_uri(path.read_bytes())


def _task_axes(n: int, width: float, height: float) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * n, height), layout="constrained")
    return fig, list(fig.subplots(1, n, squeeze=False)[0])


def seed_strip(runs: pd.DataFrame, setting: str) -> str:
    """Every ok run's report score per method (one point per seed) with the mean, one panel per task."""
    ok = runs[(runs["setting"] == setting) & (runs["status"] == "ok") & (runs["variant"] == "")]
    tasks = list(dict.fromkeys(ok["task"]))
    methods = list(dict.fromkeys(ok["method"]))
    fig, axes = _task_axes(len(tasks), max(4.0, 0.55 * len(methods) + 1), 3.6)
    for ax, task in zip(axes, tasks, strict=True):
        for x, method in enumerate(methods):
            scores = ok[(ok["task"] == task) & (ok["method"] == method)]["report_score"].to_numpy()
            jitter = np.linspace(-0.12, 0.12, len(scores)) if len(scores) > 1 else np.zeros(len(scores))
            ax.scatter(x + jitter, scores, s=14, color="C0", alpha=0.8, zorder=2)
            if len(scores):
                ax.hlines(scores.mean(), x - 0.3, x + 0.3, color="C3", linewidth=1.5, zorder=3)
        ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{setting}.{task}", fontsize=10)
        ax.set_ylabel("report score (%)")
        ax.grid(axis="y", alpha=0.3)
    return figure_uri(fig)


def convergence(curves: pd.DataFrame, setting: str, methods: list[str]) -> str:
    """Selection-split score vs step: mean over seeds with a min–max band, one panel per task."""
    sub = curves[(curves["setting"] == setting) & (curves["variant"] == "") & curves["method"].isin(methods)]
    tasks = list(dict.fromkeys(sub["task"]))
    fig, axes = _task_axes(len(tasks), 5.0, 3.6)
    for ax, task in zip(axes, tasks, strict=True):
        for i, method in enumerate(methods):
            per_step = sub[(sub["task"] == task) & (sub["method"] == method)].groupby("step")["select_score"]
            if per_step.ngroups == 0:
                continue
            steps = per_step.mean().index.to_numpy()
            ax.plot(steps, 100 * per_step.mean().to_numpy(), color=f"C{i % 10}", label=method, linewidth=1.2)
            ax.fill_between(
                steps,
                100 * per_step.min().to_numpy(),
                100 * per_step.max().to_numpy(),
                color=f"C{i % 10}",
                alpha=0.15,
            )
        ax.set_title(f"{setting}.{task}", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("selection score (%)")
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=7, loc="lower right")
    return figure_uri(fig)
