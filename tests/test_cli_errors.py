"""Bad input through the real console script: one line on stderr naming the culprit, exit 2, nothing
half-written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prompttune.data import fetch
from prompttune.splits import required_files

ROOT = Path(__file__).resolve().parents[1]
PROMPTTUNE = str(Path(sys.executable).parent / "prompttune")


def prompttune(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [PROMPTTUNE, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_backbone: str) -> Path:
    """A project folder with the smoke profile on the tiny backbone and CB's files fetched, made once."""
    folder = tmp_path_factory.mktemp("template")
    for name in ("params.yaml", "profiles.yaml"):
        shutil.copy(ROOT / name, folder / name)
    assert prompttune(["profile", "smoke"], folder).returncode == 0
    with (folder / "params.yaml").open("a") as params:
        params.write(f"run: {{backbone: {tiny_backbone}}}\n")  # an override of the profile's
    fetch(required_files("fewglue", "CB"), folder / "data" / "fewglue.CB", mirror=mirror)
    return folder


@pytest.fixture
def project(tmp_path: Path, template: Path) -> Path:
    """Each test's own copy of the template: tests write runs, configs and broken files into it."""
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_a_good_run_exits_zero(project: Path) -> None:
    proc = prompttune(["train", "--cell", "fewglue.CB", "--method", "pt2", "--seed", "1"], project)
    assert proc.returncode == 0, proc.stderr
    assert (project / "runs/fewglue.CB/pt2/seed1/metrics.json").is_file()


def test_a_stage_config_trains_every_seed_and_writes_its_headline(project: Path) -> None:
    proc = prompttune(["train", "--config", "configs/train/fewglue.CB/head.json"], project)
    assert proc.returncode == 0, proc.stderr
    headline = json.loads((project / "metrics/train/fewglue.CB/head.json").read_text())
    runs = [json.loads((project / f"runs/fewglue.CB/head/seed{s}/metrics.json").read_text()) for s in (1, 2)]
    scores = [100 * run["report"]["score"] for run in runs]
    assert headline["report"]["mean"] == pytest.approx(sum(scores) / 2, abs=0.01) and headline["runs"] == 2
    assert set(headline) == {"report", "select", "runs", "failed", "collapsed", "converged"}
    assert (
        (project / "metrics/curves/fewglue.CB/head.csv")
        .read_text()
        .startswith("step,select_score,train_loss")
    )
    assert "runs/fewglue.CB/head/seed1: " in proc.stdout


def test_progress_lines_follow_the_verbosity(project: Path) -> None:
    loud = prompttune(["train", "--cell", "fewglue.CB", "--method", "head", "--seed", "1"], project)
    assert "fewglue.CB/head seed 1: step 2/4" in loud.stderr and "stage ETA ≤" in loud.stderr
    quiet = prompttune(["-q", "train", "--cell", "fewglue.CB", "--method", "head", "--seed", "1"], project)
    assert quiet.returncode == 0 and quiet.stderr == ""
    version = prompttune(["--version"], project)
    assert version.returncode == 0 and version.stdout.startswith("prompttune ")
    usage = prompttune(["--help"], project)
    assert "``" not in usage.stdout and "configure" in usage.stdout


def test_out_names_the_folder_it_wrote(project: Path) -> None:
    proc = prompttune(
        ["train", "--cell", "fewglue.CB", "--method", "head", "--seed", "1", "--out", "mine"], project
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("mine: ") and (project / "mine" / "metrics.json").is_file()
    assert not (project / "metrics").exists(), "one seed of the stage is no headline"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "give --config FILE or FOLDER, or --cell and --method"),
        (
            ["--config", "configs/train/fewglue.CB/head.json", "--cell", "fewglue.CB"],
            "--config names the stage",
        ),
        (
            ["--cell", "fewglue.CB", "--method", "head", "--seed", "1", "--seed", "2", "--out", "elsewhere"],
            "--out",
        ),
        (["--cell", "fewglue.CB", "--method", "head", "--seed", "1", "--seed", "1"], "repeated seed"),
        (["--config", "configs/train/nothing.json"], "configs/train/nothing.json"),
        (["--config", "configs/train", "--seed", "1"], "a folder trains each stage's own seeds"),
        (["--config", "configs/train/fewglue.CB/head.json", "--prune"], "--prune goes with --config FOLDER"),
        (
            ["--config", "configs/train", "--prune"],
            "data/fewshot-64.SST-2: not found; run `prompttune fetch`",
        ),
        (["--cell", "fewglue.RTE", "--method", "head"], "the grid has no stage fewglue.RTE/head"),
    ],
)
def test_train_flags_that_do_not_go_together_fail_clearly(
    project: Path, args: list[str], fragment: str
) -> None:
    proc = prompttune(["train", *args], project)
    assert_one_line_error(proc, fragment)
    assert not (project / "runs").exists() and not (project / "elsewhere").exists()


def test_fetch_without_a_cell_fetches_every_cell_of_the_grid_and_checks_the_list(project: Path) -> None:
    proc = prompttune(["fetch"], project)  # configs/cells.json: the smoke grid's two cells
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == [
        "data/fewglue.CB",
        "data/fewshot-64.SST-2",
    ]
    assert (project / "data/fewshot-64.SST-2/MANIFEST.json").is_file()
    (project / "configs/cells.json").write_text('{"fewglue.CB": 1}\n')
    assert_one_line_error(prompttune(["fetch"], project), "configs/cells.json: expected a list of cells")


def test_a_report_without_results_is_a_one_line_error(project: Path) -> None:
    proc = prompttune(["report", "--results", "/nonexistent"], project)
    assert_one_line_error(proc, "/nonexistent/runs.csv")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--cell", "fewglue.XYZ", "--method", "pt2", "--seed", "1"], ["unknown task 'XYZ'", "known: BoolQ"]),
        (
            ["--cell", "fewglue.CB", "--method", "pt3", "--seed", "1"],
            ["unknown prompt base 'pt3'", "head, pt, pt2"],
        ),
        (["--cell", "fewglue.CB", "--method", "pt2-magic", "--seed", "1"], ["unknown objective 'magic'"]),
        (["--cell", "fewsome.CB", "--method", "pt2", "--seed", "1"], ["fewsome"]),
        (["--cell", "fewglue.SST-2", "--method", "pt2", "--seed", "1"], ["SST-2"]),
    ],
)
def test_unknown_names_fail_clearly(project: Path, args: list[str], fragments: list[str]) -> None:
    proc = prompttune(["train", *args], project)
    assert_one_line_error(proc, *fragments)
    assert not (project / "runs").exists()


def test_malformed_jsonl_names_file_and_line(project: Path) -> None:
    train = project / "data/fewglue.CB/FewGLUE/CB/train.jsonl"
    lines = train.read_text().splitlines()
    lines[2] = lines[2][:40]
    train.write_text("\n".join(lines) + "\n")
    proc = prompttune(["train", "--cell", "fewglue.CB", "--method", "pt2", "--seed", "1"], project)
    assert_one_line_error(proc, f"{train.relative_to(project)}:3")
    assert not (project / "runs").exists()


def test_missing_field_names_the_field_and_line(project: Path) -> None:
    dev = project / "data/fewglue.CB/FewGLUE_32dev/CB/dev32.jsonl"
    lines = dev.read_text().splitlines()
    lines[4] = lines[4].replace('"hypothesis"', '"hypothesys"')
    dev.write_text("\n".join(lines) + "\n")
    proc = prompttune(["train", "--cell", "fewglue.CB", "--method", "pt2", "--seed", "1"], project)
    assert_one_line_error(proc, "dev32.jsonl:5", "hypothesis")


def test_missing_label_names_the_file_and_example(project: Path) -> None:
    train = project / "data/fewglue.CB/FewGLUE/CB/train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    del rows[3]["label"]
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    proc = prompttune(["train", "--cell", "fewglue.CB", "--method", "pt2", "--seed", "1"], project)
    assert_one_line_error(proc, "train.jsonl", f"train-{rows[3]['idx']}' has no label")
    assert not (project / "runs").exists()


def test_corrupted_data_file_fails_the_checksum_before_training(project: Path) -> None:
    val = project / "data/fewglue.CB/SuperGLUE/CB/val.jsonl"
    val.write_text(val.read_text().replace("entailment", "contradiction", 1))
    proc = prompttune(["train", "--cell", "fewglue.CB", "--method", "pt2", "--seed", "1"], project)
    assert_one_line_error(proc, "checksum mismatch", "SuperGLUE/CB/val.jsonl")
    assert not (project / "runs").exists()


def test_missing_mirror_offline_fails_clearly(tmp_path: Path) -> None:
    proc = prompttune(
        ["fetch", "--cell", "fewglue.CB"], tmp_path, PROMPTTUNE_DATA_MIRROR=str(tmp_path / "no-such-mirror")
    )
    assert_one_line_error(proc, "no-such-mirror")
    assert not (tmp_path / "data/fewglue.CB/FewGLUE").exists()


def test_unknown_profile_fails_clearly(tmp_path: Path) -> None:
    for name in ("params.yaml", "profiles.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    proc = prompttune(["profile", "huge"], tmp_path)
    assert_one_line_error(proc, "profiles.yaml", "unknown profile 'huge'")


def test_invalid_params_value_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("profile: fixed\ngrid: {seeds: []}\n")  # an override
    shutil.copy(ROOT / "profiles.yaml", tmp_path / "profiles.yaml")
    proc = prompttune(["grid"], tmp_path)
    assert_one_line_error(proc, "params.yaml", "grid: seeds must not be empty")


def test_a_typo_in_an_option_key_fails_before_any_work(tmp_path: Path) -> None:
    override = "run: {objectives: {ptp-rn-emb: {sigmaa: 0.05}}}\n"
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text() + override)
    shutil.copy(ROOT / "profiles.yaml", tmp_path / "profiles.yaml")
    proc = prompttune(["configure"], tmp_path)
    assert_one_line_error(proc, "params.yaml", "run.objectives.ptp-rn-emb.sigmaa: unknown key")
    assert not (tmp_path / "configs").exists()
