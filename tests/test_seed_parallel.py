"""Several seeds of one cell in one process equal the same seeds trained one by one: stacked (one
backbone pass for all seeds) for stackable objectives, taking turns under per-seed RNG otherwise; a
seed that diverges fails alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import tiny_config

from prompttune import model as model_module
from prompttune.data import fetch
from prompttune.splits import required_files
from prompttune.train import resume_folder, train_run, train_seeds

SEEDS = [1, 2, 3]


@pytest.fixture(scope="module")
def cb_data(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("data")
    fetch(required_files("fewglue", "CB"), dest, mirror=mirror)
    return dest


def timeless(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.endswith(("_s", "_mb"))}


def curve_rows(run_dir: Path) -> list[list[float]]:
    lines = (run_dir / "curve.csv").read_text().splitlines()[1:]
    return [[float(x) for x in line.split(",")[:4]] for line in lines]  # step, loss, lr, score


@pytest.mark.parametrize(
    ("method", "stacked", "group"),
    [
        ("head", False, 0),  # trains on cached features, one seed after another
        ("pt", True, 0),
        ("pt2", True, 0),
        ("pt2", True, 2),  # length-grouped batches
        ("pt-ptp-rn-emb", False, 0),
        ("pt-infoprompt", False, 0),
    ],
)
def test_seeds_in_one_process_equal_separate_runs(
    tiny_backbone: str,
    cb_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    stacked: bool,
    group: int,
) -> None:
    calls = []
    forward = model_module.StackedModel.forward
    monkeypatch.setattr(
        model_module.StackedModel,
        "forward",
        lambda self, *a, **k: calls.append(len(self.models)) or forward(self, *a, **k),
    )
    configs = [
        tiny_config(
            tiny_backbone,
            method,
            seed,
            backbone_dropout=False,
            group_by_length=group,
            seed_parallel="stacked" if stacked else "auto",
        )
        for seed in SEEDS
    ]
    together = train_seeds(configs, cb_data, [tmp_path / "together" / f"seed{s}" for s in SEEDS])
    assert calls == ([len(SEEDS)] * configs[0].train.steps if stacked else [])
    for config, joint in zip(configs, together, strict=True):
        alone_dir, joint_dir = tmp_path / f"alone{config.seed}", tmp_path / "together" / f"seed{config.seed}"
        alone = train_run(config, cb_data, alone_dir)
        assert timeless(joint.to_dict()) == timeless(alone.to_dict()), f"seed {config.seed}"
        assert (joint_dir / "predictions.jsonl").read_text() == (alone_dir / "predictions.jsonl").read_text()
        a, b = torch.load(alone_dir / "prompt.pt"), torch.load(joint_dir / "prompt.pt")
        assert a["model"].keys() == b["model"].keys()
        tolerance = {"rtol": 1e-5, "atol": 1e-6} if stacked else {"rtol": 0, "atol": 0}
        for key in a["model"]:
            torch.testing.assert_close(b["model"][key], a["model"][key], **tolerance)
        torch.testing.assert_close(
            torch.tensor(curve_rows(joint_dir)),
            torch.tensor(curve_rows(alone_dir)),
            equal_nan=True,
            **tolerance,
        )
    seed_prompts = [torch.load(tmp_path / "together" / f"seed{s}" / "prompt.pt")["model"] for s in SEEDS]
    key = next(iter(seed_prompts[0]))
    assert not torch.equal(seed_prompts[0][key], seed_prompts[1][key]), "each seed keeps its own parameters"


def test_head_on_cached_features_predicts_as_head_through_the_backbone(
    tiny_backbone: str, cb_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prompttune import train as train_module

    encodes = []
    encode = model_module.PromptModel.encode
    monkeypatch.setattr(
        model_module.PromptModel, "encode", lambda self, *a, **k: encodes.append(1) or encode(self, *a, **k)
    )
    config = tiny_config(tiny_backbone, "head", 1, backbone_dropout=False, steps=8, eval_every=2)
    cached = train_run(config, cb_data, tmp_path / "cached")
    passes_cached = len(encodes)
    monkeypatch.setattr(train_module, "uses_feature_cache", lambda config: False)
    encodes.clear()
    through = train_run(config, cb_data, tmp_path / "through")
    n_batches = -(-32 // 32) + -(-56 // 32)  # the splits' evaluation batches (train 32, select 32, report 56)
    assert passes_cached == 1 + n_batches, "the backbone ran once per evaluation batch of each split"
    assert len(encodes) > 8, "without the cache the backbone runs every step"
    read = lambda d: (d / "predictions.jsonl").read_text()  # noqa: E731
    assert read(tmp_path / "cached") == read(tmp_path / "through")
    assert cached.selected_step == through.selected_step and cached.report == through.report
    a = torch.load(tmp_path / "cached" / "prompt.pt")["model"]
    b = torch.load(tmp_path / "through" / "prompt.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_auto_takes_turns_on_a_cpu_bit_identical_to_separate_runs(
    tiny_backbone: str, cb_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    forward = model_module.StackedModel.forward
    monkeypatch.setattr(
        model_module.StackedModel, "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k)
    )
    configs = [tiny_config(tiny_backbone, "pt", seed, backbone_dropout=False) for seed in SEEDS[:2]]
    assert configs[0].train.seed_parallel == "auto"
    together = train_seeds(configs, cb_data, [tmp_path / f"together{c.seed}" for c in configs])
    assert calls == [], "a stackable objective on a CPU is not stacked under auto"
    for config, joint in zip(configs, together, strict=True):
        alone = train_run(config, cb_data, tmp_path / f"alone{config.seed}")
        assert timeless(joint.to_dict()) == timeless(alone.to_dict())
        a = torch.load(tmp_path / f"alone{config.seed}" / "prompt.pt")["model"]
        b = torch.load(tmp_path / f"together{config.seed}" / "prompt.pt")["model"]
        assert all(torch.equal(a[key], b[key]) for key in a)


def test_a_diverging_seed_fails_alone(tiny_backbone: str, cb_data: Path, tmp_path: Path) -> None:
    """Seed 2 gets an exploding learning rate (a variant of the config would be another cell, so the
    configs are made to differ only by seed and the rate is raised on seed 2's optimiser)."""
    configs = [
        tiny_config(tiny_backbone, "pt", seed, backbone_dropout=False, seed_parallel="stacked")
        for seed in SEEDS
    ]
    real_adamw = torch.optim.AdamW

    def adamw(params, lr, weight_decay):  # the second optimiser built belongs to seed 2
        adamw.count += 1
        return real_adamw(params, lr=1e30 if adamw.count == 2 else lr, weight_decay=weight_decay)

    adamw.count = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim, "AdamW", adamw)
        patch.setattr(
            torch.nn.utils, "clip_grad_norm_", lambda params, max_norm: torch.tensor(0.0)
        )  # no clipping: the huge step must reach the prompt
        results = train_seeds(configs, cb_data, [tmp_path / f"seed{s}" for s in SEEDS])
    statuses = [r.status for r in results]
    assert statuses[1] == "failed" and "non-finite loss" in results[1].reason
    assert statuses[0] != "failed" and statuses[2] != "failed"
    saved = json.loads((tmp_path / "seed2" / "metrics.json").read_text())
    assert saved["status"] == "failed" and saved["report"] is None


def test_several_seeds_share_one_resume_state_beside_their_method_folder(tmp_path: Path) -> None:
    dirs = [tmp_path / "pt" / f"seed{s}" for s in SEEDS]
    assert resume_folder(dirs) == tmp_path / "pt.resume" / "seed1+2+3"
    assert resume_folder(dirs[:1]) == tmp_path / "pt.resume" / "seed1"


def test_configs_that_differ_beyond_the_seed_are_refused(
    tiny_backbone: str, cb_data: Path, tmp_path: Path
) -> None:
    a = tiny_config(tiny_backbone, "pt", 1)
    b = tiny_config(tiny_backbone, "pt", 2, lr=0.1)
    with pytest.raises(ValueError, match="differ only in their seed"):
        train_seeds([a, b], cb_data, [tmp_path / "a", tmp_path / "b"])
