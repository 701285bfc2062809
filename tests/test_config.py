"""params.yaml: every name and option validated at load in one line, grid expansion into stages, the
override order, resolved configs with every default explicit, profile switching."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from prompttune.cli import app
from prompttune.config import (
    Stage,
    expand_stages,
    load_params,
    read_stage_config,
    resolve_run,
    split_cell,
    split_method,
    stage_config,
)
from prompttune.errors import PromptTuneError
from prompttune.pipeline import configure

ROOT = Path(__file__).resolve().parents[1]


def write_params(
    tmp_path: Path, mutate, profile: str | None = None, presets=lambda d: None, grid_of: str = "fixed"
) -> Path:
    """params.yaml changed by ``mutate``, with profiles.yaml beside it changed by ``presets``: ``profile``
    active with its whole grid, run and studies written out as overrides, else profile ``grid_of``'s (by
    default the fixed seeds of ``fixed``) as a grid of its own (no profile)."""
    profiles = yaml.safe_load((ROOT / "profiles.yaml").read_text())
    name = profile or grid_of
    data = {key: copy.deepcopy(profiles[name][key]) for key in ("grid", "run", "studies")}
    if profile:
        data = {"profile": profile, **data}
    mutate(data)
    presets(profiles)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump(profiles, sort_keys=False))
    return path


def test_committed_params_name_a_profile_and_override_nothing(tmp_path: Path) -> None:
    params = load_params(ROOT / "params.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    presets = yaml.safe_load((ROOT / "profiles.yaml").read_text())
    assert raw == {"profile": "default"}, (
        "the presets live in profiles.yaml; params.yaml holds overrides only"
    )
    assert set(params.profiles) >= {"default", "paper", "smoke"}
    assert params.description == presets["default"]["description"]
    written_out = load_params(write_params(tmp_path, lambda d: None, grid_of="default"))  # no profile
    assert (written_out.profile, written_out.description) == ("", "")
    assert (written_out.grid, written_out.run, written_out.studies) == (
        params.grid,
        params.run,
        params.studies,
    )


def test_overrides_in_params_merge_onto_the_profile_key_by_key(tmp_path: Path) -> None:
    shutil.copy(ROOT / "profiles.yaml", tmp_path / "profiles.yaml")
    path = tmp_path / "params.yaml"
    smoke = yaml.safe_load((ROOT / "profiles.yaml").read_text())["smoke"]
    path.write_text(
        "profile: smoke\n"
        "grid: {seeds: [1, 3], blocks: {other: {methods: [head, pt]}}}\n"
        "run: {cells: {fewglue.CB: {train: {lr: 0.5}}}}\n"
    )
    params = load_params(path)
    assert params.profile == "smoke" and params.grid.seeds == [1, 3], "a list replaces the profile's"
    other = params.grid.blocks["other"]
    assert other.methods == ["head", "pt"] and other.cells == smoke["grid"]["blocks"]["other"]["cells"]
    assert set(params.grid.blocks) == set(smoke["grid"]["blocks"]), "mappings merge: no block lost"
    cb = resolve_run(params, Stage("fewglue.CB", "pt2"), 1)
    assert cb.train.lr == 0.5 and params.run.backbone == smoke["run"]["backbone"]
    path.write_text("profile: smoke\ngrid: {seeds: one}\n")
    with pytest.raises(PromptTuneError, match=rf"^{path}: grid\.seeds"):
        load_params(path)
    path.write_text("profile: smoke\nrun: [1]\n")
    with pytest.raises(PromptTuneError, match=rf"^{path}: run: expected a mapping, got list$"):
        load_params(path)


def test_the_grid_expands_block_by_block_into_stages(tmp_path: Path) -> None:
    params = load_params(write_params(tmp_path, lambda data: None, profile="fixed"))
    stages = expand_stages(params)
    expected = [
        Stage(cell, method, variant)
        for block in params.grid.blocks.values()
        for cell in block.cells
        for method in block.methods
        for variant in block.variants or [None]
    ]
    assert [config.stage for config in stages] == expected
    assert len({s.stage.key for s in stages}) == len(stages)
    for config, block in zip(
        stages,
        [
            b
            for b in params.grid.blocks.values()
            for _ in b.cells
            for _ in b.methods
            for _ in b.variants or [None]
        ],
        strict=True,
    ):  # noqa: E501
        assert config.seeds == (block.seeds or params.grid.seeds)
        assert [run.seed for run in config.runs()] == config.seeds
    assert Stage("fewglue.CB", "pt", "init-vocab").key == "fewglue.CB/pt/init-vocab"


def overrides(data: dict) -> None:
    data["run"].update(
        settings={"fewglue": {"train": {"lr": 0.1, "steps": 7}}},
        tasks={"CB": {"train": {"lr": 0.2}}},
        cells={"fewglue.CB": {"train": {"eval_every": 3}}, "fewshot-256.SST-2": {"prompt": {"length": 5}}},
        variants={
            **data["run"]["variants"],
            "init-vocab": {"prompt": {"init": "vocab"}, "train": {"lr": 0.3}},
        },
    )


def test_overrides_apply_setting_then_task_then_cell_then_variant(tmp_path: Path) -> None:
    params = load_params(write_params(tmp_path, overrides))
    cb = resolve_run(params, Stage("fewglue.CB", "pt"), 1)
    assert (cb.train.lr, cb.train.steps, cb.train.eval_every) == (0.2, 7, 3), "task over setting, cell on top"
    sst = resolve_run(params, Stage("fewshot-256.SST-2", "pt"), 1)
    assert sst.train.lr == params.run.train.lr and sst.prompt.length == 5
    vocab = resolve_run(params, Stage("fewshot-256.SST-2", "pt", "init-vocab"), 1)
    assert (vocab.prompt.init, vocab.train.lr, vocab.prompt.length) == ("vocab", 0.3, 5)
    assert dataclasses.replace(vocab, variant=None, prompt=sst.prompt, train=sst.train) == sst


def test_resolved_configs_hold_every_objective_option_explicitly() -> None:
    params = load_params(ROOT / "params.yaml")
    rn = resolve_run(params, Stage("fewglue.CB", "pt-ptp-rn-emb"), 1)
    assert rn.objective_options == {"sigma": 0.1, "weight": 1.0}, "the σ a default run uses is in its config"
    ablation = resolve_run(params, Stage("fewshot-256.SST-2", "pt-infoprompt-head"), 1)
    assert ablation.objective_options == {"gamma": 0.1, "beta": 0.0, "clamp": None}


def test_a_variant_can_set_objective_options(tmp_path: Path) -> None:
    def sigma(data: dict) -> None:
        data["run"]["variants"]["sigma-0.2"] = {"objectives": {"ptp-rn-emb": {"sigma": 0.2}}}
        data["grid"]["blocks"]["sweep"] = {
            "cells": ["fewglue.CB"],
            "methods": ["pt-ptp-rn-emb"],
            "variants": ["sigma-0.2"],
        }  # noqa: E501

    params = load_params(write_params(tmp_path, sigma))
    swept = resolve_run(params, Stage("fewglue.CB", "pt-ptp-rn-emb", "sigma-0.2"), 1)
    assert swept.objective_options == {"sigma": 0.2, "weight": 1.0}


def test_configure_writes_one_resolved_file_per_stage_and_rewrites_only_what_changed(tmp_path: Path) -> None:
    params = load_params(ROOT / "params.yaml")
    changed = configure(params, tmp_path)
    assert len(changed) == len(list((tmp_path / "configs").rglob("*.json")))
    for config in expand_stages(params):
        written = read_stage_config(tmp_path / "configs" / "train" / f"{config.stage.key}.json")
        assert written == config
    assert configure(params, tmp_path) == []
    edited = load_params(
        write_params(
            tmp_path, lambda d: d["run"]["tasks"].setdefault("CB", {}).update(train={"lr": 0.5}), "default"
        )
    )  # noqa: E501
    changed = configure(edited, tmp_path)
    cb = {
        str(Path("configs/train") / f"{c.stage.key}.json")
        for c in expand_stages(edited)
        if c.stage.task == "CB"
    }
    assert set(changed) == cb, "only CB's stages change"
    grid = json.loads((tmp_path / "configs" / "grid.json").read_text())
    assert grid["profile"] == params.profile and len(grid["stages"]) == len(expand_stages(params))


def test_grid_command_lists_every_stage_with_its_seeds() -> None:
    result = CliRunner().invoke(app, ["grid", "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 0, result.output
    stages = expand_stages(load_params(ROOT / "params.yaml"))
    assert [line.split()[0] for line in result.output.splitlines()] == [s.stage.key for s in stages]


def test_paper_profile_carries_p_tuning_v2_hyper_parameters(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    for name in ("params.yaml", "profiles.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    result = CliRunner().invoke(app, ["profile", "paper", "--params", str(path)])
    assert result.exit_code == 0, result.output
    params = load_params(path)
    assert params.profile == "paper" and params.run.backbone == "roberta-large"
    rte = stage_config(params, Stage("superglue.RTE", "pt2")).run
    assert (rte.train.batch_size, rte.train.lr, rte.train.epochs, rte.prompt.length) == (32, 0.005, 100, 128)
    copa = stage_config(params, Stage("superglue.COPA", "pt2")).run
    assert (copa.train.batch_size, copa.train.lr, copa.train.epochs, copa.prompt.length) == (
        16,
        0.009,
        120,
        8,
    )
    assert rte.train.backbone_dropout is True and rte.head.pooling == "cls"
    assert len(params.grid.seeds) == 5
    text = path.read_text()
    assert text.startswith("# prompttune's parameters") and text.endswith("\nprofile: paper\n"), (
        "the name alone changes; comments survive"
    )
    assert (tmp_path / "configs" / "grid.json").is_file()


def test_a_profile_switch_keeps_the_overrides_and_refuses_one_the_new_profile_cannot_take(
    tmp_path: Path,
) -> None:
    shutil.copy(ROOT / "profiles.yaml", tmp_path / "profiles.yaml")
    path = tmp_path / "params.yaml"
    path.write_text("profile: fixed\nrun: {train: {lr: 0.5}}\n")
    result = CliRunner().invoke(app, ["profile", "smoke", "--params", str(path)])
    assert result.exit_code == 0 and "(its overrides of run kept)" in result.output, result.output
    params = load_params(path)
    assert params.profile == "smoke" and params.run.train.lr == 0.5
    before = "profile: fixed\nstudies: {landscape: {seeds: [5]}}\n"  # smoke's grid trains seeds 1 and 2
    path.write_text(before)
    with pytest.raises(
        PromptTuneError, match=rf"^{path}: with profile 'smoke': studies\.landscape\.seeds: .*"
    ):
        CliRunner().invoke(app, ["profile", "smoke", "--params", str(path)], catch_exceptions=False)
    assert path.read_text() == before


def test_method_names_split_into_base_and_objective() -> None:
    assert split_method("pt2") == ("pt2", "ce")
    assert split_method("head") == ("head", "ce")
    assert split_method("pt-infoprompt-head") == ("pt", "infoprompt-head")
    assert split_cell("fewshot-256.SST-2") == ("fewshot-256", "SST-2")
    with pytest.raises(PromptTuneError, match="must look like"):
        split_cell("CB")


def block(data: dict, name: str) -> dict:
    return data["grid"]["blocks"][name]


FIRST = "ptp"  # a block of the committed profile


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
        (lambda d: block(d, FIRST).pop("methods"), r"grid\.blocks\.ptp\.methods: missing required key"),
        (lambda d: block(d, FIRST).update(cells=["CB"]), r"must look like '<setting>\.<task>'"),
        (
            lambda d: block(d, FIRST).update(cells=["fewglue.CBB"]),
            r"grid\.blocks\.ptp\.cells: unknown task 'CBB'",
        ),
        (
            lambda d: block(d, FIRST).update(cells=["fewglu.CB"]),
            r"grid\.blocks\.ptp\.cells: unknown setting 'fewglu'",
        ),
        (lambda d: block(d, FIRST)["methods"].append("pt-ptp-rn-embb"), r"unknown objective 'ptp-rn-embb'"),
        (lambda d: block(d, FIRST)["methods"].append("pt3"), r"unknown prompt base 'pt3'"),
        (
            lambda d: block(d, FIRST).update(variants=["init-nope"]),
            r"grid\.blocks\.ptp\.variants: 'init-nope'",
        ),
        (
            lambda d: d["grid"]["blocks"].update(again=dict(block(d, FIRST))),
            r"fewglue\.CB/head is also in grid\.blocks",
        ),
        (lambda d: d.update(grdi={}), r"grdi: unknown key"),
        (
            lambda d: d["run"].update(objectives={"ptp-rn-embb": {"sigma": 0.05}}),
            r"run\.objectives\.ptp-rn-embb: unknown objective",
        ),  # noqa: E501
        (
            lambda d: d["run"].update(objectives={"ptp-rn-emb": {"sigmaa": 0.05}}),
            r"run\.objectives\.ptp-rn-emb\.sigmaa: unknown key",
        ),  # noqa: E501
        (
            lambda d: d["run"].update(objectives={"ptp-rn-emb": {"sigma": -1}}),
            r"run\.objectives\.ptp-rn-emb: sigma must be > 0",
        ),  # noqa: E501
        (
            lambda d: d["run"]["tasks"].update({"SST2": {"train": {"steps": 3}}}),
            r"run\.tasks\.SST2: unknown task 'SST2'",
        ),
        (lambda d: d["run"].update(settings={"fewshot": {}}), r"run\.settings\.fewshot: unknown setting"),
        (lambda d: d["run"].update(cells={"fewglue.CBB": {}}), r"run\.cells\.fewglue\.CBB: unknown task"),
        (
            lambda d: d["run"]["tasks"].update({"CB": {"train": {"lr": -1}}}),
            r"run\.tasks\.CB\.train: lr must be",
        ),
        (
            lambda d: d["run"]["tasks"].update({"CB": {"train": {"stpes": 1}}}),
            r"run\.tasks\.CB\.train\.stpes: unknown key",
        ),  # noqa: E501
        (
            lambda d: d["run"]["variants"].update({"bad": {"prompt": {"lenght": 3}}}),
            r"run\.variants\.bad\.prompt\.lenght",
        ),  # noqa: E501
        (
            lambda d: d["studies"]["landscape"].update(methods=["pt2-ptp-rn-emb"]),
            r"studies\.landscape\.methods: the grid trains no",
        ),  # noqa: E501
        (
            lambda d: d["studies"]["landscape"].update(seeds=[99]),
            r"studies\.landscape\.seeds: .* has no seed 99",
        ),
        (lambda d: d["studies"]["landscape"].update(points=10), r"studies\.landscape: points must be odd"),
        (
            lambda d: d["run"].update(tasks={"SST-2": {"train": {"micro_batch_size": 4}}}),
            r"fewshot-256\.SST-2/pt-infoprompt: train\.micro_batch_size: objective 'infoprompt' couples",
        ),
        (
            lambda d: d["studies"]["mi_check"].update(cell="fewglue.RTE"),
            r"studies\.mi_check\.cell: 'fewglue\.RTE'",
        ),
        (lambda d: d.pop("studies"), r"studies: missing required key"),
    ],
)
def test_invalid_params_fail_at_load_with_the_file_and_key(tmp_path: Path, mutate, message: str) -> None:
    path = write_params(tmp_path, mutate)
    with pytest.raises(PromptTuneError, match=message) as info:
        load_params(path)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("presets", "message"),
    [
        (lambda d: d["smoke"].pop("studies"), r"smoke: expected a mapping with exactly"),
        (lambda d: d["paper"]["run"]["train"].update(steps=0), r"paper\.run\.train: steps"),
    ],
)
def test_an_invalid_preset_fails_at_load_naming_its_file(tmp_path: Path, presets, message: str) -> None:
    path = write_params(tmp_path, lambda d: None, presets=presets)
    with pytest.raises(PromptTuneError, match=message) as info:
        load_params(path)
    assert str(info.value).startswith(f"{tmp_path / 'profiles.yaml'}: ") and "\n" not in str(info.value)


def test_a_backbone_that_cannot_run_a_method_is_refused_at_load(tmp_path: Path, tiny_albert: str) -> None:
    path = write_params(tmp_path, lambda d: d["run"].update(backbone=tiny_albert))
    with pytest.raises(PromptTuneError, match=r"grid\.blocks\.ptp: fewglue\.CB/pt2: backbone .*base 'pt2'"):
        load_params(path)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("grid:\n  seeds: [1\nrun: {}\n")
    with pytest.raises(PromptTuneError, match=rf"{path}:\d+: invalid YAML"):
        load_params(path)


def test_unknown_profile_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    for name in ("params.yaml", "profiles.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    before = path.read_text()
    known = ", ".join(sorted(yaml.safe_load((ROOT / "profiles.yaml").read_text())))
    with pytest.raises(PromptTuneError, match=f"unknown profile 'gpu'; known: {known}"):
        CliRunner().invoke(app, ["profile", "gpu", "--params", str(path)], catch_exceptions=False)
    assert path.read_text() == before


def test_under_decide_each_arm_trains_seeds_one_to_its_count_in_seeds_yaml(tmp_path: Path) -> None:
    path = write_params(tmp_path, lambda data: None, profile="default")
    pilot = {config.stage.key: config.seeds for config in expand_stages(load_params(path))}
    variants = {f"fewglue.CB/pt-ptp-{kind}" for kind in ("rn-emb", "adv-emb", "rn-text", "adv-text")}
    assert {key: seeds for key, seeds in pilot.items() if key in variants} == dict.fromkeys(variants, [1, 2])
    others = {tuple(seeds) for key, seeds in pilot.items() if key not in variants}
    assert others == {(1, 2, 3, 4)}, "the pilot: grid.decide.pilot's seeds, else the first look's"
    (tmp_path / "seeds.yaml").write_text(
        yaml.safe_dump({"seeds": {"fewglue/pt": 6, "fewshot-256/pt@variants": 10}, "rounds": []})
    )
    params = load_params(path)
    seeds = {config.stage.key: config.seeds for config in expand_stages(params)}
    assert seeds["fewglue.CB/pt"] == [1, 2, 3, 4, 5, 6]
    assert (
        seeds["fewshot-256.SST-2/pt/init-vocab"]
        == seeds["fewshot-256.SST-2/pt/init-text"]
        == list(range(1, 11))
    )
    assert seeds["fewshot-256.SST-2/pt"] == seeds["fewglue.CB/pt2"] == [1, 2, 3, 4]
    assert seeds["fewglue.CB/pt-ptp-rn-emb"] == [1, 2], "an arm seeds.yaml does not name keeps its pilot"
    configure(params, tmp_path)
    landscape = json.loads((tmp_path / "configs/landscape/fewglue.CB/pt.json").read_text())
    assert [Path(run).name for run in landscape["runs"]] == [f"seed{n}" for n in range(1, 7)]


@pytest.mark.parametrize(
    ("mutate", "seeds", "message"),
    [
        (
            lambda d: d["grid"]["blocks"]["ptp"].update(seeds=[1, 2]),
            None,
            "grid: decide: the seeds come from seeds.yaml; remove blocks.ptp.seeds",
        ),
        (lambda d: d["grid"]["decide"].update(looks=[3, 3]), None, "grid.decide: looks must increase"),
        (
            lambda d: d["studies"]["landscape"].update(seeds=[1]),
            None,
            "studies.landscape.seeds: none under grid.decide",
        ),
        (
            lambda d: d["grid"]["decide"]["pilot"].update({"fewglue/pt-ptp": 2}),
            None,
            "grid.decide.pilot: 'fewglue/pt-ptp'; known: fewglue/head, fewglue/pt,",
        ),
        (
            lambda d: d["grid"]["decide"]["pilot"].update({"fewglue/pt": 5}),
            None,
            "grid.decide: pilot.fewglue/pt: 5 is not in 1…4 (the first look)",
        ),
        (lambda d: None, {"fewglue/pt": 18}, "seeds.yaml: seeds.fewglue/pt: 18 is not in 1…17"),
        (lambda d: None, {"fewglue/pt": "six"}, "seeds.yaml: seeds.fewglue/pt: expected an integer"),
    ],
)
def test_a_bad_adaptive_design_is_one_line_naming_the_key(
    tmp_path: Path, mutate, seeds, message: str
) -> None:
    path = write_params(tmp_path, mutate, profile="default")
    if seeds is not None:
        (tmp_path / "seeds.yaml").write_text(yaml.safe_dump({"seeds": seeds}))
    with pytest.raises(PromptTuneError) as info:
        load_params(path)
    assert message in str(info.value) and "\n" not in str(info.value)
