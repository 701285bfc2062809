"""The report's figures, drawn with matplotlib and inlined as SVG ``data:`` URIs so the page needs no other
file and no network. Scores are in points."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def data_uri(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode("ascii")


def svg(fig: Figure) -> str:
    """A figure as an SVG ``data:`` URI (scales without blur; text stays text)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    return data_uri(buffer.getvalue(), "image/svg+xml")


def file_uri(path: Path) -> str:
    return data_uri(path.read_bytes())


def _task_axes(n: int, width: float, height: float) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * n, height), layout="constrained")
    return fig, list(fig.subplots(1, n, squeeze=False)[0])


def seed_strip(runs: pd.DataFrame, setting: str) -> str:
    """Every usable run's report score per method (one point per seed; collapsed runs in red) with the
    mean, one panel per task."""
    usable = runs[(runs["setting"] == setting) & (runs["status"] != "failed") & (runs["variant"] == "")]
    tasks = list(dict.fromkeys(usable["task"]))
    fig, axes = _task_axes(len(tasks), max(4.0, 0.55 * len(usable["method"].unique()) + 1), 3.6)
    for ax, task in zip(axes, tasks, strict=True):
        sub = usable[usable["task"] == task]
        methods = list(dict.fromkeys(sub["method"]))
        for x, method in enumerate(methods):
            group = sub[sub["method"] == method]
            scores = group["report_score"].to_numpy()
            jitter = np.linspace(-0.15, 0.15, len(scores)) if len(scores) > 1 else np.zeros(len(scores))
            colours = np.where(group["status"] == "collapsed", "C3", "C0")
            ax.scatter(x + jitter, scores, s=14, c=colours, alpha=0.8, zorder=2)
            if len(scores):
                ax.hlines(scores.mean(), x - 0.3, x + 0.3, color="black", linewidth=1.5, zorder=3)
        ax.set_xticks(range(len(methods)), methods, rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{setting}.{task}", fontsize=10)
        ax.set_ylabel("report score (points)")
        ax.grid(axis="y", alpha=0.3)
    return svg(fig)


def convergence(curves: pd.DataFrame, setting: str) -> str:
    """Selection-split score vs step: the mean over seeds per method (seeds that stopped early drop out
    of the mean), one panel per task, the legend outside the data."""
    sub = curves[(curves["setting"] == setting) & (curves["variant"] == "")]
    tasks = list(dict.fromkeys(sub["task"]))
    fig, axes = _task_axes(len(tasks), 6.0, 3.8)
    for ax, task in zip(axes, tasks, strict=True):
        rows = sub[sub["task"] == task]
        for i, method in enumerate(dict.fromkeys(rows["method"])):
            per_step = rows[rows["method"] == method].groupby("step")["select_score"].mean()
            style = "-" if i < 10 else "--"
            ax.plot(
                per_step.index, per_step.to_numpy(), style, color=f"C{i % 10}", label=method, linewidth=1.3
            )
        ax.set_title(f"{setting}.{task}", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("selection score (points)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return svg(fig)
