"""The training loop on a tiny random BERT and the real CB files: outputs, selection, determinism."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch
from helpers import tiny_config

from prompttune.data import fetch
from prompttune.results import load_metrics
from prompttune.splits import required_files
from prompttune.tasks import Example, get_task
from prompttune.train import lr_lambda, majority_class, number_of_steps, split_result, stage_eta, train_run

RUN_FILES = {"config.json", "provenance.json", "curve.csv", "predictions.jsonl", "prompt.pt", "metrics.json"}


@pytest.fixture(scope="module")
def cb_data(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("data")
    fetch(required_files("fewglue", "CB"), dest, mirror=mirror)
    return dest


def test_linear_warmup_then_linear_decay() -> None:
    factor = lr_lambda(warmup=2, total=10)
    assert [round(factor(s), 4) for s in range(11)] == [
        0.5,
        1.0,
        1.0,
        0.875,
        0.75,
        0.625,
        0.5,
        0.375,
        0.25,
        0.125,
        0.0,
    ]
    no_warmup = lr_lambda(warmup=0, total=4)
    assert [no_warmup(s) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_epochs_set_the_number_of_steps(tiny_backbone: str) -> None:
    config = tiny_config(tiny_backbone, epochs=2.5, batch_size=8)
    assert number_of_steps(config, n_train=32) == 10
    assert number_of_steps(tiny_config(tiny_backbone, steps=7), n_train=32) == 7


def test_majority_and_prediction_share_on_a_hand_made_case() -> None:
    task = get_task("CB")
    train = [Example(guid=str(i), text_a="a", label=label) for i, label in enumerate([1, 1, 2, 0, 1])]
    assert majority_class(task, train) == 1
    gold = [Example(guid=str(i), text_a="a", label=label) for i, label in enumerate([0, 1, 1, 2])]
    result = split_result(task, "dev32", gold, [1, 1, 1, 0], majority=1)
    assert result.prediction_share == {"entailment": 0.25, "contradiction": 0.75, "neutral": 0.0}
    assert result.metrics["acc"] == 0.5
    # always "contradiction": acc 2/4; F1 contradiction = 2·(0.5·1)/(1.5) = 2/3, others 0 → macro 2/9
    assert result.majority_score == pytest.approx((0.5 + 2 / 9) / 2)


def test_a_run_writes_every_output_with_a_valid_schema(
    tiny_backbone: str, cb_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    metrics = train_run(tiny_config(tiny_backbone), cb_data, out)
    assert {p.name for p in out.iterdir()} == RUN_FILES
    loaded = load_metrics(out / "metrics.json")
    assert loaded == metrics
    assert loaded.steps == 6 and loaded.data.sizes == {"train": 32, "select": 32, "report": 56}
    assert loaded.config == tiny_config(tiny_backbone) and loaded.precision.used == "fp32"
    assert loaded.objective.family == "ce" and loaded.convergence is not None
    assert loaded.select.name == "dev32" and loaded.select.n_examples == 32
    assert loaded.report.name == "val" and loaded.report.n_examples == 56
    assert loaded.trainable_params == 2 * 2 * 4 * 32 + 3 * 32 + 3  # prefix (L·2·n·d) + head
    assert sum(loaded.report.prediction_share.values()) == pytest.approx(1.0)
    with open(out / "curve.csv") as handle:
        curve = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in curve] == [0, 2, 4, 6]
    best = max(float(row["select_score"]) for row in curve)
    assert loaded.selected_step in {int(r["step"]) for r in curve if float(r["select_score"]) == best}
    assert loaded.select.score == pytest.approx(best, abs=1e-6), (
        "selected checkpoint must be the best on select"
    )
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 32 + 56
    report = [p for p in predictions if p["split"] == "val"]
    assert sum(p["prediction"] == p["label"] for p in report) / 56 == pytest.approx(
        loaded.report.metrics["acc"]
    )
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 1 and config["train"]["steps"] == 6
    provenance = json.loads((out / "provenance.json").read_text())
    assert set(provenance["data_sha256"]) == set(required_files("fewglue", "CB"))
    state = torch.load(out / "prompt.pt")
    assert set(state["model"]) == {"base.prefix", "head.weight", "head.bias"}


def strip_timing(metrics: dict) -> dict:
    timing = {"wall_time_s", "train_time_s", "train_examples_per_s", "peak_memory_mb"}
    return {k: v for k, v in metrics.items() if k not in timing}


@pytest.mark.parametrize("method", ["pt", "pt2"])
def test_same_seed_gives_identical_metrics_and_another_seed_does_not(
    tiny_backbone: str, cb_data: Path, tmp_path: Path, method: str
) -> None:
    config = tiny_config(tiny_backbone, method, backbone_dropout=True)
    first = train_run(config, cb_data, tmp_path / "a")
    second = train_run(config, cb_data, tmp_path / "b")
    train_run(dataclasses.replace(config, seed=2), cb_data, tmp_path / "c")
    assert strip_timing(first.to_dict()) == strip_timing(second.to_dict())
    assert (tmp_path / "a" / "predictions.jsonl").read_text() == (
        tmp_path / "b" / "predictions.jsonl"
    ).read_text()
    a, c = torch.load(tmp_path / "a" / "prompt.pt"), torch.load(tmp_path / "c" / "prompt.pt")
    key = "base.prefix" if method == "pt2" else "base.prompt"
    assert torch.equal(a["model"][key], torch.load(tmp_path / "b" / "prompt.pt")["model"][key])
    assert not torch.equal(a["model"][key], c["model"][key])


def test_a_compiled_backbone_trains_as_the_eager_one(
    tiny_backbone: str, cb_data: Path, tmp_path: Path
) -> None:
    config = tiny_config(tiny_backbone, "pt2", steps=4, eval_every=2)
    eager = train_run(config, cb_data, tmp_path / "eager")
    compiled = train_run(
        dataclasses.replace(config, train=dataclasses.replace(config.train, compile=True)),
        cb_data,
        tmp_path / "compiled",
    )
    assert compiled.status == eager.status != "failed"
    a, b = torch.load(tmp_path / "eager" / "prompt.pt"), torch.load(tmp_path / "compiled" / "prompt.pt")
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=1e-4, atol=1e-5)
    assert compiled.select == eager.select and compiled.report == eager.report


def test_non_finite_loss_marks_the_run_failed(tiny_backbone: str, cb_data: Path, tmp_path: Path) -> None:
    metrics = train_run(tiny_config(tiny_backbone, lr=1e30, max_grad_norm=1e30), cb_data, tmp_path / "run")
    assert metrics.status == "failed" and "non-finite loss" in metrics.reason
    assert metrics.report is None and metrics.selected_step is None
    assert load_metrics(tmp_path / "run" / "metrics.json").status == "failed"


def test_a_loaded_run_reproduces_its_report_predictions(
    tiny_backbone: str, cb_data: Path, tmp_path: Path
) -> None:
    from prompttune.batches import encode
    from prompttune.checkpoint import load_run
    from prompttune.splits import load_splits
    from prompttune.train import predict

    out = tmp_path / "run"
    train_run(tiny_config(tiny_backbone, "pt"), cb_data, out)
    loaded = load_run(out)
    splits = load_splits(cb_data, "fewglue", get_task("CB"), 13)
    features = encode(splits.report, get_task("CB"), loaded.tokenizer, 48)
    preds = predict(loaded.model, features, loaded.tokenizer, 32, torch.device("cpu"), "fp32")
    saved = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert preds == [p["prediction"] for p in saved if p["split"] == "val"]


def test_outputs_follow_the_users_umask(tiny_backbone: str, cb_data: Path, tmp_path: Path) -> None:
    """Run folders, their files and atomically written results are readable by the group and others under
    umask 022 (0755 folders, 0644 files), as a shared cluster disk needs."""
    import os
    import stat

    from prompttune.io import atomic_write_json

    previous = os.umask(0o022)
    try:
        out = tmp_path / "run"
        train_run(tiny_config(tiny_backbone, steps=2, eval_every=2), cb_data, out)
        atomic_write_json(tmp_path / "results" / "summary.json", {"a": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for path in [*out.iterdir(), tmp_path / "results" / "summary.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_micro_batches_accumulate_the_gradient_of_the_whole_batch(
    tiny_backbone: str, cb_data: Path, tmp_path: Path
) -> None:
    config = tiny_config(tiny_backbone, "pt", steps=4, eval_every=2)
    whole = train_run(config, cb_data, tmp_path / "whole")
    micro = train_run(
        dataclasses.replace(config, train=dataclasses.replace(config.train, micro_batch_size=3)),
        cb_data,
        tmp_path / "micro",
    )
    a, b = (
        torch.load(tmp_path / "whole" / "prompt.pt")["model"],
        torch.load(tmp_path / "micro" / "prompt.pt")["model"],
    )
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
    assert micro.selected_step == whole.selected_step and micro.report == whole.report


def test_a_run_that_crashes_is_a_failed_result_and_its_sibling_seed_goes_on(
    tiny_backbone: str, cb_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prompttune.objectives.ce import CrossEntropy
    from prompttune.train import train_seeds

    calls = {"n": 0}
    loss = CrossEntropy.loss

    def flaky(self, model, batch):
        calls["n"] += 1
        if calls["n"] == 6:  # the second seed's third step (seeds take turns)
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore detail")
        return loss(self, model, batch)

    monkeypatch.setattr(CrossEntropy, "loss", flaky)
    configs = [tiny_config(tiny_backbone, "pt", seed, seed_parallel="turns") for seed in (1, 2)]
    first, second = train_seeds(configs, cb_data, [tmp_path / "seed1", tmp_path / "seed2"])
    assert first.status != "failed" and first.steps == 6
    assert second.status == "failed" and second.reason == (
        "crashed in a training step: RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB"
    )
    assert load_metrics(tmp_path / "seed2" / "metrics.json").status == "failed" and second.report is None


def test_early_stopping_and_selection_never_read_the_report_split(
    tiny_backbone: str, cb_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run with every report label changed stops at the same step, selects the same step and
    draws the same selection curve; only its report score moves."""
    import prompttune.train as train_module

    config = tiny_config(tiny_backbone, "pt", steps=60, eval_every=2, patience=2, early_stopping=True)
    honest = train_run(config, cb_data, tmp_path / "honest")
    load = train_module.load_splits

    def relabelled(*args, **kwargs):
        splits = load(*args, **kwargs)
        report = [dataclasses.replace(e, label=(e.label + 1) % 3) for e in splits.report]
        return dataclasses.replace(splits, report=report)

    monkeypatch.setattr(train_module, "load_splits", relabelled)
    changed = train_run(config, cb_data, tmp_path / "changed")
    assert honest.steps < 60, "the plateau rule stopped the run early"
    assert (changed.steps, changed.selected_step, changed.convergence) == (
        honest.steps,
        honest.selected_step,
        honest.convergence,
    )
    curve = [
        (row["step"], row["select_score"]) for row in csv.DictReader((tmp_path / "honest/curve.csv").open())
    ]
    assert curve == [
        (row["step"], row["select_score"]) for row in csv.DictReader((tmp_path / "changed/curve.csv").open())
    ]
    assert changed.report.score != honest.report.score


def test_the_eta_is_the_stages_wall_time_per_step_times_the_steps_left() -> None:
    """Six seeds taking turns: a step of the stage is all six, so 10 s for the first 5 steps of a 20-step
    stage leaves 30 s, whatever one seed's share of a step is."""
    assert stage_eta(time.perf_counter() - 10.0, 0, 5, 20) == pytest.approx(30.0, abs=0.5)
    assert stage_eta(time.perf_counter() - 10.0, 10, 15, 20) == pytest.approx(10.0, abs=0.5)  # resumed at 10
