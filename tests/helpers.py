"""Test helpers shared across test modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig, deep_merge
from prompttune.tasks import Example

CB_EXAMPLES = [  # three hand-made CB pairs, one per class
    Example(guid="t-0", text_a="The cat sat on the mat.", text_b="A cat sat.", label=0),
    Example(guid="t-1", text_a="It rained all day long in the city.", text_b="It was sunny.", label=1),
    Example(guid="t-2", text_a="He might come.", text_b="He came.", label=2),
]
COPA_EXAMPLES = [  # the first is shorter than the second in every choice
    Example(guid="c-0", text_a="The glass fell.", choices=("so it broke.", "so it sang."), label=0),
    Example(
        guid="c-1",
        text_a="She was tired because it rained all day long in the city.",
        choices=("because she ran all day long.", "because she slept on the mat."),
        label=1,
    ),
]

TINY_TRAIN = {
    "steps": 6,
    "batch_size": 8,
    "lr": 0.05,
    "eval_every": 2,
    "eval_batch_size": 32,
    "max_length": 48,
    "precision": "fp32",  # not "auto": tests must not depend on the CPU's bf16 support
}


def tiny_config(backbone: str, method: str = "pt2", seed: int = 1, **train: object) -> RunConfig:
    """A short FewGLUE CB run on ``backbone`` (a length-4 prompt, random head); ``train`` overrides."""
    return RunConfig(
        setting="fewglue",
        task="CB",
        method=method,
        seed=seed,
        backbone=backbone,
        prompt=PromptConfig(length=4),
        head=HeadConfig(pooling="mean", init="random"),
        train=TrainConfig(**{**TINY_TRAIN, **train}),
    )


SECTIONS = ("grid", "run", "studies")


def active_grid(project: Path) -> dict[str, Any]:
    """The grid, run and studies of ``project``'s params.yaml: its profile's, with the file's overrides merged
    on (as ``load_params`` merges them), for a test to edit."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    preset = yaml.safe_load((project / "profiles.yaml").read_text())[params["profile"]]
    return {key: deep_merge(preset[key], params.get(key) or {}) for key in SECTIONS}


def write_profile(project: Path, name: str, sections: dict[str, Any], description: str | None = None) -> None:
    """Make ``sections`` the preset ``name`` of ``project``'s profiles.yaml (replacing one of that name, whose
    description it keeps unless given) and the active profile, with no overrides."""
    presets = yaml.safe_load((project / "profiles.yaml").read_text())
    kept = description if description is not None else presets[name]["description"]
    presets[name] = {"description": kept, **{key: sections[key] for key in SECTIONS}}
    (project / "profiles.yaml").write_text(yaml.safe_dump(presets, sort_keys=False))
    (project / "params.yaml").write_text(f"profile: {name}\n")
