"""Aggregation and the report on hand-made run records with known means and deviations: the typed runs
table, collapsed runs counted and failed ones left out, each stage's own settings on the page, escaping,
and the page in a headless browser (sorting, filtering, the per-seed view)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prompttune.aggregate import write_aggregate
from prompttune.claims import claim_rows
from prompttune.config import load_params
from prompttune.errors import PromptTuneError
from prompttune.pipeline import configure, read_grid_record
from prompttune.report import render_report
from prompttune.results import (
    RUN_COLUMNS,
    SCHEMA_VERSION,
    Convergence,
    DataInfo,
    ObjectiveInfo,
    Precision,
    RunMetrics,
    SplitResult,
    read_runs,
)

ROOT = Path(__file__).resolve().parents[1]
SCORES = {  # stage → report score per seed 1, 2, 3 (fractions); None: failed; negative: collapsed
    "fewglue.CB/head": [0.50, 0.60, 0.70],
    "fewglue.CB/pt": [0.40, 0.40, 0.40],
    "fewglue.CB/pt2": [0.62, None, 0.66],
    "fewshot-256.SST-2/head": [0.55, 0.65, 0.60],
    "fewshot-256.SST-2/pt": [0.51, 0.52, 0.53],
    "fewshot-256.SST-2/pt2": [0.70, 0.72, -0.50],
    "fewglue.CB/pt/init-vocab": [0.45, 0.47],
}
CURVE = (
    "step,train_loss,lr,select_score,elapsed_s\n"
    "0,,0,0.30,0\n10,1.0,0.01,0.50,1\n20,0.9,0.01,0.56,2\n30,0.8,0,0.60,3\n"
)
SHARPNESS = {1: 0.25, 2: 0.75}  # landscape study: pt, seeds 1 and 2


def small_grid(data: dict) -> None:
    """The default profile with a grid small enough to write by hand; SST-2 trains 7 steps."""
    data["grid"] = {
        "seeds": [1, 2, 3],
        "blocks": {
            "main": {"cells": ["fewglue.CB", "fewshot-256.SST-2"], "methods": ["head", "pt", "pt2"]},
            "init": {"cells": ["fewglue.CB"], "methods": ["pt"], "variants": ["init-vocab"], "seeds": [1, 2]},
        },
    }
    data["run"]["tasks"] = {"SST-2": {"train": {"steps": 7}}}
    data["studies"]["landscape"].update(
        cells=["fewglue.CB", "fewshot-256.SST-2"], methods=["pt"], seeds=[1, 2]
    )
    data["studies"]["mi_check"]["cell"] = "fewglue.CB"


def split(name: str, score: float) -> SplitResult:
    return SplitResult(name, 10, score, {"acc": score}, {"a": 1.0}, majority_score=0.4)


def write_runs(root: Path) -> None:
    grid = read_grid_record(root / "configs" / "grid.json")
    from prompttune.config import read_stage_config

    for stage in grid.stages:
        config = read_stage_config(root / stage.config)
        for run in config.runs():
            value = SCORES[stage.key][run.seed - 1]
            status = "failed" if value is None else "collapsed" if value < 0 else "ok"
            score = None if value is None else abs(value)
            metrics = RunMetrics(
                schema_version=SCHEMA_VERSION,
                status=status,  # type: ignore[arg-type]
                reason={"failed": "non-finite loss nan at step 3", "collapsed": "never above majority"}.get(
                    status
                ),
                config=run,
                objective=ObjectiveInfo("ce", "ce", None),
                task_version=1,
                device="cpu",
                precision=Precision("fp32", "set in run.train.precision"),
                select=None if score is None else split("dev32", score),
                report=None if score is None else split("val", score),
                selected_step=None if score is None else 10,
                steps=30,
                step_cap=run.train.steps,
                eval_every=10,
                convergence=None if score is None else Convergence("rule", True, 30, status == "ok", 0.15),
                data=DataInfo({"train": 32}, {"train": 0}, {"train": 0}),
                trainable_params=100,
                wall_time_s=1.0,
                train_time_s=1.0,
                train_examples_per_s=16.0,
                peak_memory_mb=100.0,
            )
            run_dir = root / stage.dir / f"seed{run.seed}"
            run_dir.mkdir(parents=True)
            (run_dir / "metrics.json").write_text(json.dumps(dataclasses.asdict(metrics)))
            (run_dir / "curve.csv").write_text(CURVE)
            provenance = {
                "git_revision": "abc",
                "packages": {"torch": "2.13.0"},
                "hardware": {
                    "processor": "cpu",
                    "cpu_count": 2,
                    "torch_threads": 2,
                    "python": "3.11",
                    "torch_cpu_capability": "AVX2",
                    "cpu_flags": "avx2",
                },
                "data_sha256": {f"{run.task}/val": "0" * 64},
            }
            (run_dir / "provenance.json").write_text(json.dumps(provenance))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    default = yaml.safe_load((ROOT / "profiles.yaml").read_text())["default"]
    data = {key: default[key] for key in ("grid", "run", "studies")}  # a grid of its own, no profile
    small_grid(data)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copy(ROOT / "profiles.yaml", tmp_path / "profiles.yaml")
    configure(load_params(tmp_path / "params.yaml"), tmp_path)
    write_runs(tmp_path)
    for cell, values in (("fewglue.CB", SHARPNESS), ("fewshot-256.SST-2", {1: 1.0, 2: 1.0})):
        for seed, value in values.items():
            surface = tmp_path / f"results/landscape/{cell}/pt/seed{seed}/surface.json"
            surface.parent.mkdir(parents=True)
            losses = [[1.0 + value, 1.0 + value / 2, 1.0 + value]] * 3
            grid = {"axis": [-0.2, 0.0, 0.2], "losses": losses, "radius": 0.2, "points": 3, "rho": 0.1}
            surface.write_text(json.dumps({**grid, "sharpness": value}))
    return tmp_path


def aggregate(project: Path) -> pd.DataFrame:
    return write_aggregate(
        read_grid_record(project / "configs" / "grid.json"), project / "results", root=project
    )


def test_means_count_collapsed_runs_and_leave_failed_ones_out(project: Path) -> None:
    row = aggregate(project).set_index(["setting", "task", "method", "variant"])
    head = row.loc["fewglue", "CB", "head", ""]
    assert head["mean"] == pytest.approx(60.0) and head["sd"] == pytest.approx(10.0) and head["n"] == 3
    pt2 = row.loc["fewglue", "CB", "pt2", ""]
    assert pt2["mean"] == pytest.approx(64.0) and (pt2["n"], pt2["runs"], pt2["failed"]) == (2, 3, 1)
    sst = row.loc["fewshot-256", "SST-2", "pt2", ""]
    assert sst["mean"] == pytest.approx(64.0) and (sst["n"], sst["collapsed"]) == (3, 1), "collapsed counts"
    assert row.loc["fewglue", "CB", "pt", "init-vocab"]["mean"] == pytest.approx(46.0)


def test_the_runs_table_has_its_declared_typed_schema(project: Path) -> None:
    aggregate(project)
    runs = read_runs(project / "results" / "runs.csv")
    assert list(runs.columns) == RUN_COLUMNS and len(runs) == 20
    assert (
        runs["seed"].dtype == "int64" and runs["converged"].dtype == bool and runs["variant"].dtype == object
    )
    assert (runs["status"] == "failed").sum() == 1 and math.isnan(
        runs[runs["status"] == "failed"]["report_score"].iloc[0]
    )
    pt = runs[(runs["task"] == "CB") & (runs["method"] == "pt") & (runs["variant"] == "")]
    assert pt["sharpness"].tolist()[:2] == [0.25, 0.75] and math.isnan(pt["sharpness"].tolist()[2])
    assert set(runs["learning_area"].dropna()) == {15.0}, "in points, like the scores"
    curves = pd.read_csv(project / "results" / "curves.csv")
    assert len(curves) == 4 * 20 and curves["select_score"].max() == pytest.approx(60.0), "points"
    broken = project / "results" / "broken.csv"
    broken.write_text(runs.drop(columns=["family"]).to_csv(index=False))
    with pytest.raises(
        PromptTuneError, match=r"broken\.csv: columns differ from the schema \(missing \['family'\]"
    ):
        read_runs(broken)


def test_a_missing_run_is_an_error_naming_it(project: Path) -> None:
    (project / "runs/fewglue.CB/pt/seed2/metrics.json").unlink()
    with pytest.raises(PromptTuneError, match=r"runs/fewglue.CB/pt/seed2/metrics.json: missing"):
        aggregate(project)
    assert not (project / "results" / "summary.csv").exists()


def render(project: Path) -> Path:
    aggregate(project)
    grid = read_grid_record(project / "configs" / "grid.json")
    return render_report(grid, project / "results", project / "reports" / "default.html", root=project)


def test_report_has_every_section_and_each_stages_own_settings(project: Path) -> None:
    html = render(project).read_text()
    assert "60.0 ± 10.0" in html and "64.0 ± 2.8" in html
    results = html.split('<section id="results">')[1].split("</section>")[0]
    assert "n = 2 of 3 (1 failed)" in results and "n = 3 of 3 (1 collapsed)" in results
    assert "<td><code>init-vocab</code></td>" in results
    convergence = html.split('<section id="convergence">')[1].split("</section>")[0]
    assert "<td>15.0 ± 0.0</td>" in convergence, "the learning-curve area in points"
    assert "fewglue.CB / pt2 / seed 2</code>: non-finite loss" in html
    for section in (
        "claims",
        "results",
        "stability",
        "convergence",
        "landscapes",
        "mi-checks",
        "runs",
        "problems",
        "cost",
        "method-details",
    ):
        assert f'<section id="{section}">' in html
    details = html.split('<section id="method-details">')[1].split("</section>")[0]
    steps_row = next(line for line in details.splitlines() if "<code>train.steps</code>" in line)
    default_steps = load_params(project / "params.yaml").run.train.steps
    assert f"<code>{default_steps}</code>" in steps_row and "<code>7</code>" in steps_row, (
        "CB and SST-2 differ"
    )
    assert "http://" not in html and "https://" not in html, "the report must not load anything"


def test_the_same_results_give_the_same_page_but_for_its_generation_time(project: Path) -> None:
    """The report is a hashed output: its figures carry no date and no random ids."""
    first = render(project).read_text()
    time.sleep(1.1)  # the figures' metadata dates had a resolution of microseconds
    second = render(project).read_text()
    generated = re.compile(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d UTC")
    assert "data:image/svg+xml" in first and generated.search(first)
    assert generated.sub("", first) == generated.sub("", second)


def test_the_report_escapes_what_it_shows(project: Path) -> None:
    html = render(project).read_text()
    assert "[CLS]/&lt;s&gt;" in html and "[CLS]/<s>" not in html, "a help text's <s> is text, not markup"


def test_the_report_works_in_a_headless_browser(project: Path) -> None:
    from browser import ARTIFACTS, open_page, require_chromium

    require_chromium()
    out = render(project)
    script = """(async () => {
      const table = document.getElementById("run-table");
      const column = [...table.tHead.rows[0].cells].findIndex(th => th.textContent === "report");
      const scores = () => [...table.tBodies[0].rows].map(r => r.cells[column].textContent);
      const before = scores();
      table.tHead.rows[0].cells[column].click();
      const ascending = scores();
      table.tHead.rows[0].cells[column].click();
      const descending = scores();
      const input = document.querySelector('input[data-filter="run-table"]');
      input.value = "SST-2 pt2"; input.dispatchEvent(new Event("input"));
      const shown = [...table.tBodies[0].rows].filter(r => !r.hidden).length;
      const link = table.tBodies[0].rows[0].querySelector("a").getAttribute("href");
      const help = document.body.innerText.includes("[CLS]/<s>");
      const struck = document.querySelectorAll("s").length;
      return {before, ascending, descending, shown, link, help, struck};
    })()"""
    page = open_page(out, ARTIFACTS / "report" / "aggregate.png", script=script)
    assert page.console_errors == []
    value = page.value
    numbers = [float(v) for v in value["ascending"] if v != "—"]
    assert numbers == sorted(numbers) and value["ascending"] != value["before"]
    assert [float(v) for v in value["descending"] if v != "—"] == sorted(numbers, reverse=True)
    assert value["shown"] == 3, "the filter keeps SST-2's three pt2 seeds"
    assert value["link"].startswith("../runs/"), "each run links to its folder"
    assert value["help"] and value["struck"] == 0, "<s> shows as text and strikes nothing through"
    assert page.dom.count("<img") >= 5 and page.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_claims_table_reads_at_a_glance(project: Path) -> None:
    """The verdict summary above the table, the verdict right after the claim, natural sorting by id
    ("IP-…" before "PTP-…", "PTP-2" before "PTP-10") and by verdict (not by the numbers in its reason), and
    at phone width (390 px) each claim is a card: the claims table does not overflow the screen."""
    from browser import ARTIFACTS, open_page, require_chromium

    require_chromium()
    out = render(project)
    script = """(async () => {
      const table = document.getElementById("claims-table");
      const header = [...table.tHead.rows[0].cells].map(th => th.textContent);
      const column = name => header.indexOf(name);
      const values = name => [...table.tBodies[0].rows].map(r => r.cells[column(name)].dataset.sort
        ?? r.cells[column(name)].textContent.trim());
      table.tHead.rows[0].cells[column("claim")].click();
      const ids = values("claim");
      table.tHead.rows[0].cells[column("verdict")].click();
      const verdicts = values("verdict");
      const summary = document.querySelector("p.summary").textContent;
      const forest = document.getElementById("forest");
      const forestShown = !forest || (forest.complete && forest.naturalWidth > 0
        && forest.getBoundingClientRect().right <= document.documentElement.clientWidth);
      const overflow = table.getBoundingClientRect().right - document.documentElement.clientWidth;
      return {header, ids, verdicts, summary, overflow, forestShown,
              pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth};
    })()"""
    page = open_page(out, ARTIFACTS / "report" / "claims-390px.png", width=390, height=1600, script=script)
    assert page.console_errors == []
    value = page.value
    assert value["header"][:2] == ["claim", "verdict"]
    collator = sorted(value["ids"], key=lambda c: (c.split("-")[0], int(c.split("-")[1])))
    assert value["ids"] == collator, value["ids"]
    assert value["verdicts"] == sorted(value["verdicts"]), "sorted by the verdict, not its reason's numbers"
    rows = claim_rows(read_runs(project / "results" / "runs.csv"), None)
    assert value["summary"].startswith(f"{len(rows)} claim rows:")
    assert value["overflow"] <= 0 and value["pageOverflow"] <= 0, value
    assert value["forestShown"], "the forest plot, where there is one, loads and fits the screen"


def test_the_terminal_gets_the_verdicts_as_the_page_has_them(project: Path) -> None:
    from prompttune.report import verdict_lines

    render(project)
    claims = pd.read_csv(project / "results" / "claims.csv", keep_default_na=False)
    lines = verdict_lines(project / "results" / "claims.csv")
    assert lines[0].split() == ["claim", "scope", "verdict", "measured"] and len(lines) == len(claims) + 1
    for line, row in zip(lines[1:], claims.itertuples(), strict=True):
        assert line.startswith(row.id) and f"  {row.verdict}" in line and line.endswith(row.measured)


def test_the_forest_plot_shows_every_measured_claim_in_units_of_its_reference() -> None:
    import base64

    from prompttune import figures
    from prompttune.claims import ClaimRow

    def row(claim: str, verdict: str, forest: tuple[float, float, float]) -> ClaimRow:
        return ClaimRow(claim, "", "", "", "", "", "", "", verdict, "", "", "", "s", "pt", forest=forest)

    rows = [
        row("PTP-2", "reproduced", (2.0, 1.2, 2.8)),
        row("IP-1", "below reference", (0.2, -0.2, 0.6)),
        row("IP-5", "reproduced", (math.nan, math.nan, math.nan)),
    ]
    uri = figures.forest(rows)
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert "PTP-2 (s/pt)" in svg and "IP-1 (s/pt)" in svg and "IP-5" not in svg
    assert figures.VERDICT_COLOURS["reproduced"].lstrip("#") in svg.lower()
    assert figures.forest(rows[2:]) == "", "nothing to show: no figure"
