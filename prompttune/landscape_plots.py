"""Loss surfaces drawn from their data (``surface.json``, computed by ``landscape.py``): each run's
``surface.png`` and each (cell, method)'s ``surfaces.png`` (every seed on one colour scale) for the landscape
stage, and the report's landscape figures. Matplotlib only — no torch, no model — so the report draws the
surfaces without importing training code.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from prompttune.io import atomic_write_bytes

UNIT = "rms(E)·sqrt(n_coordinates)"  # of the surface's axes; landscape.py records it as "unit"


def _contour(ax: Any, surface: dict, levels: np.ndarray, title: str) -> Any:
    axis = np.asarray(surface["axis"])
    filled = ax.contourf(
        axis, axis, np.asarray(surface["losses"]), levels=levels, cmap="viridis", extend="both"
    )
    ax.plot([0], [0], marker="+", color="white")
    if "rho" in surface:
        ax.add_patch(Circle((0, 0), surface["rho"], fill=False, color="white", linestyle="--", linewidth=0.8))
    ax.set_xlabel(f"a: along ∇CE(z/T + c) ({UNIT})")
    ax.set_ylabel("b: random, orthogonal")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    return filled


def _title(surface: dict, fallback: str) -> str:
    run = surface.get("run")
    name = f"{run['task']} {run['method']} seed{run['seed']}" if run else fallback
    if "sharpness" in surface:
        name += f"\ncalibrated sharpness(ρ={surface['rho']:g}) = {surface['sharpness']:.4g}"
        if "centre_score" in surface:  # surfaces saved before the score was recorded have none
            name += f" at acc {surface['centre_accuracy']:.2f}, score {surface['centre_score']:.2f}"
    return name


def _save(fig: Figure, out_png: str | Path) -> None:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(out_png, buffer.getvalue())


def _levels(surfaces: Sequence[dict]) -> np.ndarray:
    values = np.concatenate([np.asarray(s["losses"]).ravel() for s in surfaces])
    low, high = float(values.min()), float(values.max())
    return np.linspace(low, high if high > low else low + 1e-6, 31)


def plot_surface(surface: dict, out_png: str | Path) -> None:
    """One run's surface as a filled contour plot (Agg), written atomically."""
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    fig.colorbar(_contour(ax, surface, _levels([surface]), _title(surface, "")), ax=ax, label="CE(z/T + c)")
    fig.tight_layout()
    _save(fig, out_png)


def surfaces_figure(surfaces: Sequence[dict], titles: Sequence[str]) -> Figure:
    """Several runs' surfaces (e.g. one task × method, every seed, or a base vs its PTP variants) in
    one figure with the same grid and colour scale; surfaces on different grids are refused."""
    if not surfaces:
        raise ValueError("no surfaces to plot")
    if any(s["axis"] != surfaces[0]["axis"] for s in surfaces):
        raise ValueError("surfaces have different grids (radius/points); they are not comparable")
    levels = _levels(surfaces)
    cols = min(len(surfaces), 4)
    rows = math.ceil(len(surfaces) / cols)
    fig = Figure(figsize=(4.8 * cols + 1, 4.4 * rows), layout="constrained")  # labels never overlap a panel
    axes = fig.subplots(rows, cols, squeeze=False)
    filled = None
    for ax, surface, title in zip(axes.ravel(), surfaces, titles, strict=False):
        filled = _contour(ax, surface, levels, _title(surface, title))
    for ax in axes.ravel()[len(surfaces) :]:
        ax.set_visible(False)
    fig.colorbar(filled, ax=axes.ravel().tolist(), label="CE(z/T + c)")
    return fig


def plot_surfaces(surface_jsons: Sequence[str | Path], out_png: str | Path) -> None:
    """``surfaces_figure`` of saved surfaces, written atomically to ``out_png``."""
    surfaces = [json.loads(Path(path).read_text(encoding="utf-8")) for path in surface_jsons]
    _save(surfaces_figure(surfaces, [Path(path).parent.name for path in surface_jsons]), out_png)
