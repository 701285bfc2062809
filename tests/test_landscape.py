"""Loss landscape: directions, the surface's centre and slope, calibrated sharpness (blind to the head's
scale and to a constant class bias), files written for a run."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import CB_EXAMPLES, COPA_EXAMPLES, tiny_config

from prompttune.backbone import load_backbone
from prompttune.batches import collate, encode
from prompttune.data import fetch
from prompttune.landscape import (
    calibrate,
    calibrated,
    directions,
    landscape_for_method,
    landscape_for_run,
    loss_surface,
    pieces,
    plot_surfaces,
    sharpness,
)
from prompttune.model import PromptModel
from prompttune.results import code_provenance
from prompttune.splits import load_splits, required_files
from prompttune.tasks import get_task
from prompttune.train import train_run


@pytest.fixture()
def model_and_batch(tiny_backbone: str) -> tuple[PromptModel, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    backbone, tokenizer = load_backbone(tiny_backbone)
    model = PromptModel.build(tiny_config(tiny_backbone), backbone, tokenizer, get_task("CB"))
    batch = collate(encode(CB_EXAMPLES, get_task("CB"), tokenizer, 32), tokenizer, False)
    return model, batch


def test_directions_are_orthonormal_and_live_on_text_positions(model_and_batch) -> None:
    model, batch = model_and_batch
    embeds, g_hat, r_hat = directions(model.eval(), batch, seed=0)
    off_text = ~batch["text_mask"]
    assert g_hat.norm().item() == pytest.approx(1.0) and r_hat.norm().item() == pytest.approx(1.0)
    assert abs((g_hat * r_hat).sum().item()) < 1e-6
    assert not g_hat[off_text].any() and not r_hat[off_text].any()
    assert torch.equal(embeds, model.embed(batch["input_ids"]))
    assert all(p.grad is None for p in model.parameters())


def test_centre_is_the_clean_loss_and_the_gradient_direction_goes_uphill(model_and_batch) -> None:
    model, batch = model_and_batch
    model.train()
    surface = loss_surface(model, batch, radius=0.02, points=3)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        logits = model(batch).logits
    clean = F.cross_entropy(logits, batch["labels"]).item()
    bias = torch.tensor(surface["bias"], dtype=torch.float64)
    calibrated = F.cross_entropy(logits.double() / surface["temperature"] + bias, batch["labels"]).item()
    assert surface["axis"] == [-0.02, 0.0, 0.02]
    assert surface["raw_centre_loss"] == clean and surface["raw_losses"][1][1] == clean
    assert surface["centre_loss"] == pytest.approx(calibrated) and surface["losses"][1][1] == pytest.approx(
        calibrated
    )
    assert calibrated <= clean + 1e-6, "the calibrated temperature can only lower the centre's loss"
    minus, plus = surface["losses"][1][0], surface["losses"][1][2]  # b = 0, a = ∓radius
    assert plus > surface["centre_loss"] > minus
    n_text = int(batch["text_mask"].sum())
    assert surface["n_coordinates"] == n_text * 32
    assert surface["unit_value"] == pytest.approx(surface["rms_embedding"] * math.sqrt(n_text * 32))


@pytest.mark.parametrize("task", ["CB", "COPA"])
def test_length_sorted_pieces_give_the_whole_batchs_surface(tiny_backbone: str, task: str) -> None:
    torch.manual_seed(0)
    backbone, tokenizer = load_backbone(tiny_backbone)
    config = dataclasses.replace(tiny_config(tiny_backbone), task=task)
    model = PromptModel.build(config, backbone, tokenizer, get_task(task))
    spec = get_task(task)
    examples = CB_EXAMPLES if task == "CB" else COPA_EXAMPLES
    batch = collate(encode(examples, spec, tokenizer, 32), tokenizer, spec.kind == "multiple_choice")
    parts = pieces(batch, 1)
    assert sorted(int(rows) for rows, _, _ in parts) == list(range(len(examples)))
    widths = [sub["input_ids"].shape[1] for _, _, sub in parts]
    assert widths == sorted(widths, reverse=True) and widths[-1] < batch["input_ids"].shape[1]  # trimmed
    whole = loss_surface(model, batch, radius=0.5, points=3, chunk=len(examples))
    cut = loss_surface(model, batch, radius=0.5, points=3, chunk=1)
    for key in ("losses", "raw_losses"):
        assert np.allclose(cut[key], whole[key], rtol=1e-5, atol=1e-6)
    assert cut["temperature"] == pytest.approx(whole["temperature"], rel=1e-4)
    assert np.allclose(cut["bias"], whole["bias"], rtol=1e-4, atol=1e-5)
    assert cut["centre_predictions"] == whole["centre_predictions"]
    with torch.no_grad():
        clean = F.cross_entropy(model.eval()(batch).logits, batch["labels"]).item()
    assert cut["raw_centre_loss"] == pytest.approx(clean, rel=1e-5)


# no (T, c) gets every row right (the last two need c1 − c0 > 1 and < −1): the optimum is finite
LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.2, 3.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
LABELS = torch.tensor([0, 1, 2, 1, 0])


def calibrated_loss(
    logits: torch.Tensor, labels: torch.Tensor, inverse_t: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    return F.cross_entropy(logits.double() * inverse_t + torch.cat([bias.new_zeros(1), bias]), labels)


def test_calibration_finds_the_temperature_and_bias_that_minimise_the_loss() -> None:
    t, bias = calibrate(LOGITS, LABELS)
    assert bias[0] == 0.0 and len(bias) == 3
    inverse_t = torch.tensor(1 / t, dtype=torch.float64, requires_grad=True)
    free = torch.tensor(bias[1:], dtype=torch.float64, requires_grad=True)
    gradient = torch.autograd.grad(calibrated_loss(LOGITS, LABELS, inverse_t, free), (inverse_t, free))
    assert torch.cat([g.reshape(-1) for g in gradient]).abs().max() < 1e-7  # convex: the optimum
    grid = torch.linspace(0.05, 20, 4000)
    temperature_only = torch.stack([F.cross_entropy(LOGITS / g, LABELS) for g in grid])
    fitted = F.cross_entropy(calibrated(LOGITS, (t, bias)), LABELS).item()
    assert fitted < temperature_only.min().item() - 0.01
    t_only, no_bias = calibrate(LOGITS, LABELS, class_bias=False)  # multiple choice: T alone
    assert no_bias == [0.0, 0.0, 0.0]
    assert t_only == pytest.approx(grid[temperature_only.argmin()].item(), rel=1e-2)
    masked = torch.cat([LOGITS, torch.full((5, 1), torch.finfo(torch.float32).min)], 1)  # a masked choice
    t_masked, bias_masked = calibrate(masked, LABELS, class_bias=False)
    assert t_masked == pytest.approx(t_only, rel=1e-6) and bias_masked == [0.0] * 4


def test_calibration_takes_back_a_head_scale_and_a_class_bias() -> None:
    t, bias = calibrate(LOGITS, LABELS)
    t_scaled, bias_scaled = calibrate(10 * LOGITS, LABELS)
    assert t_scaled == pytest.approx(10 * t, rel=1e-6) and bias_scaled == pytest.approx(bias, abs=1e-6)
    shifted = LOGITS + torch.tensor([3.0, 0.0, -1.0])
    t_shifted, bias_shifted = calibrate(shifted, LABELS)
    assert t_shifted == pytest.approx(t, rel=1e-6)
    same = calibrated(shifted, (t_shifted, bias_shifted)) - calibrated(LOGITS, (t, bias))
    assert torch.allclose(same, same[:, :1].expand_as(same), atol=1e-6)  # equal up to a per-row shift


@pytest.mark.parametrize("scale", [0.01, 10.0, 100.0])
def test_sharpness_does_not_reward_a_timid_head(model_and_batch, scale: float) -> None:
    """Scaling the head scales every logit; the raw surface's sharpness moves with it (the audit measured
    0.000 / 0.0004 / 0.034 / 0.82 at 0.01 / 1 / 10 / 100), the calibrated one must not."""
    model, batch = model_and_batch
    reference = loss_surface(model, batch, radius=0.5, points=5)
    with torch.no_grad():
        model.head.weight.mul_(scale)
        model.head.bias.mul_(scale)
    scaled = loss_surface(model, batch, radius=0.5, points=5)
    assert sharpness(scaled, 0.5) == pytest.approx(sharpness(reference, 0.5), rel=1e-4, abs=1e-7)
    assert scaled["temperature"] == pytest.approx(scale * reference["temperature"], rel=1e-3)
    raw_ratio = sharpness(scaled, 0.5, raw=True) / sharpness(reference, 0.5, raw=True)
    assert not 0.5 < raw_ratio < 2, "the uncalibrated sharpness does move with the head's scale"


@pytest.mark.parametrize("shift", [2.0, 5.0])
def test_sharpness_does_not_reward_a_class_bias(tiny_backbone: str, shift: float) -> None:
    """A constant added to class 0's logit collapses the predictions onto class 0 and saturates the
    softmax: the raw sharpness falls (measured: ×0.67 at +2, ×0.18 at +5), as the audit found a
    temperature-only calibrated sharpness fall 3.5–40× at an accuracy of 0.34–0.41 instead of 0.69. The
    calibrated one must not move: measured within 7e-6 relative (float32 logits), so 1e-4 here."""
    torch.manual_seed(0)
    backbone, tokenizer = load_backbone(tiny_backbone)
    model = PromptModel.build(tiny_config(tiny_backbone), backbone, tokenizer, get_task("CB"))
    # each input twice, with two labels: no head is right on all, so the calibration's optimum is finite
    relabelled = [dataclasses.replace(e, guid=f"{e.guid}'", label=(e.label + 1) % 3) for e in CB_EXAMPLES]
    batch = collate(encode(CB_EXAMPLES + relabelled, get_task("CB"), tokenizer, 32), tokenizer, False)
    reference = loss_surface(model, batch, radius=0.5, points=5)
    with torch.no_grad():
        model.head.bias[0] += shift
    biased = loss_surface(model, batch, radius=0.5, points=5)
    assert sharpness(biased, 0.5) == pytest.approx(sharpness(reference, 0.5), rel=1e-4)
    assert biased["temperature"] == pytest.approx(reference["temperature"], rel=1e-4)
    raw_ratio = sharpness(biased, 0.5, raw=True) / sharpness(reference, 0.5, raw=True)
    assert raw_ratio < 0.75, "the uncalibrated sharpness does fall with a class bias"
    assert biased["centre_predictions"] == [0] * 6
    assert reference["centre_accuracy"] == 0.5 and biased["centre_accuracy"] == pytest.approx(1 / 3)


def test_surface_is_reproducible_for_a_seed(model_and_batch) -> None:
    model, batch = model_and_batch
    first = loss_surface(model, batch, radius=1.0, points=3, seed=5)
    assert first == loss_surface(model, batch, radius=1.0, points=3, seed=5)
    assert first["losses"] != loss_surface(model, batch, radius=1.0, points=3, seed=6)["losses"]


@pytest.mark.parametrize(("radius", "points"), [(0.0, 41), (1.0, 40), (1.0, 1)])
def test_invalid_grids_are_refused(model_and_batch, radius: float, points: int) -> None:
    model, batch = model_and_batch
    with pytest.raises(ValueError):
        loss_surface(model, batch, radius=radius, points=points)


def grid(fn, radius: float = 1.0, points: int = 5) -> dict:
    half = (points - 1) // 2
    axis = [radius * (i - half) / half for i in range(points)]
    return {
        "axis": axis,
        "losses": [[fn(a, b) for a in axis] for b in axis],
        "centre_loss": fn(0.0, 0.0),
        "radius": radius,
    }


def test_sharpness_on_hand_made_surfaces() -> None:
    assert sharpness(grid(lambda a, b: 0.7), rho=1.0) == 0.0
    # axis −1, −0.5, 0, 0.5, 1; within ρ = 0.5: the centre and its 4 neighbours, each 0.25 higher
    assert sharpness(grid(lambda a, b: 2.0 + a * a + b * b), rho=0.5) == pytest.approx(4 * 0.25 / 5)
    # within ρ = 1: 13 points: centre, 4 at 0.25, 4 at 0.5, 4 at 1
    assert sharpness(grid(lambda a, b: a * a + b * b), rho=1.0) == pytest.approx((1 + 2 + 4) / 13)
    assert sharpness(grid(lambda a, b: a * a + b * b), rho=0.0) == 0.0
    with pytest.raises(ValueError):
        sharpness(grid(lambda a, b: 0.0), rho=1.5)


@pytest.fixture(scope="module")
def cb_data(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("data")
    fetch(required_files("fewglue", "CB"), dest, mirror=mirror)
    return dest


def test_landscape_for_a_trained_run_writes_json_and_png(
    tiny_backbone: str, cb_data: Path, tmp_path: Path
) -> None:
    runs = {}
    for method in ("pt2", "pt2-ptp-adv-emb"):
        runs[method] = tmp_path / "runs" / method
        train_run(tiny_config(tiny_backbone, method), cb_data, runs[method])
    outs = {method: tmp_path / "landscape" / method for method in runs}
    surface = landscape_for_run(
        runs["pt2"], cb_data, outs["pt2"], radius=0.5, points=5, rho=0.25, n_examples=6, chunk=2
    )
    landscape_for_run(
        runs["pt2-ptp-adv-emb"], cb_data, outs["pt2-ptp-adv-emb"], radius=0.5, points=5, rho=0.25
    )
    assert sorted(p.name for p in outs["pt2"].iterdir()) == ["surface.json", "surface.png"]
    saved = json.loads((outs["pt2"] / "surface.json").read_text())
    assert saved == surface
    assert len(saved["axis"]) == 5 and all(len(row) == 5 for row in saved["losses"])
    assert saved["sharpness"] == sharpness(saved, 0.25)
    assert saved["raw_sharpness"] == sharpness(saved, 0.25, raw=True)
    assert len(saved["bias"]) == 3 and saved["bias"][0] == 0.0 and saved["temperature"] > 0
    task, predictions = get_task("CB"), saved["centre_predictions"]
    examples = load_splits(cb_data, "fewglue", task, tiny_config(tiny_backbone).data_seed).report[:6]
    metrics = task.compute_metrics(examples, predictions)
    assert saved["centre_accuracy"] == pytest.approx(metrics["acc"])
    assert saved["centre_score"] == task.score(metrics)
    assert saved["computed_by"].keys() == code_provenance().keys()
    assert saved["n_examples"] == 6 and saved["split"] == "val"
    assert saved["run"]["method"] == "pt2" and saved["run"]["seed"] == 1 and saved["run"]["task"] == "CB"
    assert (outs["pt2"] / "surface.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    combined = tmp_path / "landscape" / "CB.png"
    plot_surfaces([outs[method] / "surface.json" for method in runs], combined)
    assert combined.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "landscape").glob(".*"))  # no temporary files left behind
    spec = {
        "runs": [str(runs["pt2"])],
        "out": str(tmp_path / "study"),
        "radius": 0.5,
        "points": 5,
        "rho": 0.25,
        "n_examples": 6,
        "chunk": 2,
    }
    (study,) = landscape_for_method(spec, cb_data)
    # the same surface, whichever way it is computed, with the digest of its inputs
    assert study == surface | {"run": study["run"], "inputs_sha256": study["inputs_sha256"]}
    saved_path = tmp_path / "study" / "pt2" / "surface.json"
    assert saved_path.is_file() and (tmp_path / "study" / "surfaces.png").is_file()
    written = saved_path.stat().st_mtime_ns
    assert landscape_for_method(spec, cb_data) == [study] and saved_path.stat().st_mtime_ns == written, "kept"
    (again,) = landscape_for_method(spec | {"rho": 0.5}, cb_data)
    assert again["rho"] == 0.5 and again["inputs_sha256"] != study["inputs_sha256"], (
        "other inputs: recomputed"
    )


def test_panels_of_a_surfaces_figure_do_not_overlap() -> None:
    """Each panel's box, with its title and axis labels, stays clear of its neighbours."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from prompttune.landscape_plots import surfaces_figure

    surface = grid(lambda a, b: a * a + b * b)
    surface.update(rho=0.5, sharpness=0.1, centre_accuracy=0.5, centre_score=0.5)
    fig = surfaces_figure([surface] * 6, [f"seed{i}" for i in range(6)])
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = [
        ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"
    ]
    assert len(boxes) == 6
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            assert not first.overlaps(second), (first, second)
