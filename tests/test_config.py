"""params.yaml: validation with one-line errors, grid expansion, per-task overrides, profile switching."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from prompttune.cli import app
from prompttune.config import (
    Cell,
    expand_grid,
    load_params,
    resolve_run,
    split_cell,
    split_method,
)
from prompttune.errors import PromptTuneError

ROOT = Path(__file__).resolve().parents[1]


def write_params(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    mutate(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_committed_params_are_valid_and_the_active_block_is_the_named_profile() -> None:
    params = load_params(ROOT / "params.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw["grid"] == raw["profiles"][raw["profile"]]["grid"]
    assert raw["run"] == raw["profiles"][raw["profile"]]["run"]
    assert raw["studies"] == raw["profiles"][raw["profile"]]["studies"]
    assert set(params.profiles) >= {"default", "paper", "smoke"}


def test_grid_expands_to_the_main_grid_then_the_variant_runs() -> None:
    params = load_params(ROOT / "params.yaml")
    runs = expand_grid(params)
    g, v = params.grid, params.grid.variants
    n_main = len(g.cells) * len(g.methods) * len(g.seeds)
    assert n_main == 2 * 10 * 3
    assert len(runs) == n_main + len(v.cells) * len(v.methods) * len(v.names) * len(v.seeds) == 72
    assert len({r.run_dir for r in runs}) == len(runs)
    assert runs[0] == Cell(*split_cell(g.cells[0]), g.methods[0], g.seeds[0])
    assert runs[0].run_dir == Path("runs") / g.cells[0] / g.methods[0] / f"seed{g.seeds[0]}"
    first_variant = runs[n_main]
    assert first_variant == Cell(*split_cell(v.cells[0]), v.methods[0], v.seeds[0], v.names[0])
    assert (
        first_variant.run_dir
        == Path("runs") / v.cells[0] / f"{v.methods[0]}@{v.names[0]}" / f"seed{v.seeds[0]}"
    )


def test_a_variant_overrides_the_run_block_after_the_task() -> None:
    params = load_params(ROOT / "params.yaml")
    plain = resolve_run(params, Cell("fewshot-256", "SST-2", "pt", 1))
    vocab = resolve_run(params, Cell("fewshot-256", "SST-2", "pt", 1, "init-vocab"))
    assert (plain.prompt.init, vocab.prompt.init) == ("random", "vocab")
    assert vocab.variant == "init-vocab" and plain.variant is None
    assert dataclasses.replace(vocab, prompt=plain.prompt, variant=None) == plain
    assert vocab.train.steps == params.run.tasks["SST-2"]["train"]["steps"] != params.run.train.steps, (
        "the task's override still applies"
    )


def test_a_variant_can_set_objective_options(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    assert CliRunner().invoke(app, ["profile", "ptp-sensitivity", "--params", str(path)]).exit_code == 0
    params = load_params(path)
    cell = Cell("fewglue", "CB", "pt-ptp-rn-emb", 1)
    assert resolve_run(params, cell).objective_options == {}
    assert resolve_run(params, dataclasses.replace(cell, variant="sigma-0.2")).objective_options == {
        "sigma": 0.2
    }
    lam = resolve_run(params, dataclasses.replace(cell, method="pt-ptp-adv-text", variant="lambda-2"))
    assert lam.objective_options == {"weight": 2.0}


def test_grid_command_lists_every_run_folder() -> None:
    result = CliRunner().invoke(app, ["grid", "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 0, result.output
    expected = [str(cell.run_dir) for cell in expand_grid(load_params(ROOT / "params.yaml"))]
    assert result.output.splitlines() == expected


def test_task_overrides_apply_to_that_task_only() -> None:
    params = load_params(ROOT / "params.yaml")
    sst2 = resolve_run(params, Cell("fewshot-256", "SST-2", "pt2", 1))
    cb = resolve_run(params, Cell("fewglue", "CB", "pt2", 1))
    assert sst2.train.steps == 32 and sst2.train.eval_every == 8
    assert cb.train.steps == 24 and cb.train.eval_every == 6 and cb.train.batch_size == 8
    assert sst2.train.lr == cb.train.lr == 0.01


def test_paper_profile_carries_p_tuning_v2_hyper_parameters(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    result = CliRunner().invoke(app, ["profile", "paper", "--params", str(path)])
    assert result.exit_code == 0, result.output
    params = load_params(path)
    assert params.profile == "paper" and params.run.backbone == "roberta-large"
    rte = resolve_run(params, Cell("superglue", "RTE", "pt2", 1))
    assert (rte.train.batch_size, rte.train.lr, rte.train.epochs, rte.prompt.length) == (32, 0.005, 100, 128)
    copa = resolve_run(params, Cell("superglue", "COPA", "pt2", 1))
    assert (copa.train.batch_size, copa.train.lr, copa.train.epochs, copa.prompt.length) == (
        16,
        0.009,
        120,
        8,
    )
    assert rte.train.backbone_dropout is True and rte.head.pooling == "cls"
    assert len(params.grid.seeds) == 5
    assert "# prompttune grid definition" in path.read_text(), "comments must survive a profile switch"


def test_method_names_split_into_base_and_objective() -> None:
    assert split_method("pt2") == ("pt2", "ce")
    assert split_method("head") == ("head", "ce")
    assert split_method("pt-infoprompt-head") == ("pt", "infoprompt-head")
    assert split_cell("fewshot-256.SST-2") == ("fewshot-256", "SST-2")
    with pytest.raises(PromptTuneError, match="must look like"):
        split_cell("CB")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["run"]["train"].update(stpes=3), r"run\.train\.stpes: unknown key"),
        (lambda d: d["run"]["train"].update(steps=-5), r"run\.train: steps must be ≥ 1"),
        (lambda d: d["run"]["train"].update(lr="fast"), r"run\.train\.lr: expected a number"),
        (
            lambda d: d["run"]["train"].update(backbone_dropout="yes"),
            r"backbone_dropout: expected true or false",
        ),
        (lambda d: d["run"]["head"].update(pooling="max"), r"run\.head\.pooling: 'max' is not one of"),
        (lambda d: d["grid"].update(seeds=[]), r"grid: seeds must not be empty"),
        (lambda d: d["grid"].update(seeds=[1, 1]), r"grid: seeds has duplicates"),
        (lambda d: d["grid"].pop("methods"), r"grid\.methods: missing required key"),
        (lambda d: d["grid"].update(cells=["CB"]), r"must look like '<setting>\.<task>'"),
        (lambda d: d.update(grdi={}), r"grdi: unknown key"),
        (
            lambda d: d["profiles"]["paper"]["run"]["train"].update(steps=0),
            r"profiles\.paper\.run\.train: steps",
        ),
        (
            lambda d: d["run"]["tasks"].update({"CB": {"train": {"lr": -1}}}),
            r"run\.tasks\.CB\.train: lr must be",
        ),
        (
            lambda d: d["run"]["variants"].update({"bad": {"prompt": {"lenght": 3}}}),
            r"run\.variants\.bad\.prompt\.lenght",
        ),
        (
            lambda d: d["grid"]["variants"].update(names=["init-nope"]),
            r"grid\.variants\.names: 'init-nope' is not in",
        ),
        (
            lambda d: d["grid"]["variants"].update(cells=["fewglue.RTE"]),
            r"grid\.variants\.cells: 'fewglue\.RTE'",
        ),
        (
            lambda d: d["studies"]["landscape"].update(methods=["pt2-ptp-rn-emb"]),
            r"studies\.landscape\.methods: 'pt2-ptp-rn-emb' is not in",
        ),
        (lambda d: d["studies"]["landscape"].update(points=10), r"studies\.landscape: points must be odd"),
        (lambda d: d["studies"]["mi_check"].update(cell="fewglue.RTE"), r"studies\.mi_check\.cell"),
        (lambda d: d.pop("studies"), r"studies: missing required key"),
        (
            lambda d: d["profiles"]["smoke"].pop("studies"),
            r"profiles\.smoke: expected a mapping with exactly",
        ),
    ],
)
def test_invalid_params_fail_with_the_file_and_key(tmp_path: Path, mutate, message: str) -> None:
    path = write_params(tmp_path, mutate)
    with pytest.raises(PromptTuneError, match=message) as info:
        params = load_params(path)
        for cell in expand_grid(params):
            resolve_run(params, cell)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("grid:\n  cells: [fewglue.CB\nrun: {}\n")
    with pytest.raises(PromptTuneError, match=rf"{path}:\d+: invalid YAML"):
        load_params(path)


def test_unknown_profile_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    before = path.read_text()
    with pytest.raises(
        PromptTuneError,
        match="unknown profile 'gpu'; known: cpu-long, default, paper, ptp-sensitivity, smoke",
    ):
        CliRunner().invoke(app, ["profile", "gpu", "--params", str(path)], catch_exceptions=False)
    assert path.read_text() == before
