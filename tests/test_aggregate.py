"""Aggregation and the minimal report on hand-made run results with known means and deviations."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prompttune.aggregate import write_aggregate
from prompttune.config import expand_grid, load_params
from prompttune.report import render_report
from prompttune.results import SCHEMA_VERSION, RunMetrics, SplitResult

ROOT = Path(__file__).resolve().parents[1]
SCORES = {  # (cell, method) -> report scores per seed 1, 2, 3 (fractions)
    ("fewglue.CB", "head"): [0.50, 0.60, 0.70],
    ("fewglue.CB", "pt"): [0.40, 0.40, 0.40],
    ("fewglue.CB", "pt2"): [0.62, None, 0.66],  # seed 2 failed
    ("fewshot-256.SST-2", "head"): [0.55, 0.65, 0.60],
    ("fewshot-256.SST-2", "pt"): [0.51, 0.52, 0.53],
    ("fewshot-256.SST-2", "pt2"): [0.70, 0.72, 0.74],
    ("fewglue.CB", "pt", "init-vocab"): [0.45, 0.47],
}
CURVE = (
    "step,train_loss,lr,select_score,elapsed_s\n"
    "0,,0,0.30,0\n10,1.0,0.01,0.50,1\n20,0.9,0.01,0.56,2\n30,0.8,0,0.60,3\n"
)
SHARPNESS = {1: 0.25, 2: 0.75}  # landscape study: pt, seeds 1 and 2


def small_grid(data: dict) -> None:
    """The committed params.yaml with a grid small enough to write by hand."""
    data["grid"] = {
        "cells": ["fewglue.CB", "fewshot-256.SST-2"],
        "methods": ["head", "pt", "pt2"],
        "seeds": [1, 2, 3],
        "variants": {"cells": ["fewglue.CB"], "methods": ["pt"], "names": ["init-vocab"], "seeds": [1, 2]},
    }
    data["studies"]["landscape"].update(
        cells=["fewglue.CB", "fewshot-256.SST-2"], methods=["pt"], seeds=[1, 2]
    )


def split(name: str, score: float) -> SplitResult:
    return SplitResult(name, 10, score, {"acc": score}, {"a": 1.0}, majority_score=0.5)


def write_runs(root: Path) -> None:
    params = load_params(root / "params.yaml")
    for cell in expand_grid(params):
        key = (cell.cell, cell.method, cell.variant) if cell.variant else (cell.cell, cell.method)
        score = SCORES[key][cell.seed - 1]
        metrics = RunMetrics(
            schema_version=SCHEMA_VERSION,
            status="ok" if score is not None else "failed",
            reason=None if score is not None else "non-finite loss nan at step 3",
            setting=cell.setting,
            task=cell.task,
            task_version=1,
            method=cell.method,
            base=cell.method,
            objective="ce",
            seed=cell.seed,
            variant=cell.variant,
            prompt_init="vocab" if cell.variant else "random",
            data_seed=13,
            backbone="minilm",
            backbone_dropout=False,
            precision="fp32",
            device="cpu",
            select=split("dev32", score) if score is not None else None,
            report=split("val", score) if score is not None else None,
            selected_step=10 if score is not None else None,
            steps=10,
            n_train=32,
            trainable_params=100,
            wall_time_s=1.0,
            train_time_s=1.0,
            train_examples_per_s=16.0,
            peak_memory_mb=100.0,
        )
        run_dir = root / cell.run_dir
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps(dataclasses.asdict(metrics)))
        (run_dir / "curve.csv").write_text(CURVE)
        provenance = {
            "git_revision": "abc",
            "packages": {"torch": "2.13.0"},
            "hardware": {"processor": "cpu", "cpu_count": 2, "torch_threads": 2, "python": "3.11"},
            "data_sha256": {f"{cell.task}/val": "0" * 64},
        }
        (run_dir / "provenance.json").write_text(json.dumps(provenance))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    small_grid(data)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    write_runs(tmp_path)
    for cell, values in (("fewglue.CB", SHARPNESS), ("fewshot-256.SST-2", {1: 1.0, 2: 1.0})):
        for seed, value in values.items():
            surface = tmp_path / f"results/landscape/{cell}/pt/seed{seed}/surface.json"
            surface.parent.mkdir(parents=True)
            losses = [[1.0 + value, 1.0 + value / 2, 1.0 + value]] * 3
            grid = {"axis": [-0.2, 0.0, 0.2], "losses": losses, "radius": 0.2, "points": 3, "rho": 0.1}
            surface.write_text(json.dumps({**grid, "sharpness": value}))
    return tmp_path


def test_means_and_std_over_ok_runs_with_failed_runs_counted(project: Path) -> None:
    summary = write_aggregate(load_params(project / "params.yaml"), project / "results", root=project)
    row = summary[summary["variant"] == ""].set_index(["setting", "task", "method"])
    head = row.loc["fewglue", "CB", "head"]
    assert head["mean"] == pytest.approx(60.0) and head["std"] == pytest.approx(10.0)
    assert (head["n_ok"], head["n_runs"]) == (3, 3)
    pt = row.loc["fewglue", "CB", "pt"]
    assert pt["std"] == pytest.approx(0.0)
    pt2 = row.loc["fewglue", "CB", "pt2"]
    assert pt2["mean"] == pytest.approx(64.0) and pt2["std"] == pytest.approx(2 * 2**0.5)
    assert (pt2["n_ok"], pt2["n_runs"]) == (2, 3)
    runs = pd.read_csv(project / "results" / "runs.csv")
    assert len(runs) == 20 and (runs["status"] == "failed").sum() == 1
    nested = json.loads((project / "results" / "summary.json").read_text())
    assert nested["fewshot-256.SST-2"]["pt2"] == {"mean": 72.0, "std": 2.0, "n_ok": 3, "n_runs": 3}
    assert nested["fewglue.CB"]["pt/init-vocab"] == {"mean": 46.0, "std": 1.4142, "n_ok": 2, "n_runs": 2}


def test_steps_to_90_and_sharpness_land_in_the_tables(project: Path) -> None:
    summary = write_aggregate(load_params(project / "params.yaml"), project / "results", root=project)
    runs = pd.read_csv(project / "results" / "runs.csv", keep_default_na=False, na_values=[""])
    # curve 0.30, 0.50, 0.56, 0.60: 90 % of the final 0.60 is 0.54, first reached at step 20
    assert set(runs["steps_to_90"]) == {20}
    pt = runs[(runs["task"] == "CB") & (runs["method"] == "pt") & (runs["variant"].isna())]
    assert pt["sharpness"].tolist()[:2] == [0.25, 0.75] and pd.isna(pt["sharpness"].tolist()[2])
    assert runs[runs["method"] != "pt"]["sharpness"].isna().all()
    row = summary.set_index(["setting", "task", "method", "variant"]).loc["fewglue", "CB", "pt", ""]
    assert row["sharpness"] == pytest.approx(0.5) and row["steps_to_90"] == 20
    curves = pd.read_csv(project / "results" / "curves.csv")
    assert len(curves) == 4 * 20 and curves["step"].max() == 30


def test_report_has_every_section_and_one_row_per_method(project: Path) -> None:
    params = load_params(project / "params.yaml")
    write_aggregate(params, project / "results", root=project)
    out = render_report(params, project / "results", project / "reports" / "default.html", root=project)
    html = out.read_text()
    assert "60.0 ± 10.0" in html and "64.0 ± 2.8" in html and "72.0 ± 2.0" in html
    results = html.split('<section id="results">')[1].split("</section>")[0]
    assert "n = 2 of 3" in results and results.count("n = 3 of 3") == 5 + 1  # + pt's main row among variants
    assert results.count("<tr><td><code>") == 3 * 2 + 2, "method rows per setting, pt and its variant"
    assert "<td><code>init-vocab</code></td>" in results
    assert "fewglue.CB / pt2 / seed 2</code>: failed — non-finite loss" in html
    for section in ("claims", "results", "stability", "convergence", "landscapes", "mi-checks", "problems"):
        assert f'<section id="{section}">' in html
    assert html.count('src="data:image/png;base64,') == 2 + 2 + 2, "strips, curves, one landscape per cell"
    assert "<code>abc</code>" in html and "0" * 64 in html
    assert "http://" not in html and "https://" not in html, "the report must not load anything"


def test_a_missing_run_is_an_error_naming_it(project: Path) -> None:
    from prompttune.errors import PromptTuneError

    (project / "runs/fewglue.CB/pt/seed2/metrics.json").unlink()
    with pytest.raises(PromptTuneError, match=r"runs/fewglue.CB/pt/seed2/metrics.json: missing"):
        write_aggregate(load_params(project / "params.yaml"), project / "results", root=project)
    assert not (project / "results" / "summary.csv").exists()


def test_the_rendered_report_opens_in_a_headless_browser_without_errors(project: Path) -> None:
    from browser import ARTIFACTS, open_page, require_chromium

    require_chromium()
    params = load_params(project / "params.yaml")
    write_aggregate(params, project / "results", root=project)
    out = render_report(params, project / "results", project / "reports" / "default.html", root=project)
    page = open_page(out, ARTIFACTS / "report" / "default.png")
    assert page.console_errors == []
    for section in ("claims", "results", "stability", "convergence", "landscapes", "mi-checks", "problems",
                    "cost", "method-details"):  # fmt: skip
        assert f'id="{section}"' in page.dom
    assert 'id="provenance"' in page.dom
    assert page.dom.count("<img") == 6 and page.dom.count('src="data:image/png;base64,') == 6
    assert page.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
