"""Loss landscape of a trained run (PTP-4; paper: "precipitous" for vanilla prompt tuning, smoother with
PTP; x = along the gradient, y = along an orthogonal direction, z = cross-entropy).

Choices (docs/methods.md#loss-landscape-sharpness):

- inputs: the first ``n_examples`` examples of the run's report split, one batch, model in evaluation
  mode, fp32; the loss is the mean cross-entropy over that batch (computed in length-sorted pieces of
  ``chunk`` examples, each padded only to its own longest sequence: the same numbers, less padding);
- **bias+temperature-calibrated** (choice: "vector-free bias+temperature calibration"): a head's scale
  sets the loss's curvature (a head scaled by 0.01 / 1 / 10 / 100 had raw sharpness 0.000 / 0.0004 /
  0.034 / 0.82), so raw sharpness rewards a timid head; a constant bias toward one class saturates the
  softmax (an audit measured a bias lowering the temperature-only calibrated sharpness 3.5–40× while
  accuracy fell from 0.69 to 0.34–0.41), so it rewards a biased or partly collapsed head. Every loss
  below is therefore ``CE(z / T + c)`` with the temperature ``T > 0`` and the bias ``c`` (one entry per
  class, ``c[0] = 0``) that minimise the centre's mean cross-entropy on the evaluated examples
  (``calibrate``): scaling the head scales ``z`` and ``T`` alike, a constant added to a class's logit is
  taken back by ``c``, and neither changes any calibrated loss. Multiple choice fits ``T`` only
  (``c = 0``): its 1-logit head scores each (context, choice) sequence alone, so no head can favour a
  choice position, and a fitted ``c`` would only learn the evaluated examples' label order;
- directions: ``ĝ = ∇_{e(x)} CE(z/T + c)`` restricted to the input text tokens (the positions PTP
  perturbs) and normalised over the whole tensor; ``r̂`` a Gaussian direction (seeded) on the same
  positions, made orthogonal to ``ĝ`` and normalised;
- surface: ``CE(z(e(x) + u·(a·ĝ + b·r̂)) / T + c)`` on a ``points × points`` grid, ``a, b ∈ [−radius,
  radius]``; the raw (uncalibrated) surface is kept beside it;
- unit: ``u = rms(E)·√n`` with ``n`` the number of perturbed coordinates (text tokens × hidden
  size), so at (a, b) the perturbation's root-mean-square per perturbed coordinate is
  ``√(a² + b²)·rms(E)`` — the unit of PTP's σ and ε, independent of batch and sequence lengths and
  the same for every method;
- sharpness at ρ: the mean of ``L − L(centre)`` over the grid points with ``√(a² + b²) ≤ ρ``, on the
  calibrated surface;
- recorded beside it (choice): the score the sharpness was measured at — the centre's accuracy and the
  task's score (its metrics' mean, as ``metrics.json``) from the raw arg-max on the evaluated examples
  — since a low sharpness at a collapsed accuracy is no smoothness; and the code that computed it
  (``computed_by``: ``results.code_provenance``).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from transformers import PreTrainedTokenizerBase

from prompttune.backbone import load_backbone
from prompttune.batches import Batch, collate
from prompttune.checkpoint import load_run, read_config
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_write_json, read_json
from prompttune.landscape_plots import UNIT, plot_surface, plot_surfaces
from prompttune.model import PromptModel
from prompttune.objectives.ptp import embedding_rms
from prompttune.progress import Progress, counted, silent
from prompttune.results import code_provenance, code_sha256, load_metrics
from prompttune.schema import LandscapeStudy
from prompttune.splits import load_splits
from prompttune.tasks import get_task
from prompttune.tokens import encode_cached
from prompttune.train import resolve_device, to_device

if TYPE_CHECKING:  # transformers' modeling module takes seconds to import: type hints only
    from transformers import PreTrainedModel

TEMPERATURE_RANGE = (1e-2, 1e2)  # × the rms of the centre's centred logits (calibrate)
CALIBRATION_GTOL = 1e-10  # L-BFGS-B's stopping gradient (choice: reached in 10–40 steps in the tests)


def _logits(model: PromptModel, batch: Batch, embeds: torch.Tensor) -> torch.Tensor:
    return model(batch, inputs_embeds=embeds).logits


def _valid(logits: torch.Tensor) -> torch.Tensor:
    """The logits that are real scores (masked-out choices of multiple choice sit at the lowest float)."""
    return logits > torch.finfo(logits.dtype).min / 2


Calibration = tuple[float, Sequence[float]]  # the temperature T, the bias c (one entry per logit column)
RAW: Calibration = (1.0, (0.0,))  # no calibration


def calibrate(logits: torch.Tensor, labels: torch.Tensor, class_bias: bool = True) -> Calibration:
    """``T`` and ``c`` (``c[0] = 0``; all 0 without ``class_bias``) minimising the mean CE(logits / T + c).

    The fit is on the logits centred per example (the softmax ignores that shift) and, with ``class_bias``,
    per class (what ``c`` takes back), in units of their rms ``s``: there the loss ``CE(β·x + c)`` is
    convex in ``(β, c)``, and L-BFGS-B (float64, from ``β = 1, c = 0``, ``β`` bounded so that
    ``T = s/β`` lies in ``TEMPERATURE_RANGE × s``) finds its optimum; scaling the logits or adding a
    constant to a class changes neither ``x`` nor the fit, only the ``T`` and ``c`` it maps back to. A
    class that no evaluated example has is pushed down (its optimum is at −∞) until the gradient falls under
    ``CALIBRATION_GTOL``: about 25 below the others on the fit's scale, out of the softmax's way."""
    valid = _valid(logits).cpu()
    logits, labels = logits.detach().double().cpu(), labels.cpu()
    z = logits.masked_fill(~valid, 0.0)
    z = (z - z.sum(-1, keepdim=True) / valid.sum(-1, keepdim=True)).masked_fill(~valid, 0.0)
    class_means = z.mean(0) if class_bias else z.new_zeros(z.shape[-1])
    z = z - class_means
    scale = z[valid].pow(2).mean().sqrt().item() or 1.0
    x = z / scale
    free = z.shape[-1] - 1 if class_bias else 0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = torch.from_numpy(theta).requires_grad_(True)
        bias = torch.cat([params.new_zeros(1), params[1:]])
        value = F.cross_entropy((params[0] * x + bias).masked_fill(~valid, -math.inf), labels)
        (grad,) = torch.autograd.grad(value, params)
        return value.item(), grad.numpy()

    low, high = TEMPERATURE_RANGE
    best = minimize(
        loss,
        np.array([1.0] + [0.0] * free),
        jac=True,
        method="L-BFGS-B",
        bounds=[(1 / high, 1 / low)] + [(None, None)] * free,
        options={"gtol": CALIBRATION_GTOL, "ftol": 0.0, "maxiter": 1000},
    )
    temperature = scale / float(best.x[0])
    bias = torch.cat([z.new_zeros(1), torch.from_numpy(best.x[1:])]) - class_means / temperature
    return temperature, (bias - bias[0]).tolist()


def calibrated(logits: torch.Tensor, calibration: Calibration) -> torch.Tensor:
    """``logits / T + c`` in float64 (a bias taken back by ``c`` would cost float32 its digits)."""
    temperature, bias = calibration
    return logits.double() / temperature + logits.new_tensor(bias, dtype=torch.float64)


CHUNK = LandscapeStudy.chunk  # examples per forward or backward pass (choice)


Piece = tuple[torch.Tensor, torch.Tensor, Batch]  # example rows, sequence rows, the sub-batch
PER_EXAMPLE = ("labels", "example_index", "choice_mask")  # a batch's keys with one row per example


def pieces(batch: Batch, chunk: int) -> list[Piece]:
    """The batch cut into sub-batches of ``chunk`` examples (all their choices), longest first, each cut to
    its own last unpadded position: the same logits as the whole batch (attention never reads padding) for
    less padding and memory (choice: pieces of 8 of CB's first 32 validation examples took 0.42 s a forward
    against 0.61 s for the padded batch, 2-core Sapphire Rapids restricted to AVX2, fp32)."""
    n = batch["labels"].shape[0]
    per_example = batch["input_ids"].shape[0] // n
    mask = batch["attention_mask"]
    ends = (mask * torch.arange(1, mask.shape[1] + 1, device=mask.device)).amax(-1)  # last real token + 1
    order = torch.argsort(ends.view(n, per_example).amax(-1), descending=True, stable=True)
    parts = []
    for start in range(0, n, chunk):
        rows = order[start : start + chunk]
        seqs = (rows[:, None] * per_example + torch.arange(per_example, device=rows.device)).reshape(-1)
        width = int(ends[seqs].max())
        sub = {k: v[rows] if k in PER_EXAMPLE else v[seqs][:, :width] for k, v in batch.items()}
        parts.append((rows, seqs, sub))
    return parts


def piecewise_logits(
    model: PromptModel, parts: Sequence[Piece], embeds: Sequence[torch.Tensor]
) -> torch.Tensor:
    """The whole batch's logits, in its order, from each piece's forward on its own embeddings."""
    outputs = [
        _logits(model, sub, piece_embeds) for (_, _, sub), piece_embeds in zip(parts, embeds, strict=True)
    ]
    n = sum(len(rows) for rows, _, _ in parts)
    logits = outputs[0].new_empty((n, *outputs[0].shape[1:]))
    for (rows, _, _), out in zip(parts, outputs, strict=True):
        logits[rows] = out
    return logits


def chunked_gradient(
    model: PromptModel, batch: Batch, calibration: Calibration, chunk: int = CHUNK
) -> torch.Tensor:
    """``∇_{e(x)}`` of the batch's mean calibrated CE, one piece (``pieces``) at a time, so the backward
    of a large multiple-choice batch fits in memory; equal to the one-batch gradient."""
    embeds = model.embed(batch["input_ids"]).detach().float()
    n = batch["labels"].shape[0]
    grad = torch.zeros_like(embeds)
    for _, seqs, sub in pieces(batch, chunk):
        width = sub["input_ids"].shape[1]
        part = embeds[seqs, :width].clone().requires_grad_(True)
        logits = calibrated(_logits(model, sub, part), calibration)
        loss = F.cross_entropy(logits, sub["labels"], reduction="sum") / n
        (grad[seqs, :width],) = torch.autograd.grad(loss, part)
    return grad


def directions(
    model: PromptModel,
    batch: Batch,
    seed: int,
    calibration: Calibration = RAW,
    chunk: int = CHUNK,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The clean word embeddings ``e(x)``, ``ĝ`` (of the loss under ``calibration``) and ``r̂`` (unit
    norm, zero off the text positions, orthogonal), for the model in its current mode."""
    mask = batch["text_mask"].unsqueeze(-1).float()
    embeds = model.embed(batch["input_ids"]).detach().float()
    g_hat = chunked_gradient(model, batch, calibration, chunk) * mask
    if not g_hat.norm() > 0:
        raise ValueError("the loss has no gradient with respect to the text embeddings of this batch")
    g_hat = g_hat / g_hat.norm()
    generator = torch.Generator().manual_seed(seed)
    r_hat = torch.randn(embeds.shape, generator=generator).to(embeds.device) * mask
    r_hat = r_hat - (r_hat * g_hat).sum() * g_hat
    r_hat = r_hat / r_hat.norm()
    return embeds.detach(), g_hat, r_hat


def loss_surface(
    model: PromptModel,
    batch: Batch,
    *,
    radius: float,
    points: int = 41,
    seed: int = 0,
    chunk: int = CHUNK,
) -> dict:
    """The calibrated loss on the grid (module docstring). ``losses[j][i]`` is the loss at ``a = axis[i]``,
    ``b = axis[j]``; ``raw_losses`` the same without calibration; ``temperature`` and ``bias`` the
    calibration (``T``, ``c``); ``centre_predictions`` the raw arg-max at the centre and
    ``centre_accuracy`` their accuracy; ``points`` must be odd so the centre lies on the grid."""
    if radius <= 0:
        raise ValueError("radius must be > 0")
    if points < 3 or points % 2 == 0:
        raise ValueError("points must be odd and ≥ 3")
    was_training = model.training
    model.eval()
    labels = batch["labels"]
    parts = pieces(batch, chunk)

    def cut(tensor: torch.Tensor) -> list[torch.Tensor]:
        return [tensor[seqs, : sub["input_ids"].shape[1]] for _, seqs, sub in parts]

    try:
        with torch.no_grad():
            centre_logits = piecewise_logits(model, parts, cut(model.embed(batch["input_ids"]).float()))
        calibration = calibrate(centre_logits, labels, class_bias="choice_mask" not in batch)
        embeds, g_hat, r_hat = directions(model, batch, seed, calibration, chunk)
        n_coordinates = int(batch["text_mask"].sum().item()) * embeds.shape[-1]
        rms = embedding_rms(model)
        unit = rms * math.sqrt(n_coordinates)
        half = (points - 1) // 2
        axis = [radius * (i - half) / half for i in range(points)]
        moved = list(zip(cut(embeds), cut(g_hat * unit), cut(r_hat * unit), strict=True))
        with torch.no_grad():
            grid = [
                [piecewise_logits(model, parts, [e + a * g + b * r for e, g, r in moved]) for a in axis]
                for b in axis
            ]
    finally:
        model.train(was_training)

    def ce(logits: torch.Tensor) -> float:
        return F.cross_entropy(calibrated(logits, calibration), labels).item()

    def raw_ce(logits: torch.Tensor) -> float:
        return F.cross_entropy(logits, labels).item()

    predictions = centre_logits.argmax(-1)
    return {
        "axis": axis,
        "losses": [[ce(z) for z in row] for row in grid],
        "raw_losses": [[raw_ce(z) for z in row] for row in grid],
        "centre_loss": ce(centre_logits),
        "raw_centre_loss": raw_ce(centre_logits),
        "temperature": calibration[0],
        "bias": list(calibration[1]),
        "centre_predictions": predictions.tolist(),
        "centre_accuracy": (predictions == labels).double().mean().item(),
        "radius": radius,
        "points": points,
        "seed": seed,
        "unit": UNIT,
        "unit_value": unit,
        "rms_embedding": rms,
        "n_coordinates": n_coordinates,
    }


def sharpness(surface: dict, rho: float, raw: bool = False) -> float:
    """Mean loss increase over the grid points within distance ``rho`` of the centre (0 ≤ ρ ≤ radius), on
    the calibrated surface (``raw``: the uncalibrated one)."""
    if not 0 <= rho <= surface["radius"]:
        raise ValueError(f"rho must be in [0, radius = {surface['radius']}]")
    prefix = "raw_" if raw else ""
    axis, centre, losses = surface["axis"], surface[f"{prefix}centre_loss"], surface[f"{prefix}losses"]
    increases = [
        losses[j][i] - centre
        for j, b in enumerate(axis)
        for i, a in enumerate(axis)
        if math.hypot(a, b) <= rho * (1 + 1e-9)
    ]
    return float(np.mean(increases))


def landscape_for_run(
    run_dir: str | Path,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    radius: float,
    points: int,
    rho: float,
    n_examples: int = 32,
    seed: int = 0,
    chunk: int = CHUNK,
    backbone: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
) -> dict:
    """Surface and calibrated sharpness of a finished run on the first ``n_examples`` of its report
    split, with the task's score there (``centre_score``) and the code that computed it
    (``computed_by``); writes ``out_dir/surface.json`` and ``out_dir/surface.png`` atomically; returns
    the surface.
    ``seed`` draws r̂; it is the same for every run (not the run's seed), so runs on the same batch
    share the random direction's draw. ``backbone``: the run's backbone, already loaded."""
    run = load_run(run_dir, backbone=backbone)
    config = run.config
    device = resolve_device(config.train.device)
    model = run.model.to(device)
    task = get_task(config.task)
    splits = load_splits(Path(data_root), config.setting, task, config.data_seed)
    examples = splits.report[:n_examples]
    features = encode_cached(examples, task, run.tokenizer, config.train.max_length)
    batch = to_device(collate(features, run.tokenizer, task.kind == "multiple_choice"), device)
    surface = loss_surface(model, batch, radius=radius, points=points, seed=seed, chunk=chunk)
    surface.update(
        rho=rho,
        sharpness=sharpness(surface, rho),
        raw_sharpness=sharpness(surface, rho, raw=True),
        centre_score=task.score(task.compute_metrics(examples, surface["centre_predictions"])),
        split=splits.report_name,
        n_examples=len(examples),
        run={
            "run_dir": str(run_dir),
            "setting": config.setting,
            "task": config.task,
            "method": config.method,
            "base": config.base,
            "objective": config.objective,
            "seed": config.seed,
            "backbone": config.backbone,
        },
        computed_by=code_provenance(),
    )
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "surface.json", surface)
    plot_surface(surface, out_dir / "surface.png")
    return surface


def inputs_sha256(spec: dict[str, Any], run_dir: Path) -> str:
    """sha256 of what one run's surface depends on: the study's settings, the run folder's prompt, config
    and metrics, and the code (``results.code_sha256``)."""
    settings = {k: v for k, v in spec.items() if k not in ("runs", "out")}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode() + code_sha256().encode())
    for name in ("config.json", "metrics.json", "prompt.pt"):
        if (run_dir / name).is_file():
            digest.update(name.encode() + (run_dir / name).read_bytes())
    return digest.hexdigest()


def landscape_for_method(spec: dict[str, Any], data_root: Path, progress: Progress = silent) -> list[dict]:
    """The study for one (cell, method) as ``configs/landscape/<cell>/<method>.json`` gives it: every
    seed's run on the same inputs, directions' draw and scale; ``<out>/seed<N>/surface.{json,png}`` per
    run and ``<out>/surfaces.png`` with all of them on one colour scale. A seed whose surface was computed
    from the same inputs (``inputs_sha256``) is kept, and seeds the study no longer has are removed, so
    a study given more seeds computes only the new ones. ``progress`` gets a line per seed."""
    run_dirs = [Path(run) for run in spec["runs"]]
    started = time.perf_counter()
    out_dir = Path(spec["out"])
    names = {read_config(run_dir).backbone for run_dir in run_dirs}
    if len(names) != 1:
        raise PromptTuneError(
            f"{out_dir}: the runs {[str(d) for d in run_dirs]} use backbones {sorted(names)}"
        )
    for stale in sorted(out_dir.glob("seed*")):
        if stale.name not in {d.name for d in run_dirs}:
            shutil.rmtree(stale)
    backbone = None
    surfaces = []
    for run_dir in run_dirs:
        key, path = inputs_sha256(spec, run_dir), out_dir / run_dir.name / "surface.json"
        if path.is_file() and read_json(path).get("inputs_sha256") == key:
            surfaces.append(read_json(path))
            continue
        metrics = load_metrics(run_dir / "metrics.json")
        if metrics.status == "failed":  # nothing trained to look at: recorded, left out of the figures
            surface = {
                "status": "failed",
                "reason": metrics.reason,
                "sharpness": None,
                "run": {"run_dir": str(run_dir)},
            }
        else:
            backbone = backbone or load_backbone(names.pop())  # loaded once, shared by every seed's model
            surface = landscape_for_run(
                run_dir,
                data_root,
                out_dir / run_dir.name,
                radius=spec["radius"],
                points=spec["points"],
                rho=spec["rho"],
                n_examples=spec["n_examples"],
                chunk=spec["chunk"],
                backbone=backbone,
            )
        surface["inputs_sha256"] = key
        atomic_write_json(path, surface)
        surfaces.append(surface)
        progress(counted(f"landscape {out_dir}, seeds", len(surfaces), len(run_dirs), started))
    drawn = [
        out_dir / d.name / "surface.json" for d, s in zip(run_dirs, surfaces, strict=True) if "axis" in s
    ]
    if drawn:
        plot_surfaces(drawn, out_dir / "surfaces.png")
    return surfaces
