"""The report's figures, drawn with matplotlib and inlined as SVG ``data:`` URIs so the page needs no other
file and no network. Scores are in points."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def data_uri(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode("ascii")


def svg(fig: Figure) -> str:
    """A figure as an SVG ``data:`` URI (scales without blur; text stays text). The same figure gives the
    same bytes: no date in its metadata, clip-path ids from a fixed salt (choice: the report is hashed)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    with matplotlib.rc_context({"svg.hashsalt": "prompttune"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return data_uri(buffer.getvalue(), "image/svg+xml")


def file_uri(path: Path) -> str:
    return data_uri(path.read_bytes())


def _task_axes(n: int, width: float, height: float) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * n, height), layout="constrained")
    return fig, list(fig.subplots(1, n, squeeze=False)[0])


VERDICT_COLOURS = {
    "reproduced": "#2e7d32",
    "contradicted": "#c62828",
    "smaller than claimed": "#ef6c00",
    "below reference": "#1565c0",
    "inconclusive": "#8d8d8d",
}


def forest(rows: list) -> str:
    """Every measured claim row's effect and interval in units of its reference effect (the paper's
    number or the project's reference; 1 = that size, 0 = no effect; positive = the claimed direction),
    coloured by verdict; "" when no row has an effect to show."""
    shown = [row for row in rows if np.isfinite(row.forest[0])]
    if not shown:
        return ""
    fig = Figure(figsize=(7.0, 0.42 * len(shown) + 1.2), layout="constrained")
    ax = fig.subplots()
    for y, row in enumerate(reversed(shown)):
        estimate, low, high = row.forest
        colour = VERDICT_COLOURS[row.verdict]
        if np.isfinite(low) and np.isfinite(high):
            ax.hlines(y, low, high, color=colour, linewidth=2)
        ax.plot(estimate, y, "o", color=colour)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.axvline(1, color="black", linewidth=0.8, linestyle="--")
    labels = [f"{row.id} ({row.setting}/{row.base})" for row in reversed(shown)]
    ax.set_yticks(range(len(shown)), labels, fontsize=8)
    ax.set_xlabel("effect in units of the paper's or the reference effect (0: none; 1, dashed: that size)")
    finite = [v for row in shown for v in row.forest if np.isfinite(v)]
    if finite:
        ax.set_xlim(
            max(min(finite) - 0.2, -5), min(max(finite) + 0.2, 5)
        )  # clipped: a wild row stays legible
    handles = [
        ax.plot([], [], "o", color=c, label=v)[0]
        for v, c in VERDICT_COLOURS.items()
        if any(r.verdict == v for r in shown)
    ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return svg(fig)


def _drawable(value: float, ratio: bool) -> bool:
    """A finite value, and positive on a ratio's log axis."""
    return bool(np.isfinite(value)) and (value > 0 or not ratio)


def trajectories(rows: list) -> str:
    """Each claim under the adaptive design, look by look: the estimate of the part its verdict rests on
    (``claims.resting_on``) and its interval at the look's nominal level (a repeated confidence interval:
    it leaves the no-effect line, solid, exactly where the look's boundary is crossed, and an absolute
    reference effect, dashed, where "below reference" is; a reference relative to the base is dashed at
    its value at each look, and a below-reference look shows the interval against it, which carries the
    base's uncertainty), coloured by the verdict at that look; "" when no row has two looks."""
    shown = [row for row in rows if len(row.trajectory) > 1]
    if not shown:
        return ""
    columns = min(3, len(shown))
    lines = -(-len(shown) // columns)
    fig = Figure(figsize=(3.4 * columns, 2.6 * lines), layout="constrained")
    axes = fig.subplots(lines, columns, squeeze=False).ravel()
    for ax, row in zip(axes, shown, strict=False):
        first = row.trajectory[0]
        # the axis spans the estimates and the lines, with room; a wider interval (few values at a strict
        # level, up to an infinite bound) runs off it
        centre = [v for look in row.trajectory for v in (look.estimate, look.no_effect, look.reference)]
        centre = [v for v in centre if _drawable(v, first.ratio)]
        if first.ratio:
            ax.set_yscale("log")  # a ratio's interval is symmetric on the log scale
            bottom, top = min(centre) / 20, max(centre) * 20
        else:
            room = 2 * max(max(centre) - min(centre), 1e-9)
            bottom, top = min(centre) - room, max(centre) + room
        ax.set_ylim(bottom, top)
        for look in row.trajectory:
            colour = VERDICT_COLOURS[look.verdict]
            if not (np.isnan(look.low) or np.isnan(look.high)):
                ax.vlines(look.seeds, max(look.low, bottom), min(look.high, top), color=colour, linewidth=2)
            if _drawable(look.estimate, first.ratio):
                ax.plot(look.seeds, look.estimate, "o", color=colour)
        ax.axhline(first.no_effect, color="black", linewidth=0.8)
        references = [(look.seeds, look.reference) for look in row.trajectory if np.isfinite(look.reference)]
        if references:
            ax.plot(*zip(*references, strict=True), color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks([look.seeds for look in row.trajectory])
        ax.set_xlim(0, row.trajectory[-1].seeds + 1)
        ax.set_title(f"{row.id} ({row.setting}/{row.base})", fontsize=9)
        ax.set_xlabel("seeds at the look", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(shown) :]:
        ax.set_axis_off()
    return svg(fig)


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
