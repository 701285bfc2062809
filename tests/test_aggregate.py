"""Aggregation and the minimal report on hand-made run results with known means and deviations."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

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
}


def split(name: str, score: float) -> SplitResult:
    return SplitResult(name, 10, score, {"acc": score}, {"a": 1.0}, majority_score=0.5)


def write_runs(root: Path) -> None:
    params = load_params(root / "params.yaml")
    for cell in expand_grid(params):
        score = SCORES[cell.cell, cell.method][cell.seed - 1]
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
        provenance = {
            "git_revision": "abc",
            "packages": {"torch": "2.13.0"},
            "hardware": {"processor": "cpu", "cpu_count": 2, "torch_threads": 2, "python": "3.11"},
            "data_sha256": {f"{cell.task}/val": "0" * 64},
        }
        (run_dir / "provenance.json").write_text(json.dumps(provenance))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    write_runs(tmp_path)
    return tmp_path


def test_means_and_std_over_ok_runs_with_failed_runs_counted(project: Path) -> None:
    summary = write_aggregate(load_params(project / "params.yaml"), project / "results", root=project)
    row = summary.set_index(["setting", "task", "method"])
    head = row.loc["fewglue", "CB", "head"]
    assert head["mean"] == pytest.approx(60.0) and head["std"] == pytest.approx(10.0)
    assert (head["n_ok"], head["n_runs"]) == (3, 3)
    pt = row.loc["fewglue", "CB", "pt"]
    assert pt["std"] == pytest.approx(0.0)
    pt2 = row.loc["fewglue", "CB", "pt2"]
    assert pt2["mean"] == pytest.approx(64.0) and pt2["std"] == pytest.approx(2 * 2**0.5)
    assert (pt2["n_ok"], pt2["n_runs"]) == (2, 3)
    runs = pd.read_csv(project / "results" / "runs.csv")
    assert len(runs) == 18 and (runs["status"] == "failed").sum() == 1
    nested = json.loads((project / "results" / "summary.json").read_text())
    assert nested["fewshot-256.SST-2"]["pt2"] == {"mean": 72.0, "std": 2.0, "n_ok": 3, "n_runs": 3}


def test_report_table_has_one_row_per_method_and_names_excluded_runs(project: Path) -> None:
    params = load_params(project / "params.yaml")
    write_aggregate(params, project / "results", root=project)
    out = render_report(params, project / "results", project / "reports" / "default.html", root=project)
    html = out.read_text()
    assert "60.0 ± 10.0" in html and "64.0 ± 2.8" in html and "72.0 ± 2.0" in html
    assert "n = 2 of 3" in html and html.count("n = 3 of 3") == 5
    results = html.split('<section id="results">')[1].split("</section>")[0]
    assert results.count("<tr><td><code>") == 6, "one row per setting × task × method"
    assert "fewglue.CB / pt2 / seed 2</code>: failed — non-finite loss" in html
    assert "<code>abc</code>" in html and "0" * 64 in html
    assert "http://" not in html and "https://" not in html, "the report must not load anything"


def test_a_missing_run_is_an_error_naming_it(project: Path) -> None:
    from prompttune.errors import PromptTuneError

    (project / "runs/fewglue.CB/pt/seed2/metrics.json").unlink()
    with pytest.raises(PromptTuneError, match=r"runs/fewglue.CB/pt/seed2/metrics.json: missing"):
        write_aggregate(load_params(project / "params.yaml"), project / "results", root=project)
    assert not (project / "results" / "summary.csv").exists()
